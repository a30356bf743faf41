"""The U-Net's shape for a patch (depth, anisotropic levels, rounded patch, cost) and shrinking it to fit."""

from __future__ import annotations

from dataclasses import dataclass

from .constants import BYTES_PER_PARAMETER, MAX_LEVELS
from .context import _PlanContext
from .estimates import (
    _total_factor,
    activation_bytes_per_sample,
    forward_flops_per_sample,
    parameter_count,
    pooling_factors,
)
from .rules import _anisotropic_pattern, _depth_fits, _round_patch


@dataclass
class _Topology:
    raw: list[int]
    depth: int
    levels: list[int]
    level_reasons: list[str]
    factors: list[tuple[int, ...]]
    total: list[int]
    patch: list[int]
    per_sample: int
    flops: float
    params: int
    usable: float


@dataclass(frozen=True)
class _Net:
    """What the topology search needs besides the patch: net width, depth cap, value size, memory."""

    base: int
    depth_cap: int
    bytes_per_value: int
    reserve: float


def _level_pattern(ctx: _PlanContext, raw: list[int]) -> tuple[list[bool], list[str]]:
    """Per level (0..MAX_LEVELS-1): pool (y, x) only? The user's levels, the anisotropy rule, or none (2D)."""
    user = ctx.user
    if ctx.ndim == 3 and "anisotropic_levels" in user:
        fixed = sorted(int(v) for v in user["anisotropic_levels"])
        return [lvl in fixed for lvl in range(MAX_LEVELS)], ["set by the user"] * MAX_LEVELS
    if ctx.ndim == 3:
        return _anisotropic_pattern(ctx.fingerprint.anisotropy, raw[0], ctx.min_bn)
    return [False] * MAX_LEVELS, [""] * MAX_LEVELS


def _depth_for(ctx: _PlanContext, raw: list[int], pattern: list[bool], depth_cap: int) -> int:
    """The user's depth, else the largest depth <= `depth_cap` whose bottleneck keeps enough voxels."""
    user = ctx.user
    if "depth" in user:
        return int(user["depth"])
    depth = next(
        (
            d
            for d in range(depth_cap, 0, -1)
            if _depth_fits(
                raw, pooling_factors(ctx.dims, d, [lvl for lvl in range(d) if pattern[lvl]]), ctx.min_bn
            )
        ),
        1,
    )
    if ctx.ndim == 3 and "anisotropic_levels" in user and user["anisotropic_levels"]:
        depth = max(depth, max(int(v) for v in user["anisotropic_levels"]) + 1)
    return depth


def _topology(ctx: _PlanContext, raw: list[int], net: _Net) -> _Topology:
    """Depth, anisotropic levels and the rounded patch for one raw patch."""
    config, dims = ctx.config, ctx.dims
    pattern, pattern_why = _level_pattern(ctx, raw)
    depth = _depth_for(ctx, raw, pattern, net.depth_cap)
    levels = [lvl for lvl in range(min(depth, MAX_LEVELS)) if pattern[lvl]] if ctx.ndim == 3 else []
    factors = pooling_factors(dims, depth, levels)
    total = _total_factor(factors, ctx.ndim)
    patch = list(raw) if "patch_size" in ctx.user else _round_patch(raw, total)
    per = activation_bytes_per_sample(
        patch, depth, net.base, factors, config.input_channels, config.output_channels, net.bytes_per_value
    )
    flops = 3.0 * forward_flops_per_sample(
        patch, depth, net.base, factors, config.input_channels, config.output_channels
    )
    params = parameter_count(depth, net.base, dims, config.input_channels, config.output_channels)
    usable = max(0.0, net.reserve - BYTES_PER_PARAMETER * params)
    return _Topology(
        raw,
        depth,
        levels,
        [pattern_why[lvl] for lvl in levels],
        factors,
        total,
        patch,
        per,
        flops,
        params,
        usable,
    )


def _fit_patch(
    ctx: _PlanContext, raw_patch: list[int], net: _Net, need: int
) -> tuple[_Topology, list[int] | None]:
    """Shrink the (raw) patch while not even `need` samples fit; the topology follows the patch.

    Returns the topology and the rounded patch before the first shrink (None if none was needed).
    """
    ndim = ctx.ndim
    topo = _topology(ctx, raw_patch, net)
    shrunk_from = None
    if "patch_size" not in ctx.user:
        spacing = ctx.fingerprint.median_spacing or [1.0] * ndim
        floor = [min(r, 2 * ctx.min_bn) for r in raw_patch]
        for _ in range(500):
            if topo.usable // topo.per_sample >= need:
                break
            axes = [i for i in range(ndim) if topo.raw[i] > floor[i]]
            if not axes:
                break
            axis = max(axes, key=lambda i: topo.raw[i] * spacing[i])
            shrunk_from = shrunk_from or list(topo.patch)
            raw = list(topo.raw)
            raw[axis] = max(floor[axis], int(raw[axis] * 0.9))
            topo = _topology(ctx, raw, net)
    return topo, shrunk_from
