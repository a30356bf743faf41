"""A 2D plane as SAM3 sees it: (H, W, 3) uint8, intensities stretched between robust percentiles."""

from __future__ import annotations

import math

import numpy as np

from .errors import Sam3Error


def to_rgb_uint8(image: np.ndarray, limits: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 for SAM3 from a grey (H, W) or (H, W, C) plane with C in 1, 3, 4 (alpha dropped).

    uint8 data is kept as it is; any other dtype (uint16, float, ...) is scaled linearly so that the 0.5 and
    99.5 percentiles (or `limits`, e.g. computed once for a whole stack) map to 0 and 255."""
    data = np.asarray(image)
    if data.ndim == 3 and data.shape[-1] in (1, 3, 4):
        data = data[..., 0] if data.shape[-1] == 1 else data[..., :3]
    elif data.ndim != 2:
        raise Sam3Error(f"SAM3 segments 2D grey or RGB(A) planes, not an array of shape {data.shape}: choose a 2D image or one slice")
    if data.dtype != np.uint8:
        lo, hi = limits if limits is not None else intensity_limits(data)
        values = np.nan_to_num(data.astype(np.float32), nan=lo, posinf=hi, neginf=lo)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        data = np.clip((values - lo) * scale, 0, 255).round().astype(np.uint8)
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=-1)
    return np.ascontiguousarray(data)


def intensity_limits(data: np.ndarray, max_samples: int = 1 << 22) -> tuple[float, float]:
    """The 0.5 and 99.5 percentiles of the finite values (a regular subsample above `max_samples` values)."""
    flat = np.asarray(data).reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: int(math.ceil(flat.size / max_samples))]
    flat = flat[np.isfinite(flat)] if np.issubdtype(flat.dtype, np.floating) else flat
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(flat, (0.5, 99.5))
    return float(lo), float(hi)
