"""Windows sliced from cached regions: image (+ centre marker), N-channel targets, per-channel loss mask."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from .region_cache import CachedRegion

TargetForm = Literal["labels", "line_segments"]
MARKER_RADIUS = (1, 2, 2)  # voxels (z, y, x) of the centre-synapse marker ball


def image_scale(image: np.ndarray) -> tuple[float, float]:
    """(offset, scale) mapping the region to about [0, 1]: dtype range for 8-bit, percentiles otherwise."""
    if image.dtype == np.uint8:
        return 0.0, 255.0
    sample = image.ravel()[:: max(1, image.size // 1_000_000)].astype(np.float64)
    low, high = np.percentile(sample, [1.0, 99.8]) if sample.size else (0.0, 1.0)
    return float(low), float(max(high - low, 1e-6))


def marker_ball(window: Sequence[int], centre: Sequence[float]) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, w) for w in window)]
    radius = MARKER_RADIUS[-len(window) :]
    distance = sum(((g - c) / max(r, 1e-6)) ** 2 for g, c, r in zip(grids, centre, radius, strict=True))
    return (distance <= 1.0).astype(np.float32)


class RegionWindows(Dataset):
    """One dataset per cached region: item i is the window centred on the region's point i."""

    def __init__(
        self,
        cached: CachedRegion,
        *,
        target_form: TargetForm = "labels",
        label_keys: Sequence[str] = ("label0", "label1"),
        centre_marker: bool = False,
        loss_crop_pad: Sequence[int] | None = None,
        min_nonzero_fraction: float = 0.0,
        line_point: str = "midpoint",
    ):
        self.cached = cached
        self.target_form = target_form
        self.label_keys = tuple(label_keys)
        self.centre_marker = centre_marker
        self.loss_crop_pad = tuple(loss_crop_pad or (0,) * cached.box.ndim)
        self.min_nonzero_fraction = float(min_nonzero_fraction)
        self.line_point = line_point
        self.offset, self.scale = image_scale(cached.arrays["img"])

    @property
    def channels(self) -> int:
        return 2 if self.target_form == "line_segments" else len(self.label_keys)

    def __len__(self) -> int:
        return len(self.cached.indexer)

    def _local(self, point: Sequence[float]) -> tuple[int, ...]:
        return tuple(int(np.round(p)) - s for p, s in zip(point, self.cached.box.start, strict=True))

    def __getitem__(self, index: int) -> dict:
        window = self.cached.indexer(index)
        where = window.slices(self.cached.box.start)
        arrays = self.cached.arrays
        raw = arrays["img"][where]
        image = ((raw.astype(np.float32) - self.offset) / self.scale)[None]
        if self.centre_marker:
            point = self.cached.indexer.points[index]
            centre = [p - s for p, s in zip(point, window.start, strict=True)]
            image = np.concatenate([image, marker_ball(window.shape, centre)[None]])
        target = self._target(index, where)
        valid = self._valid(where)
        nonzero = float(np.count_nonzero(raw)) / raw.size
        weight = 1.0 if nonzero >= self.min_nonzero_fraction else 0.0  # masked, not skipped (DDP stays in step)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "target": torch.from_numpy(target),
            "valid": torch.from_numpy(valid * weight),
            "nonzero_fraction": torch.tensor(nonzero),
        }

    def _target(self, index: int, where: tuple[slice, ...]) -> np.ndarray:
        arrays = self.cached.arrays
        if self.target_form == "labels":
            return np.stack([(arrays[k][where] > 0) for k in self.label_keys]).astype(np.float32)
        synapse = self.cached.synapses[index]
        segmentation = arrays["segmentation"]
        ends = (synapse.start, synapse.end if synapse.end is not None else synapse.start)
        ids = [segmentation[self._local(p)] for p in ends]
        window = segmentation[where]
        return np.stack([(window == i) & (i != 0) for i in ids]).astype(np.float32)

    def _valid(self, where: tuple[slice, ...]) -> np.ndarray:
        arrays = self.cached.arrays
        shape = arrays["img"][where].shape
        valid = np.ones((self.channels, *shape), np.float32)
        if "img_mask" in arrays:
            valid *= (arrays["img_mask"][where] > 0)[None]
        keys = self.label_keys if self.target_form == "labels" else ("segmentation", "segmentation")
        for channel, key in enumerate(keys):
            if f"{key}_mask" in arrays:
                valid[channel] *= arrays[f"{key}_mask"][where] > 0
        for axis, pad in enumerate(self.loss_crop_pad):
            if pad > 0:
                index = [slice(None)] * valid.ndim
                index[axis + 1] = slice(0, pad)
                valid[tuple(index)] = 0
                index[axis + 1] = slice(shape[axis] - pad, shape[axis])
                valid[tuple(index)] = 0
        return valid


class PointWindowDataset(ConcatDataset):
    """Every region's windows joined vertically into one dataset."""

    def __init__(self, regions: Sequence[CachedRegion], **options):
        self.parts = [RegionWindows(region, **options) for region in regions]
        super().__init__(self.parts)

    @property
    def channels(self) -> int:
        return self.parts[0].channels if self.parts else 2
