"""Per-channel intensity normalisation of images for training and prediction.

Modes (``TrainingSettings.normalization`` for pair training; ``region`` for point windows):

``percentile``
    the 1st and 99.8th percentiles of each channel map to 0 and 1 (values outside are
    *not* clipped);
``minmax``
    each channel's minimum and maximum map to 0 and 1;
``zscore``
    each channel gets mean 0 and standard deviation 1;
``none``
    values are only cast to float32;
``region``
    point-windowed training: 8-bit data maps its dtype range 0..255 to 0..1, other dtypes
    their 1st and 99.8th percentiles (estimated on about `REGION_SAMPLE` voxels), computed
    over the whole cached region (training) or volume (prediction).

Every mode is an affine map per channel, ``out = (x - offset) / scale``, so the statistics
can be computed once per image (`compute_stats`), recorded as plain floats
(`NormalizationStats.to_dict`) and reused for every prediction tile of that image
(`apply_stats`).  A channel whose spread is zero (a constant image), or negligible next to
its magnitude, gets ``scale = 1``: it maps to 0 instead of dividing by zero (``region``:
the scale is at least `REGION_MIN_SCALE`, as point-windowed training has always done).

Large channels (more than `SUBSAMPLE_ABOVE` voxels) estimate percentiles, mean and standard
deviation on an evenly strided subsample of at most `SUBSAMPLE_ABOVE` voxels; min/max are
always exact.  Non-finite statistics (NaN in the image) fall back to offset 0, scale 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

NormalizationMode = Literal["percentile", "minmax", "zscore", "none", "region"]
MODES: tuple[str, ...] = ("percentile", "minmax", "zscore", "none", "region")

PERCENTILE_LOW = 1.0
PERCENTILE_HIGH = 99.8
SUBSAMPLE_ABOVE = 10_000_000  # voxels per channel above which statistics use a strided subsample
_RELATIVE_TOLERANCE = 1e-6  # spread below this fraction of the magnitude counts as constant
REGION_SAMPLE = 1_000_000  # region mode: percentiles of every (size // REGION_SAMPLE)-th voxel
REGION_MIN_SCALE = 1e-6


@dataclass(frozen=True)
class NormalizationStats:
    """Per-channel affine normalisation ``(x - offset) / scale``, as plain floats.

    `low`/`high` are the reference values that map to 0 and 1 (percentile, minmax) or
    mean and mean + std (zscore); they are kept for the record only.
    """

    mode: str
    offsets: tuple[float, ...]
    scales: tuple[float, ...]
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"normalization {self.mode!r} is not one of {', '.join(MODES)}")
        if len(self.offsets) != len(self.scales) or not self.offsets:
            raise ValueError("NormalizationStats needs one offset and one scale per channel")
        if any(not (s > 0 and math.isfinite(s)) for s in self.scales):
            raise ValueError(f"normalization scales must be positive and finite, got {self.scales}")

    @property
    def channels(self) -> int:
        return len(self.offsets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (lists of floats)."""
        return {
            "mode": self.mode,
            "offsets": list(self.offsets),
            "scales": list(self.scales),
            "low": list(self.low),
            "high": list(self.high),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalizationStats:
        return cls(
            mode=str(data["mode"]),
            offsets=tuple(float(v) for v in data["offsets"]),
            scales=tuple(float(v) for v in data["scales"]),
            low=tuple(float(v) for v in data.get("low", ())),
            high=tuple(float(v) for v in data.get("high", ())),
        )


def _channels(image: np.ndarray, channel_axis_first: bool) -> list[np.ndarray]:
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError("cannot normalise an empty image")
    if channel_axis_first:
        if image.ndim < 2:
            raise ValueError(f"channel_axis_first=True needs at least 2 axes, got shape {image.shape}")
        return [image[c] for c in range(image.shape[0])]
    return [image]


def _subsample(channel: np.ndarray) -> np.ndarray:
    limit = SUBSAMPLE_ABOVE
    flat = channel.reshape(-1)  # a view for contiguous (and memory-mapped) channels
    if flat.size > limit:
        flat = flat[:: math.ceil(flat.size / limit)]
    return flat


def _affine(low: float, high: float, magnitude: float) -> tuple[float, float]:
    """(offset, scale) mapping low -> 0, high -> 1; scale 1 for a constant channel."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0
    spread = high - low
    if spread <= 0 or spread <= _RELATIVE_TOLERANCE * magnitude:
        return low, 1.0
    return low, spread


def _region_stats(channel: np.ndarray) -> tuple[float, float, float, float]:
    """(offset, scale, low, high) of one channel in the region mode (see the module docstring)."""
    if channel.dtype == np.uint8:
        return 0.0, 255.0, 0.0, 255.0
    sample = channel.ravel()[:: max(1, channel.size // REGION_SAMPLE)].astype(np.float64)
    low, high = (float(v) for v in np.percentile(sample, [PERCENTILE_LOW, PERCENTILE_HIGH]))
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0, low, high
    return low, max(high - low, REGION_MIN_SCALE), low, high


def _channel_stats(channel: np.ndarray, mode: str) -> tuple[float, float, float, float]:
    """(offset, scale, low, high) of one channel."""
    if mode == "none":
        return 0.0, 1.0, 0.0, 1.0
    if mode == "region":
        return _region_stats(channel)
    if mode == "minmax":
        low, high = float(np.min(channel)), float(np.max(channel))
    elif mode == "percentile":
        sample = _subsample(channel)
        low, high = (float(v) for v in np.percentile(sample, [PERCENTILE_LOW, PERCENTILE_HIGH]))
    elif mode == "zscore":
        sample = _subsample(channel).astype(np.float64)
        mean = float(np.mean(sample))
        std = float(np.std(sample))
        low, high = mean, mean + std
    else:
        raise ValueError(f"normalization {mode!r} is not one of {', '.join(MODES)}")
    offset, scale = _affine(low, high, max(abs(low), abs(high)))
    return offset, scale, low, high


def compute_stats(image: np.ndarray, mode: str, *, channel_axis_first: bool) -> NormalizationStats:
    """Statistics of `image` for `mode`, one entry per channel.

    With ``channel_axis_first=False`` the whole array is one channel.
    """
    if mode not in MODES:
        raise ValueError(f"normalization {mode!r} is not one of {', '.join(MODES)}")
    rows = [_channel_stats(ch, mode) for ch in _channels(image, channel_axis_first)]
    return NormalizationStats(
        mode=mode,
        offsets=tuple(r[0] for r in rows),
        scales=tuple(r[1] for r in rows),
        low=tuple(r[2] for r in rows),
        high=tuple(r[3] for r in rows),
    )


def apply_stats(image: np.ndarray, stats: NormalizationStats, *, channel_axis_first: bool) -> np.ndarray:
    """Normalise `image` (a whole image or any tile of it) with precomputed statistics -> float32."""
    channels = _channels(image, channel_axis_first)
    if len(channels) != stats.channels:
        raise ValueError(f"image has {len(channels)} channel(s) but the statistics have {stats.channels}")
    out = np.empty(np.shape(image), dtype=np.float32)
    targets = [out[c] for c in range(len(channels))] if channel_axis_first else [out]
    for source, target, offset, scale in zip(channels, targets, stats.offsets, stats.scales, strict=True):
        np.subtract(source, offset, out=target, dtype=np.float32, casting="unsafe")
        if scale != 1.0:
            target *= np.float32(1.0 / scale)
    return out


def normalize(image: np.ndarray, mode: str, *, channel_axis_first: bool) -> np.ndarray:
    """Normalise `image` per channel with `mode` (see the module docstring) -> float32, same shape."""
    stats = compute_stats(image, mode, channel_axis_first=channel_axis_first)
    return apply_stats(image, stats, channel_axis_first=channel_axis_first)
