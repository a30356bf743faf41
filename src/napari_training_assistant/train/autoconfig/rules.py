"""Rule helpers of the planner: reason formatting, the 3D patch budget, anisotropic pooling, depth fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .constants import ANISOTROPY_THRESHOLD, MAX_LEVELS, GiB
from .estimates import _total_factor


def _fmt(shape: Sequence[Any]) -> str:
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in shape)


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def _budget_patch(limit_axis: Sequence[float], weights: Sequence[float], budget: float) -> list[int]:
    """Per axis min(limit, s * weight) with s as large as the voxel budget allows."""
    if math.prod(limit_axis) <= budget:
        return [max(1, int(v)) for v in limit_axis]
    lo, hi = 0.0, max(limit_axis) / min(weights) + 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if math.prod(min(lim, mid * w) for lim, w in zip(limit_axis, weights, strict=True)) <= budget:
            lo = mid
        else:
            hi = mid
    return [max(1, int(min(lim, lo * w))) for lim, w in zip(limit_axis, weights, strict=True)]


def _anisotropic_pattern(
    anisotropy: float, z_extent: int, min_bottleneck: int
) -> tuple[list[bool], list[str]]:
    """Per level (0..MAX_LEVELS-1): pool (y, x) only? With the reason for each such level."""
    pattern, why = [], []
    ratio, z = anisotropy, z_extent
    for _level in range(MAX_LEVELS):
        if ratio > ANISOTROPY_THRESHOLD:
            pattern.append(True)
            why.append(f"z/in-plane voxel ratio {ratio:.3g} > {ANISOTROPY_THRESHOLD:g}")
            ratio /= 2
        elif z // 2 < min_bottleneck:
            pattern.append(True)
            why.append(f"z extent {z} would drop below {min_bottleneck}")
        else:
            pattern.append(False)
            why.append("")
            z //= 2
    return pattern, why


def _depth_fits(patch: Sequence[int], factors: Sequence[tuple[int, ...]], min_bottleneck: int) -> bool:
    total = _total_factor(factors, len(patch))
    return all(p / f >= min(min_bottleneck, p) for p, f in zip(patch, total, strict=True))


def _round_patch(patch: Sequence[int], total: Sequence[int]) -> list[int]:
    return [p // f * f if p >= f else p for p, f in zip(patch, total, strict=True)]
