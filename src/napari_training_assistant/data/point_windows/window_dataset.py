"""Windows sliced from cached regions: image (+ centre marker), N-channel targets, per-channel loss mask."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from ...preprocess import apply_stats, compute_stats
from .region_cache import CachedRegion

TargetForm = Literal["labels", "line_segments"]
MARKER_RADIUS = (1, 2, 2)  # voxels (z, y, x) of the centre-synapse marker ball


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
        augment: Callable | None = None,
    ):
        self.cached = cached
        self.augment = augment  # (image, mask) -> (image, mask): the same spatial transform for both
        self.target_form = target_form
        self.label_keys = tuple(label_keys)
        self.centre_marker = centre_marker
        self.loss_crop_pad = tuple(loss_crop_pad or (0,) * cached.box.ndim)
        self.min_nonzero_fraction = float(min_nonzero_fraction)
        self.line_point = line_point
        # the "region" normalisation of the whole cached region, as prediction applies it to a volume
        self.stats = compute_stats(cached.arrays["img"], "region", channel_axis_first=False)
        # per-item work kept to slicing: a lookup table for 8-bit images, binary label targets stacked
        # once per region, and the loss-mask template (crop border) built once for the window shape
        self._lut = self._normalise(np.arange(256, dtype=np.uint8)) if cached.arrays["img"].dtype == np.uint8 else None
        self._labels = np.stack([cached.arrays[k] > 0 for k in self.label_keys]).astype(np.uint8) if target_form == "labels" and cached.arrays else None
        self._template = self._crop_template(cached.indexer.window)

    @property
    def channels(self) -> int:
        return 2 if self.target_form == "line_segments" else len(self.label_keys)

    def __len__(self) -> int:
        return len(self.cached.indexer)

    def _normalise(self, image: np.ndarray) -> np.ndarray:
        return apply_stats(image, self.stats, channel_axis_first=False)

    def _local(self, point: Sequence[float]) -> tuple[int, ...]:
        return tuple(int(np.round(p)) - s for p, s in zip(point, self.cached.box.start, strict=True))

    def __getitem__(self, index: int) -> dict:
        window = self.cached.indexer(index)
        where = window.slices(self.cached.box.start)
        arrays = self.cached.arrays
        raw = arrays["img"][where]
        image = (self._lut[raw] if self._lut is not None else self._normalise(raw))[None]
        # targets stay uint8 (the loss casts on the device); `valid` may be the shared template
        if self.centre_marker:
            point = self.cached.indexer.points[index]
            centre = [p - s for p, s in zip(point, window.start, strict=True)]
            image = np.concatenate([image, marker_ball(window.shape, centre)[None]])
        target = self._target(index, where)
        valid = self._valid(where)
        if self.augment is not None:
            image, target, valid = self._augmented(image, target, valid)
        nonzero = float(np.count_nonzero(raw)) / raw.size
        if nonzero < self.min_nonzero_fraction:  # masked, not skipped: DDP ranks stay in step
            valid = np.zeros_like(valid)
        return {
            "image": torch.from_numpy(image),
            "target": torch.from_numpy(target),
            "valid": torch.from_numpy(valid),
            "nonzero_fraction": torch.tensor(nonzero),
        }

    def _target(self, index: int, where: tuple[slice, ...]) -> np.ndarray:
        arrays = self.cached.arrays
        if self.target_form == "labels":
            return self._labels[(slice(None), *where)]
        synapse = self.cached.synapses[index]
        segmentation = arrays["segmentation"]
        ends = (synapse.start, synapse.end if synapse.end is not None else synapse.start)
        ids = [segmentation[self._local(p)] for p in ends]
        window = segmentation[where]
        return np.stack([(window == i) & (i != 0) for i in ids]).astype(np.uint8)

    def _augmented(self, image: np.ndarray, target: np.ndarray, valid: np.ndarray):
        """Image intensity jitter on the image channel only; the centre marker, targets and loss mask
        move with it. Pre stays pre: flips and in-plane rotations move both sides of a synapse alike."""
        marker = image[1:]
        moving = np.concatenate([marker, target.astype(np.float32), valid]).astype(np.float32)
        image, moved = self.augment(image[:1], moving)
        split = [len(marker), len(marker) + len(target)]
        marker, target, valid = np.split(moved, split)
        return np.concatenate([image, marker]), target.astype(np.uint8), np.ascontiguousarray(valid)

    def _crop_template(self, window: Sequence[int]) -> np.ndarray:
        """(C, *window) ones with the `loss_crop_pad` border of every axis set to 0."""
        valid = np.ones((self.channels, *window), np.float32)
        for axis, pad in enumerate(self.loss_crop_pad):
            if pad > 0:
                index = [slice(None)] * valid.ndim
                index[axis + 1] = slice(0, pad)
                valid[tuple(index)] = 0
                index[axis + 1] = slice(window[axis] - pad, window[axis])
                valid[tuple(index)] = 0
        return valid

    def _valid(self, where: tuple[slice, ...]) -> np.ndarray:
        arrays = self.cached.arrays
        keys = self.label_keys if self.target_form == "labels" else ("segmentation", "segmentation")
        if "img_mask" not in arrays and not any(f"{key}_mask" in arrays for key in keys):
            return self._template  # shared: batching copies it, nothing writes to it
        valid = self._template.copy()
        if "img_mask" in arrays:
            valid *= (arrays["img_mask"][where] > 0)[None]
        for channel, key in enumerate(keys):
            if f"{key}_mask" in arrays:
                valid[channel] *= arrays[f"{key}_mask"][where] > 0
        return valid


class PointWindowDataset(ConcatDataset):
    """Every region's windows joined vertically into one dataset."""

    def __init__(self, regions: Sequence[CachedRegion], **options):
        self.parts = [RegionWindows(region, **options) for region in regions]
        super().__init__(self.parts)

    @property
    def channels(self) -> int:
        return self.parts[0].channels if self.parts else 2
