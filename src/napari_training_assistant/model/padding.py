"""Pad any input up to a size the U-Net can pool, and crop the output back.

Padding is centred (half before, half after each axis). It reflects the image when every pad
is smaller than the axis, else it replicates the edge (reflect cannot pad a 1-pixel axis).
If the bottleneck would be a single pixel, the last axis gets one more pooling factor, so
batch/instance/group normalization always sees at least two values per channel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def padded_size(size: Sequence[int], factors: Sequence[int]) -> list[int]:
    """Smallest multiple of `factors` per axis covering `size`, with a bottleneck of >= 2 cells."""
    target = [max(1, math.ceil(s / f)) * f for s, f in zip(size, factors, strict=True)]
    if all(t == f for t, f in zip(target, factors, strict=True)):
        target[-1] += factors[-1]
    return target


def pad_to_multiple(x: torch.Tensor, factors: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad the spatial axes of `x` (N, C, *spatial); return it and the slices that crop back."""
    size = list(x.shape[2:])
    target = padded_size(size, factors)
    before = [(t - s) // 2 for s, t in zip(size, target, strict=True)]
    after = [t - s - b for s, t, b in zip(size, target, before, strict=True)]
    crop = (slice(None), slice(None), *(slice(b, b + s) for b, s in zip(before, size, strict=True)))
    if not any(before) and not any(after):
        return x, crop
    fits = all(b < s and a < s for b, a, s in zip(before, after, size, strict=True))
    pad: list[int] = []
    for b, a in zip(reversed(before), reversed(after), strict=True):  # F.pad wants the last axis first
        pad += [b, a]
    return F.pad(x, pad, mode="reflect" if fits else "replicate"), crop
