"""What a block-wise prediction reads: the model's input channels of a volume, a region, a mask, and
normalisation statistics of the region (exact when it fits, from evenly spread samples otherwise)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.geometry import Box
from ..data.volumes import VolumeSource, open_volume
from ..preprocess import NormalizationStats, compute_stats
from ..project.errors import DatasetError
from ..project.run_options import IN_MEMORY_VOXELS

EXACT_STATS_VOXELS = 1 << 24  # a region up to this many voxels per channel is read whole for its statistics
SAMPLE_BOXES = 64  # otherwise: statistics of this many boxes spread evenly over the region


@dataclass(frozen=True)
class VolumeInput:
    """One `VolumeSource` per model input channel (same shape) and where the source came from."""

    channels: tuple[VolumeSource, ...]
    description: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.channels[0].shape

    @property
    def origin(self) -> tuple[int, ...]:
        return self.channels[0].origin

    def read(self, box: Box) -> np.ndarray:
        """(C, *box.shape) voxels of `box` in absolute coordinates (one channel: no copy)."""
        if len(self.channels) == 1:
            return self.channels[0].read(box)[None]
        return np.stack([source.read(box) for source in self.channels])


def open_input(
    source: Any,
    *,
    spatial_axes: str,
    input_channels: int,
    dataset: str | None = None,
    scale: int | str = 0,
    channel_axis: int | None = None,
    source_axes: str | None = None,
) -> VolumeInput:
    """Open `source` (any `open_volume` source) as `input_channels` volumes in `spatial_axes` order.

    A channel axis is named by `source_axes` ('c'), by `channel_axis` (its position among the stored
    axes) or by OME-Zarr metadata. A channel count that differs from the model's is refused.
    """
    stored_ndim = _stored_ndim(source)
    if source_axes is None and channel_axis is not None:
        source_axes = _axes_with_channel(stored_ndim, channel_axis, spatial_axes)
    options = {"axis_order": spatial_axes, "source_axes": source_axes, "dataset": dataset, "scale": scale}
    name = _name(source, dataset)
    try:
        volume = open_volume(source, **options)
        sources: tuple[VolumeSource, ...] = (volume,)
    except DatasetError as exc:
        if "channel" not in str(exc):
            raise _dimensions_error(exc, name, spatial_axes, input_channels) from exc
        first = open_volume(source, channel=0, **options)
        count = first.channel_count if hasattr(first, "channel_count") else 1
        sources = (first, *(open_volume(source, channel=c, **options) for c in range(1, count)))
    if len(sources) != input_channels:
        raise DatasetError(
            f"{name}: has {len(sources)} channel(s) but the checkpoint expects {input_channels}: "
            "choose a source with that many channels (or name its channel axis with --channel-axis)"
        )
    description = {
        "source": name,
        "in_memory": not isinstance(source, str | os.PathLike),
        "dataset": dataset,
        "scale": scale,
        "shape": list(sources[0].shape),
        "dtype": str(sources[0].dtype),
    }
    return VolumeInput(sources, description)


def _stored_ndim(source: Any) -> int | None:
    shape = getattr(source, "shape", None)
    return len(shape) if shape is not None else None


def _axes_with_channel(ndim: int | None, channel_axis: int, spatial_axes: str) -> str:
    ndim = ndim if ndim is not None else len(spatial_axes) + 1
    if not -ndim <= channel_axis < ndim:
        raise DatasetError(f"--channel-axis {channel_axis} is outside the source's {ndim} axes: use 0..{ndim - 1} or -1")
    letters = list(spatial_axes[-(ndim - 1) :]) if ndim - 1 <= len(spatial_axes) else None
    if letters is None or ndim - 1 != len(spatial_axes):
        raise DatasetError(
            f"the source has {ndim} axes; with a channel axis the checkpoint needs {len(spatial_axes) + 1} "
            f"(channel + {spatial_axes})"
        )
    letters.insert(channel_axis % ndim, "c")
    return "".join(letters)


def _name(source: Any, dataset: str | None) -> str:
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        return f"{text}/{dataset}" if dataset else text
    return f"<{type(source).__name__} {tuple(getattr(source, 'shape', ()))}>"


def _dimensions_error(exc: DatasetError, name: str, spatial_axes: str, channels: int) -> DatasetError:
    text = str(exc)
    if "dimensions" in text or "lack" in text:
        return DatasetError(
            f"{name}: does not fit the checkpoint, a {len(spatial_axes)}D model with {channels} input channel(s) "
            f"({text.split(': ', 1)[-1]})"
        )
    return exc


# ---- region of interest and mask -------------------------------------------------------------------


def parse_roi(text: str | Sequence[Sequence[int]] | None, volume: VolumeInput, spatial_axes: str) -> Box:
    """The region to predict (absolute coordinates): all of the volume, or `z0:z1,y0:y1,x0:x1`."""
    bounds = Box(volume.origin, tuple(o + s for o, s in zip(volume.origin, volume.shape, strict=True)))
    if text is None:
        return bounds
    ranges = [part.split(":") for part in text.split(",")] if isinstance(text, str) else [list(r) for r in text]
    if len(ranges) != len(spatial_axes) or any(len(r) != 2 for r in ranges):
        raise DatasetError(
            f"--roi {text!r}: give one start:stop per axis ({','.join(f'{a}0:{a}1' for a in spatial_axes)})"
        )
    starts, stops = [], []
    for axis, (lo, hi), low, high in zip(spatial_axes, ranges, bounds.start, bounds.stop, strict=True):
        try:
            a = int(lo) if str(lo).strip() else low
            b = int(hi) if str(hi).strip() else high
        except ValueError as exc:
            raise DatasetError(f"--roi {text!r}: {axis} range {lo}:{hi} is not two whole numbers") from exc
        if not low <= a < b <= high:
            raise DatasetError(
                f"--roi {text!r}: {axis} range {a}:{b} is outside the volume ({axis} {low}:{high}) or empty"
            )
        starts.append(a)
        stops.append(b)
    return Box(tuple(starts), tuple(stops))


class BlockMask:
    """A mask volume (any resolution covering the same extent): a block is predicted where it is non-zero."""

    def __init__(self, mask: VolumeSource, volume: VolumeInput) -> None:
        self.mask = mask
        self.factors = tuple(m / s for m, s in zip(mask.shape, volume.shape, strict=True))
        self.volume_origin = volume.origin

    def any(self, box: Box) -> bool:
        start = [
            math.floor((a - o) * f) + mo for a, o, f, mo in zip(box.start, self.volume_origin, self.factors, self.mask.origin, strict=True)
        ]
        stop = [
            max(s + 1, math.ceil((b - o) * f) + mo)
            for b, o, f, s, mo in zip(box.stop, self.volume_origin, self.factors, start, self.mask.origin, strict=True)
        ]
        return bool(np.any(self.mask.read(Box(tuple(start), tuple(stop)))))


def open_mask(mask: Any, volume: VolumeInput, spatial_axes: str, dataset: str | None = None) -> BlockMask:
    opened = open_volume(mask, axis_order=spatial_axes, dataset=dataset)
    return BlockMask(opened, volume)


# ---- statistics ----------------------------------------------------------------------------------------


def region_stats(volume: VolumeInput, roi: Box, mode: str, chunk: Sequence[int]) -> NormalizationStats:
    """Normalisation statistics of the region: of all its voxels up to `EXACT_STATS_VOXELS` (what whole-image
    prediction computes; memory then grows with the region up to that size), else of `SAMPLE_BOXES`
    chunk-sized boxes spread evenly (memory independent of the region)."""
    if mode == "none":
        return compute_stats(np.zeros((volume_channels(volume), 1), np.float32), mode, channel_axis_first=True)
    if roi.size <= EXACT_STATS_VOXELS:
        return compute_stats(volume.read(roi), mode, channel_axis_first=True)
    boxes = sample_boxes(roi, chunk, SAMPLE_BOXES)
    sample = np.concatenate([volume.read(box).reshape(volume_channels(volume), -1) for box in boxes], axis=1)
    return compute_stats(sample, mode, channel_axis_first=True)


def volume_channels(volume: VolumeInput) -> int:
    return len(volume.channels)


def sample_boxes(roi: Box, box_shape: Sequence[int], count: int) -> list[Box]:
    """About `count` boxes of `box_shape` on an even grid over `roi` (deterministic)."""
    dims = roi.ndim
    per_axis = max(1, round(count ** (1 / dims)))
    edges = [min(b, s) for b, s in zip(box_shape, roi.shape, strict=True)]
    starts = [
        np.unique(np.linspace(lo, hi - e, per_axis).round().astype(int))
        for lo, hi, e in zip(roi.start, roi.stop, edges, strict=True)
    ]
    grid = np.stack(np.meshgrid(*starts, indexing="ij"), axis=-1).reshape(-1, dims)
    return [Box(tuple(int(v) for v in corner), tuple(int(v) + e for v, e in zip(corner, edges, strict=True))) for corner in grid]




def needs_blocks(location: str, dataset: str | None = None) -> bool:
    """Whether a source must be predicted block-wise: remote or precomputed, or more than `IN_MEMORY_VOXELS`
    values in a TIFF or Zarr. Unreadable sources answer False (the in-memory reader explains them)."""
    from ..data.volumes import detect_format

    try:
        kind, path = detect_format(str(location))
    except DatasetError:
        return False
    if kind == "precomputed" or "://" in str(location):
        return True
    try:
        shape = _stored_shape(kind, path, dataset)
    except Exception:  # noqa: BLE001 - the in-memory path reports unreadable files in one line
        return False
    return shape is not None and math.prod(shape) > IN_MEMORY_VOXELS


def _stored_shape(kind: str, path: str, dataset: str | None) -> tuple[int, ...] | None:
    if kind == "tiff":
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return tuple(tif.series[0].shape)
    import zarr

    from ..project.image_io import multiscales_level0

    node = zarr.open(path, mode="r")
    if dataset:
        node = node[dataset]
    if hasattr(node, "array_keys"):
        level0 = multiscales_level0(node.attrs)
        node = node[level0] if level0 is not None else None
    return tuple(node.shape) if node is not None else None
