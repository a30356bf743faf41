"""Data-set fingerprint: shapes, spacing, channels, intensities and class frequencies of the pairs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntensityStats(_Model):
    """Intensity summary of one image (or of a data set): mean, std and percentiles by name ("99.5")."""

    mean: float
    std: float
    percentiles: dict[str, float] = Field(default_factory=dict)


class DatasetFingerprint(_Model):
    """What auto-configuration knows about the training pairs. JSON: ``model_dump(mode="json")``.

    Shapes and spacings are spatial only, (y, x) or (z, y, x). `anisotropy` is z spacing over
    the median in-plane spacing in 3D (largest over smallest spacing in 2D); 1.0 without spacing.
    `class_frequencies` is indexed by class id (multilabel: by channel).
    """

    n_pairs: int
    spatial_dims: Literal["2d", "3d"]
    shapes: list[list[int]]
    median_shape: list[int]
    min_shape: list[int]
    max_shape: list[int]
    total_voxels: int
    spacings: list[list[float]] | None = None
    median_spacing: list[float] | None = None
    anisotropy: float = 1.0
    channels: int = 1
    intensity: list[IntensityStats] | None = None
    intensity_summary: IntensityStats | None = None
    class_frequencies: list[float] | None = None


def _percentile_key(q: float) -> str:
    return f"{q:g}"


def image_intensity_stats(
    image: Any, percentiles: Sequence[float] = (0.5, 1.0, 50.0, 99.0, 99.5), max_samples: int = 2**22
) -> IntensityStats:
    """Mean, std and percentiles of one image; above `max_samples` voxels a regular subsample is used."""
    values = np.asarray(image, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("empty image")
    if values.size > max_samples:
        values = values[:: math.ceil(values.size / max_samples)]
    pct = np.percentile(values, list(percentiles)) if percentiles else []
    return IntensityStats(
        mean=float(values.mean()),
        std=float(values.std()),
        percentiles={_percentile_key(q): float(v) for q, v in zip(percentiles, pct, strict=True)},
    )


def _to_intensity(stats: IntensityStats | Mapping[str, Any]) -> IntensityStats:
    if isinstance(stats, IntensityStats):
        return stats
    data = dict(stats)
    percentiles = {_percentile_key(float(k)): float(v) for k, v in dict(data.pop("percentiles", {})).items()}
    for key in [
        k for k in data if isinstance(k, str) and k.startswith("p") and k[1:].replace(".", "", 1).isdigit()
    ]:
        percentiles[_percentile_key(float(key[1:]))] = float(data.pop(key))
    return IntensityStats(mean=float(data.pop("mean")), std=float(data.pop("std")), percentiles=percentiles)


def _summarise_intensity(per_image: list[IntensityStats]) -> IntensityStats:
    """Mean of means, pooled std (equal weights per image), median of each percentile."""
    means = np.array([s.mean for s in per_image])
    variances = np.array([s.std**2 for s in per_image])
    pooled = float(np.sqrt(variances.mean() + means.var()))
    keys = set.intersection(*(set(s.percentiles) for s in per_image))
    percentiles = {
        k: float(np.median([s.percentiles[k] for s in per_image])) for k in sorted(keys, key=float)
    }
    return IntensityStats(mean=float(means.mean()), std=pooled, percentiles=percentiles)


def _frequencies(values: Mapping[Any, float] | Sequence[float]) -> list[float]:
    if isinstance(values, Mapping):
        size = max(int(k) for k in values) + 1 if values else 0
        freq = [0.0] * size
        for k, v in values.items():
            freq[int(k)] = float(v)
    else:
        freq = [float(v) for v in values]
    if any(v < 0 for v in freq):
        raise ValueError("class frequencies must be >= 0")
    total = sum(freq)
    if any(v > 1 for v in freq) and total > 0:  # counts, not fractions
        freq = [v / total for v in freq]
    return freq


def fingerprint(
    pair_shapes: Sequence[Sequence[int]],
    spacings: Sequence[Sequence[float]] | Sequence[float] | None = None,
    channels: int = 1,
    intensity_stats: Sequence[IntensityStats | Mapping[str, Any]] | None = None,
    class_frequencies: Mapping[Any, float] | Sequence[float] | None = None,
) -> DatasetFingerprint:
    """Summarise the training pairs.

    pair_shapes: spatial shape of each pair's image, all (y, x) or all (z, y, x).
    spacings: one spacing per pair (same order and length as the shapes) or a single spacing for
        all; None for unknown (treated as isotropic).
    channels: image channels.
    intensity_stats: per image ``{"mean", "std", "percentiles": {q: value}}`` (``"p99.5"`` keys work
        too) or `IntensityStats` (see `image_intensity_stats`).
    class_frequencies: fraction (or count; counts are normalised) of voxels per class id.
    """
    shapes = [[int(s) for s in shape] for shape in pair_shapes]
    if not shapes:
        raise ValueError("fingerprint needs at least one pair shape")
    ndim = {len(s) for s in shapes}
    if len(ndim) != 1 or next(iter(ndim)) not in (2, 3):
        raise ValueError(f"pair shapes must all be (y, x) or all (z, y, x); got {sorted(ndim)} axes")
    if any(s < 1 for shape in shapes for s in shape):
        raise ValueError("pair shapes must be positive")
    dims = next(iter(ndim))
    arr = np.array(shapes)
    spacing_list: list[list[float]] | None = None
    median_spacing: list[float] | None = None
    anisotropy = 1.0
    if spacings is not None:
        raw = list(spacings)
        if raw and not isinstance(raw[0], Sequence | np.ndarray):
            raw = [raw] * len(shapes)
        spacing_list = [[float(v) for v in sp] for sp in raw]  # type: ignore[union-attr]
        if len(spacing_list) != len(shapes) or any(len(sp) != dims for sp in spacing_list):
            raise ValueError(f"spacings need one {dims}-value spacing per pair (or one for all)")
        if any(v <= 0 for sp in spacing_list for v in sp):
            raise ValueError("spacings must be > 0")
        median_spacing = [float(v) for v in np.median(np.array(spacing_list), axis=0)]
        if dims == 3:
            anisotropy = median_spacing[0] / float(np.median(median_spacing[1:]))
        else:
            anisotropy = max(median_spacing) / min(median_spacing)
    per_image = [_to_intensity(s) for s in intensity_stats] if intensity_stats else None
    return DatasetFingerprint(
        n_pairs=len(shapes),
        spatial_dims="2d" if dims == 2 else "3d",
        shapes=shapes,
        median_shape=[int(v) for v in np.median(arr, axis=0)],
        min_shape=[int(v) for v in arr.min(axis=0)],
        max_shape=[int(v) for v in arr.max(axis=0)],
        total_voxels=int(sum(math.prod(s) for s in shapes)),
        spacings=spacing_list,
        median_spacing=median_spacing,
        anisotropy=float(anisotropy),
        channels=int(channels),
        intensity=per_image,
        intensity_summary=_summarise_intensity(per_image) if per_image else None,
        class_frequencies=_frequencies(class_frequencies) if class_frequencies is not None else None,
    )
