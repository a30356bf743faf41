"""Training patches and validation tiles from a project's image/mask pairs.

* `load_pairs` reads each listed pair once, normalises its image per channel and keeps the
  arrays in memory.  Which pairs train, validate or benchmark is decided only by the
  `pair_ids` the caller passes: nothing else is ever read or sampled.
* `PatchSampler` is a map-style `torch.utils.data.Dataset` of random training patches
  (foreground oversampling, padding of small pairs, optional augmentation), reproducible per
  (seed, epoch, index) in any DataLoader worker.
* `ValidationTiles` covers every voxel of each pair exactly once, deterministically.

Samples are dicts of tensors::

    image   float32 (C, *patch)            normalised image
    target  binary:     float32 (1, *patch) 0/1
            multiclass: int64   (*patch)    class ids
            multilabel: float32 (C, *patch) 0/1
    valid   float32 (1, *patch)            1 on real voxels, 0 on padding (and, for
                                           validation tiles, on voxels another tile owns)
    pair_id str                            (a list of str once collated)

Padding (a pair smaller than the patch on some axis): the image is reflected, the mask is
padded with 0 and `valid` is 0 there, so losses and metrics should weight by `valid`.
Padding goes after the data (at the high end of each short axis).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..preprocess import NormalizationStats, apply_stats, compute_stats
from .augment import Augmenter

if TYPE_CHECKING:
    from ..project import TrainingProject

OutputMode = Literal["binary", "multiclass", "multilabel"]
OUTPUT_MODES: tuple[str, ...] = ("binary", "multiclass", "multilabel", "instance")

MEMMAP_ABOVE_BYTES = 1 << 30  # images larger than this as float32 are memory-mapped when possible
MAX_FOREGROUND_POINTS = 1_000_000  # foreground voxels kept per pair for oversampling (evenly strided)
MIN_SAMPLES_PER_EPOCH = 32
SAMPLES_PER_PAIR = 8
FOREGROUND_JITTER = 0.25  # foreground-centred patches move by up to this fraction of the patch
_BLOCK_VOXELS = 1 << 24  # foreground search works on blocks of about this many voxels


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True, eq=False)
class PairArrays:
    """One pair ready for sampling.

    `image` is ``(C, *spatial)``.  Normally (``normalized=True``) it holds the normalised
    float32 values.  A large image memory-mapped from disk stays raw (``normalized=False``)
    and `image_patch` normalises each crop with `stats`; always read crops through
    `image_patch`.  `mask` is ``(*spatial)`` (binary / multiclass labels) or
    ``(C, *spatial)`` (multilabel).  `stats` records the normalisation (None when the
    arrays were given already normalised).
    """

    pair_id: str
    image: np.ndarray
    mask: np.ndarray
    spatial_dims: str
    stats: NormalizationStats | None = None
    normalized: bool = True

    def __post_init__(self) -> None:
        if self.spatial_dims not in ("2d", "3d"):
            raise ValueError(f"{self.pair_id}: spatial_dims must be '2d' or '3d', got {self.spatial_dims!r}")
        nd = self.ndim
        image = self.image if isinstance(self.image, np.ndarray) else np.asarray(self.image)
        if image.ndim == nd:
            image = image[None]
        if image.ndim != nd + 1:
            raise ValueError(
                f"{self.pair_id}: image shape {image.shape} is not (C, *spatial) for {self.spatial_dims}"
            )
        if self.normalized and image.dtype != np.float32:
            image = image.astype(np.float32)
        if not self.normalized and self.stats is None:
            raise ValueError(f"{self.pair_id}: a raw (normalized=False) image needs its NormalizationStats")
        mask = self.mask if isinstance(self.mask, np.ndarray) else np.asarray(self.mask)
        if mask.ndim not in (nd, nd + 1) or mask.shape[-nd:] != image.shape[1:]:
            raise ValueError(
                f"{self.pair_id}: mask shape {mask.shape} does not fit image shape {image.shape}"
            )
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "mask", mask)

    @classmethod
    def from_raw(
        cls,
        pair_id: str,
        image: np.ndarray,
        mask: np.ndarray,
        spatial_dims: str,
        normalization: str,
        *,
        has_channels: bool,
    ) -> PairArrays:
        """Normalise `image` (channel axis first when `has_channels`) and wrap it."""
        image = np.asarray(image)
        if not has_channels:
            image = image[None]
        stats = compute_stats(image, normalization, channel_axis_first=True)
        return cls(
            pair_id, apply_stats(image, stats, channel_axis_first=True), np.asarray(mask), spatial_dims, stats
        )

    @property
    def ndim(self) -> int:
        return 2 if self.spatial_dims == "2d" else 3

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.image.shape[1:])

    @property
    def channels(self) -> int:
        return int(self.image.shape[0])

    def image_patch(self, slices: tuple[slice, ...]) -> np.ndarray:
        """Normalised float32 ``(C, *crop)`` for spatial `slices` (a fresh array)."""
        crop = self.image[(slice(None), *slices)]
        if self.normalized:
            return np.array(crop, dtype=np.float32)
        assert self.stats is not None
        return apply_stats(crop, self.stats, channel_axis_first=True)

    def mask_patch(self, slices: tuple[slice, ...]) -> np.ndarray:
        lead = (slice(None),) if self.mask.ndim == self.ndim + 1 else ()
        return np.array(self.mask[(*lead, *slices)])

    def foreground(self) -> np.ndarray:
        """Boolean ``(*spatial)``: any label / channel > 0 (computed on demand, not cached)."""
        fg = self.mask > 0
        return fg.any(axis=0) if self.mask.ndim == self.ndim + 1 else fg


def load_pairs(
    project: TrainingProject,
    pair_ids: Sequence[str],
    normalization: str,
    *,
    memmap_above_bytes: int = MEMMAP_ABOVE_BYTES,
) -> list[PairArrays]:
    """Read the listed pairs once each (in the given order, duplicates dropped) and normalise them.

    An image whose float32 copy would exceed `memmap_above_bytes` (1 GiB) is memory-mapped
    with `tifffile.memmap` and normalised crop by crop instead; this works only for
    uncompressed, contiguous TIFFs, and the project's own `write_tiff` compresses, so such
    files usually fall back to being read into memory (then normalised in memory as usual).
    The mask of a memory-mapped image is memory-mapped too when possible.
    """
    from ..project.dataset import load_pair_arrays
    from ..project.image_io import read_tiff

    manifest = project.manifest
    pairs: list[PairArrays] = []
    for pair_id in dict.fromkeys(pair_ids):
        record = manifest.get(pair_id)
        if record is None:
            from ..project.errors import DatasetError

            raise DatasetError(f"no pair {pair_id!r} in this project: list pairs with `nta pairs {project.root}`")
        has_channels = record.image_channels is not None
        if math.prod(record.image_shape) * 4 > memmap_above_bytes:  # shape checked by _memmap, not hashed
            image_path = project.layout.absolute(record.image_path)
            mask_path = project.layout.absolute(record.mask_path)
            raw = _memmap(image_path, record.image_shape)
            if raw is not None:
                image = raw if has_channels else raw[None]
                stats = compute_stats(image, normalization, channel_axis_first=True)
                mask = _memmap(mask_path, record.mask_shape)
                mask = read_tiff(mask_path) if mask is None else mask
                pairs.append(PairArrays(pair_id, image, mask, record.spatial_dims, stats, normalized=False))
                continue
        image, mask = load_pair_arrays(project, record)
        pairs.append(PairArrays.from_raw(pair_id, image, mask, record.spatial_dims, normalization, has_channels=has_channels))
    return pairs


def _memmap(path: Path, shape: Sequence[int]) -> np.ndarray | None:
    """Read-only memory map of an uncompressed TIFF with the expected shape, else None."""
    import tifffile

    try:
        array = tifffile.memmap(path, mode="r")
    except Exception:  # compressed, tiled or otherwise not mappable: caller reads it instead
        return None
    return array if tuple(array.shape) == tuple(shape) else None


# --------------------------------------------------------------------------- shared helpers


def _check_patch(pairs: Sequence[PairArrays], patch_size: Sequence[int]) -> tuple[int, ...]:
    if not pairs:
        raise ValueError("no pairs to sample from: add pairs to this split first")
    patch = tuple(int(p) for p in patch_size)
    dims = {p.spatial_dims for p in pairs}
    if len(dims) > 1:
        raise ValueError(f"pairs mix 2D and 3D ({', '.join(sorted(dims))}); train one kind at a time")
    nd = pairs[0].ndim
    if len(patch) != nd or any(p < 1 for p in patch):
        raise ValueError(
            f"patch_size {list(patch)} must be {nd} positive sizes for {pairs[0].spatial_dims} pairs"
        )
    return patch


def _check_output_mode(pairs: Sequence[PairArrays], output_mode: str) -> None:
    if output_mode not in OUTPUT_MODES:
        raise ValueError(f"output_mode {output_mode!r} is not one of {', '.join(OUTPUT_MODES)}")
    for pair in pairs:
        has_channels = pair.mask.ndim == pair.ndim + 1
        if output_mode == "multilabel" and not has_channels:
            raise ValueError(
                f"{pair.pair_id}: multilabel needs a (C, *spatial) mask, got shape {pair.mask.shape}"
            )
        if output_mode != "multilabel" and has_channels and pair.mask.shape[0] != 1:
            raise ValueError(
                f"{pair.pair_id}: {output_mode} needs a (*spatial) label mask, got shape {pair.mask.shape}"
            )


def _pad(
    image: np.ndarray, mask: np.ndarray, patch: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad crops at the high end up to `patch`: image reflected, mask 0; also return valid (uint8)."""
    nd = len(patch)
    crop = image.shape[1:]
    valid = np.ones(crop, dtype=np.uint8)
    extra = [p - n for p, n in zip(patch, crop, strict=True)]
    if any(extra):
        spatial = [(0, e) for e in extra]
        image = np.pad(image, [(0, 0), *spatial], mode="reflect")
        lead = [(0, 0)] * (mask.ndim - nd)
        mask = np.pad(mask, [*lead, *spatial], mode="constant")
        valid = np.pad(valid, spatial, mode="constant")
    return image, mask, valid


def _to_sample(
    image: np.ndarray, mask: np.ndarray, valid: np.ndarray, pair_id: str, output_mode: str, nd: int
) -> dict[str, Any]:
    if output_mode == "multiclass":
        labels = mask[0] if mask.ndim == nd + 1 else mask
        target = torch.from_numpy(labels.astype(np.int64))
    elif output_mode == "multilabel":
        target = torch.from_numpy((mask > 0).astype(np.float32))
    elif output_mode == "instance":
        from ..predict.instances import targets_from_instances

        target = torch.from_numpy(targets_from_instances(mask[0] if mask.ndim == nd + 1 else mask))
    else:
        labels = mask[0] if mask.ndim == nd + 1 else mask
        target = torch.from_numpy((labels > 0).astype(np.float32)[None])
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
        "target": target,
        "valid": torch.from_numpy(valid.astype(np.float32)[None]),
        "pair_id": pair_id,
    }


def foreground_points(pair: PairArrays, limit: int = MAX_FOREGROUND_POINTS) -> np.ndarray:
    """Flat (C-order, spatial) indices of foreground voxels, evenly strided down to <= `limit`.

    Works block by block along the first spatial axis, so huge (memory-mapped) masks are
    never turned into one big boolean array.
    """
    shape = pair.spatial_shape
    plane = max(1, math.prod(shape[1:]))
    rows = max(1, _BLOCK_VOXELS // plane)
    blocks = [(start, min(start + rows, shape[0])) for start in range(0, shape[0], rows)]

    total = sum(int(np.count_nonzero(_fg_block(pair, lo, hi))) for lo, hi in blocks)
    step = max(1, math.ceil(total / max(1, limit)))
    found: list[np.ndarray] = []
    seen = 0
    for lo, hi in blocks:
        flat = np.flatnonzero(_fg_block(pair, lo, hi))
        # keep indices whose running position is a multiple of step (even striding across blocks)
        first = (-seen) % step
        found.append(flat[first::step] + lo * plane)
        seen += flat.size
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


def _fg_block(pair: PairArrays, lo: int, hi: int) -> np.ndarray:
    nd = pair.ndim
    if pair.mask.ndim == nd + 1:
        return (pair.mask[:, lo:hi] > 0).any(axis=0)
    return pair.mask[lo:hi] > 0


# --------------------------------------------------------------------------- training patches


class PatchSampler(Dataset):
    """Random training patches, reproducible per (seed, epoch, index).

    Each item draws, from ``np.random.default_rng((seed, epoch, index))``:

    1. a pair, with probability proportional to the number of patch-sized tiles needed to
       cover it (``prod(ceil(shape / patch))``, at least 1: big images give more patches, small
       ones still appear); ``pair_weighting="uniform"`` picks pairs uniformly instead;
    2. with probability `foreground_oversampling` (and when the pair has foreground), a
       patch centred on a random foreground voxel, moved by up to a quarter patch at random
       but always containing that voxel; otherwise a uniformly random position;
    3. the crop (padded when the pair is smaller than the patch, see the module docstring),
       then the `augmenter` (same generator) applied to the image and to mask and `valid`
       together.

    `__len__` is `samples_per_epoch`, by default ``max(32, 8 * len(pairs), total tiles)``.
    Call `set_epoch(e)` before each epoch to draw new patches; with DataLoader workers use
    ``persistent_workers=False`` (workers copy the dataset when an epoch's iteration starts,
    so the epoch set beforehand reaches them).
    """

    def __init__(
        self,
        pairs: Sequence[PairArrays],
        patch_size: Sequence[int],
        *,
        foreground_oversampling: float = 1 / 3,
        augmenter: Augmenter | None = None,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        output_mode: OutputMode = "binary",
        pair_weighting: Literal["size", "uniform"] = "size",
    ):
        self.pairs = list(pairs)
        self.patch_size = _check_patch(self.pairs, patch_size)
        _check_output_mode(self.pairs, output_mode)
        if not 0 <= foreground_oversampling <= 1:
            raise ValueError(f"foreground_oversampling must be in [0, 1], got {foreground_oversampling}")
        if pair_weighting not in ("size", "uniform"):
            raise ValueError(f"pair_weighting must be 'size' or 'uniform', got {pair_weighting!r}")
        if augmenter is not None and augmenter.ndim != len(self.patch_size):
            raise ValueError(
                f"augmenter is for {augmenter.spatial_dims} but the pairs are {self.pairs[0].spatial_dims}"
            )
        self.foreground_oversampling = float(foreground_oversampling)
        self.augmenter = augmenter
        self.seed = int(seed)
        self.output_mode = output_mode
        self.pair_weighting = pair_weighting
        self.epoch = 0
        tiles = [
            math.prod(math.ceil(n / p) for n, p in zip(pair.spatial_shape, self.patch_size, strict=True))
            for pair in self.pairs
        ]
        weights = np.asarray(tiles if pair_weighting == "size" else [1] * len(tiles), dtype=np.float64)
        self._cumulative = np.cumsum(weights / weights.sum())
        self._foreground = [foreground_points(pair) for pair in self.pairs]
        if samples_per_epoch is None:
            samples_per_epoch = max(MIN_SAMPLES_PER_EPOCH, SAMPLES_PER_PAIR * len(self.pairs), sum(tiles))
        if samples_per_epoch < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        self.samples_per_epoch = int(samples_per_epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed % 2**64, self.epoch, int(index)))

    def position(self, index: int) -> tuple[int, tuple[int, ...], bool]:
        """(pair index, patch start, foreground-centred?) of item `index` -- no array is read."""
        return self._draw(self.rng(index))

    def _draw(self, rng: np.random.Generator) -> tuple[int, tuple[int, ...], bool]:
        which = min(int(np.searchsorted(self._cumulative, rng.random(), side="right")), len(self.pairs) - 1)
        shape = self.pairs[which].spatial_shape
        wants_fg = rng.random() < self.foreground_oversampling
        points = self._foreground[which]
        highest = [max(n - p, 0) for n, p in zip(shape, self.patch_size, strict=True)]
        if wants_fg and points.size:
            centre = np.unravel_index(int(points[rng.integers(points.size)]), shape)
            start = []
            for c, p, hi in zip(centre, self.patch_size, highest, strict=True):
                reach = int(p * FOREGROUND_JITTER)
                jitter = int(rng.integers(-reach, reach + 1))
                start.append(min(max(int(c) - p // 2 + jitter, 0), hi))
            return which, tuple(start), True
        return which, tuple(int(rng.integers(hi + 1)) for hi in highest), False

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rng = self.rng(index)
        which, start, _ = self._draw(rng)
        pair = self.pairs[which]
        slices = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size, strict=True))
        image, mask, valid = _pad(pair.image_patch(slices), pair.mask_patch(slices), self.patch_size)
        nd = len(self.patch_size)
        if self.augmenter is not None and self.augmenter.enabled:
            stacked = _stack_valid(mask, valid, nd)
            image, stacked = self.augmenter(image, stacked, rng=rng)
            assert stacked is not None
            mask, valid = stacked[:-1], stacked[-1].astype(np.uint8)
        return _to_sample(image, mask, valid, pair.pair_id, self.output_mode, nd)


def _stack_valid(mask: np.ndarray, valid: np.ndarray, nd: int) -> np.ndarray:
    """(Cm + 1, *patch): mask channels then valid, in a dtype holding both."""
    channels = mask if mask.ndim == nd + 1 else mask[None]
    dtype = np.promote_types(channels.dtype, np.uint8)
    return np.concatenate([channels.astype(dtype, copy=False), valid[None].astype(dtype)], axis=0)


# --------------------------------------------------------------------------- validation tiles


def _axis_tiles(size: int, patch: int) -> list[tuple[int, int, int]]:
    """(start, owned_from, owned_to) per tile along one axis; owned range in tile coordinates.

    Non-overlapping tiles from 0; a remainder is covered by one last tile aligned to the
    end (full context, no padding) that owns only the voxels no earlier tile owns.  An axis
    shorter than the patch gets one padded tile owning the real voxels.
    """
    if size <= patch:
        return [(0, 0, size)]
    tiles = [(start, 0, patch) for start in range(0, size - patch + 1, patch)]
    covered = tiles[-1][0] + patch
    if covered < size:
        start = size - patch
        tiles.append((start, covered - start, patch))
    return tiles


class ValidationTiles(Dataset):
    """Deterministic tiles covering every voxel of every pair exactly once (where ``valid == 1``).

    Items are the same dicts as `PatchSampler`'s plus ``origin``: int64 ``(ndim,)`` start of
    the tile in its pair.  No augmentation.  Tiles of one pair follow each other in C order.
    """

    def __init__(
        self, pairs: Sequence[PairArrays], patch_size: Sequence[int], *, output_mode: OutputMode = "binary"
    ):
        self.pairs = list(pairs)
        self.patch_size = _check_patch(self.pairs, patch_size)
        _check_output_mode(self.pairs, output_mode)
        self.output_mode = output_mode
        self.tiles: list[tuple[int, tuple[tuple[int, int, int], ...]]] = []
        for which, pair in enumerate(self.pairs):
            per_axis = [_axis_tiles(n, p) for n, p in zip(pair.spatial_shape, self.patch_size, strict=True)]
            self.tiles.extend((which, combo) for combo in itertools.product(*per_axis))

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} tiles")
        which, combo = self.tiles[index]
        pair = self.pairs[which]
        slices = tuple(
            slice(start, start + p) for (start, _, _), p in zip(combo, self.patch_size, strict=True)
        )
        image, mask, _ = _pad(pair.image_patch(slices), pair.mask_patch(slices), self.patch_size)
        valid = np.zeros(self.patch_size, dtype=np.uint8)
        valid[tuple(slice(lo, hi) for _, lo, hi in combo)] = 1
        nd = len(self.patch_size)
        sample = _to_sample(image, mask, valid, pair.pair_id, self.output_mode, nd)
        if self.output_mode == "instance":  # the objects themselves, for object matching in validation
            sample["instances"] = torch.from_numpy((mask[0] if mask.ndim == nd + 1 else mask).astype(np.int64))
        sample["origin"] = torch.tensor([start for start, _, _ in combo], dtype=torch.int64)
        return sample
