"""Random augmentation of training patches: the same spatial transform for image and mask.

`Augmenter` applies, in this order and each only when its toggle is on:

flips
    each spatial axis (z too for 3D) flipped with probability 1/2;
rot90
    a rotation by k * 90 degrees in the (y, x) plane -- never across z for 3D -- with
    k uniform in 0..3 when y and x have the same size, else k in {0, 2} (shapes never change);
elastic (off by default)
    with probability `elastic_probability`, a smooth random displacement field (random
    offsets of up to `elastic_magnitude` pixels on a coarse grid with `elastic_grid_spacing`
    pixels between nodes, upsampled bicubically) warps the image bilinearly and the mask by
    nearest neighbour (labels stay labels), reflecting at the borders; for 3D the same in-plane
    field is used for every z slice (nothing moves along z);
intensity jitter (image only)
    per channel, with probability 0.3 a gamma in [0.7, 1.5] on channels whose values are all
    >= 0 (``x = max * (x / max) ** gamma``), then ``x * scale + shift`` with
    scale ~ U(0.8, 1.2) and shift ~ U(-0.1, 0.1).

Random numbers come from the generator given to the call (``rng=``) or else the Augmenter's
own, so a sampler that passes ``np.random.default_rng((seed, epoch, index))`` gets exactly the
same augmentation for the same sample, in any DataLoader worker.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from ..project.schemas.project_config import AugmentationSettings

SpatialDims = Literal["2d", "3d"]

FLIP_PROBABILITY = 0.5
GAMMA_PROBABILITY = 0.3
GAMMA_RANGE = (0.7, 1.5)
SCALE_RANGE = (0.8, 1.2)
SHIFT_RANGE = (-0.1, 0.1)


class Augmenter:
    """Random flips, rot90, elastic warps and intensity jitter for (image, mask) patches.

    ``image``: float32 ``(C, *spatial)``; ``mask``: ``(*spatial)`` or ``(Cm, *spatial)`` of
    any numeric dtype, or None.  Returns new contiguous arrays ``(image, mask)`` of the same
    shapes and dtypes (the image as float32); the inputs are never modified.
    """

    def __init__(
        self,
        flips: bool = True,
        rot90: bool = True,
        intensity_jitter: bool = True,
        elastic: bool = False,
        spatial_dims: SpatialDims = "2d",
        rng: np.random.Generator | int | None = None,
        *,
        elastic_magnitude: float = 4.0,
        elastic_grid_spacing: int = 32,
        elastic_probability: float = 0.5,
    ):
        if spatial_dims not in ("2d", "3d"):
            raise ValueError(f"spatial_dims must be '2d' or '3d', got {spatial_dims!r}")
        if elastic_grid_spacing < 1 or elastic_magnitude < 0 or not 0 <= elastic_probability <= 1:
            raise ValueError(
                "elastic_grid_spacing must be >= 1, elastic_magnitude >= 0, elastic_probability in [0, 1]"
            )
        self.flips = bool(flips)
        self.rot90 = bool(rot90)
        self.intensity_jitter = bool(intensity_jitter)
        self.elastic = bool(elastic)
        self.spatial_dims = spatial_dims
        self.ndim = 2 if spatial_dims == "2d" else 3
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.elastic_magnitude = float(elastic_magnitude)
        self.elastic_grid_spacing = int(elastic_grid_spacing)
        self.elastic_probability = float(elastic_probability)

    @classmethod
    def from_settings(
        cls,
        settings: AugmentationSettings,
        spatial_dims: SpatialDims,
        rng: np.random.Generator | int | None = None,
    ) -> Augmenter:
        """Build from the project's `TrainingSettings.augmentation`."""
        return cls(
            flips=settings.flips,
            rot90=settings.rot90,
            intensity_jitter=settings.intensity_jitter,
            elastic=settings.elastic,
            spatial_dims=spatial_dims,
            rng=rng,
        )

    @property
    def enabled(self) -> bool:
        return self.flips or self.rot90 or self.intensity_jitter or self.elastic

    def __repr__(self) -> str:
        on = [n for n in ("flips", "rot90", "intensity_jitter", "elastic") if getattr(self, n)]
        return f"Augmenter({', '.join(on) or 'nothing'}, {self.spatial_dims})"

    # ------------------------------------------------------------------ call
    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        rng = rng if rng is not None else self.rng
        image, mask = self._check(image, mask)
        nd = self.ndim
        if self.flips:
            for axis in range(nd):
                if rng.random() < FLIP_PROBABILITY:
                    image = np.flip(image, axis=image.ndim - nd + axis)
                    if mask is not None:
                        mask = np.flip(mask, axis=mask.ndim - nd + axis)
        if self.rot90:
            square = image.shape[-1] == image.shape[-2]
            k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
            if k:
                image = np.rot90(image, k, axes=(-2, -1))
                if mask is not None:
                    mask = np.rot90(mask, k, axes=(-2, -1))
        if self.elastic and rng.random() < self.elastic_probability:
            image, mask = self._elastic(image, mask, rng)
        image = np.array(image, dtype=np.float32, order="C")  # always a fresh array
        if self.intensity_jitter:
            self._jitter(image, rng)
        return image, (None if mask is None else np.array(mask, order="C"))

    def _check(self, image: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        image = np.asarray(image)
        nd = self.ndim
        if image.ndim != nd + 1:
            raise ValueError(
                f"Augmenter({self.spatial_dims}) needs a (C, *spatial) image with {nd + 1} axes, got shape {image.shape}"
            )
        if mask is None:
            return image, None
        mask = np.asarray(mask)
        if mask.ndim not in (nd, nd + 1) or mask.shape[-nd:] != image.shape[-nd:]:
            raise ValueError(
                f"mask shape {mask.shape} does not fit image shape {image.shape} (spatial {image.shape[-nd:]})"
            )
        return image, mask

    # ------------------------------------------------------------------ elastic
    def _displacement(self, ny: int, nx: int, rng: np.random.Generator) -> np.ndarray:
        """(2, ny, nx) smooth random (dy, dx) displacements in pixels."""
        import torch
        import torch.nn.functional as F

        gy = max(2, math.ceil(ny / self.elastic_grid_spacing) + 1)
        gx = max(2, math.ceil(nx / self.elastic_grid_spacing) + 1)
        coarse = rng.uniform(-self.elastic_magnitude, self.elastic_magnitude, size=(1, 2, gy, gx))
        field = F.interpolate(
            torch.from_numpy(coarse.astype(np.float32)), size=(ny, nx), mode="bicubic", align_corners=True
        )
        return field[0].numpy()

    def _elastic(
        self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        import torch
        import torch.nn.functional as F

        ny, nx = image.shape[-2:]
        dy, dx = self._displacement(ny, nx, rng)
        ys = np.arange(ny, dtype=np.float32)[:, None] + dy
        xs = np.arange(nx, dtype=np.float32)[None, :] + dx
        # align_corners=True: -1 and 1 are the centres of the first and last pixels
        grid = np.stack([_to_unit(xs, nx), _to_unit(ys, ny)], axis=-1)[None]
        grid_t = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))

        def warp(array: np.ndarray, mode: str) -> np.ndarray:
            planes = np.ascontiguousarray(array, dtype=np.float32).reshape(1, -1, ny, nx)
            out = F.grid_sample(
                torch.from_numpy(planes), grid_t, mode=mode, padding_mode="reflection", align_corners=True
            )
            return out.numpy().reshape(array.shape)

        warped_image = warp(image, "bilinear")
        warped_mask = None
        if mask is not None:
            warped = warp(mask, "nearest")
            warped_mask = (np.rint(warped) if np.issubdtype(mask.dtype, np.integer) else warped).astype(
                mask.dtype
            )
        return warped_image, warped_mask

    # ------------------------------------------------------------------ intensity
    @staticmethod
    def _jitter(out: np.ndarray, rng: np.random.Generator) -> None:
        """In place."""
        for c in range(out.shape[0]):
            use_gamma = rng.random() < GAMMA_PROBABILITY
            gamma = math.exp(rng.uniform(math.log(GAMMA_RANGE[0]), math.log(GAMMA_RANGE[1])))
            scale = rng.uniform(*SCALE_RANGE)
            shift = rng.uniform(*SHIFT_RANGE)
            channel = out[c]
            if use_gamma:
                low, high = float(channel.min()), float(channel.max())
                if low >= 0 and high > 0:
                    np.power(channel / np.float32(high), np.float32(gamma), out=channel)
                    channel *= np.float32(high)
            channel *= np.float32(scale)
            channel += np.float32(shift)


def _to_unit(coords: np.ndarray, size: int) -> np.ndarray:
    if size <= 1:
        return np.zeros_like(coords)
    return coords * np.float32(2.0 / (size - 1)) - np.float32(1.0)


class WorkerAugmenter:
    """An `Augmenter` for datasets that draw from its own generator: reseeded once in each DataLoader
    worker (from the worker's seed, new every epoch), so workers never repeat each other's draws."""

    def __init__(self, augmenter: Augmenter, seed: int):
        self.augmenter = augmenter
        self.seed = int(seed)
        self._worker_seed: int | None = None

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None):
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self.augmenter.rng = np.random.default_rng([self.seed, info.seed])
        return self.augmenter(image, mask)
