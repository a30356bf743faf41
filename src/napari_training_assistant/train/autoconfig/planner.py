"""`plan`: resolve the training settings one step per setting (rules: see the package doc)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ...project.schemas.architecture import PRESETS, ArchitectureConfig
from ...project.schemas.project_config import AutoConfigDecision, TrainingSettings
from .constants import (
    ANISOTROPY_THRESHOLD,
    BATCH_LIMITS,
    BYTES_PER_PARAMETER,
    CPU_FLOPS_PER_CORE,
    CPU_MEMORY_FRACTION,
    CPU_SMALL_NET,
    CPU_TARGET_STEP_SECONDS,
    GPU_MEMORY_FRACTION,
    GPU_RESERVE_BYTES,
    LARGE_GPU_BYTES,
    MAX_DEPTH,
    MAX_STEPS_PER_EPOCH,
    MIN_STEPS_PER_EPOCH,
    PATCH_LIMIT_2D,
    PATCH_LIMIT_3D,
    MiB,
)
from .context import _PlanContext, _user_values
from .dataset_fingerprint import DatasetFingerprint
from .device import DeviceInfo, describe_device
from .rules import _budget_patch, _fmt, _gib
from .topology import _fit_patch, _Net, _Topology


def _architecture(architecture: Mapping[str, Any] | ArchitectureConfig) -> ArchitectureConfig:
    if isinstance(architecture, ArchitectureConfig):
        return architecture
    return ArchitectureConfig.model_validate(dict(architecture))


def _decide_device(ctx: _PlanContext, device: str | DeviceInfo | None) -> None:
    """device (a DeviceInfo passed by the caller is what gets planned for, so its name is recorded)."""
    info = ctx.info
    if isinstance(device, DeviceInfo) and "device" in ctx.user:
        ctx.user["device"] = info.device
    ctx.decide(
        "device",
        info.device,
        f"{info.kind} device {info.name or info.device} with {_gib(info.memory_bytes)} usable memory "
        f"and {info.cpu_cores} CPU cores",
    )


def _decide_precision(ctx: _PlanContext) -> int:
    """precision; returns the bytes per activation value it implies."""
    info = ctx.info
    if info.kind == "cuda":
        auto_precision = "bf16-mixed" if info.bf16_supported else "16-mixed"
        why = (
            f"CUDA GPU {info.name or info.device} supports bf16: bf16 mixed precision halves activation memory "
            "without fp16 overflow"
            if info.bf16_supported
            else f"CUDA GPU {info.name or info.device} lacks bf16: fp16 mixed precision with loss scaling"
        )
    elif info.kind == "mps":
        auto_precision, why = "32", "MPS: fp32 (mixed precision on MPS is the least mature path)"
    else:
        auto_precision = "32"
        why = "CPU: fp32 (bf16 autocast is ~10x slower on CPUs without AMX/AVX-512; fp16 autocast is unsupported)"
    precision = ctx.decide("precision", auto_precision, why)
    return 2 if precision in ("16-mixed", "bf16-mixed") else 4


def _decide_base_channels(ctx: _PlanContext) -> tuple[Any, bool]:
    """base_channels (the small net on the CPU); returns it and whether the small net is used."""
    config, info, user = ctx.config, ctx.info, ctx.user
    default_net = config.preset == "standard_unet" and config.depth == 4 and config.base_channels == 32
    small_net = info.kind == "cpu" and default_net and "depth" not in user and "base_channels" not in user
    if small_net:
        base = ctx.decide(
            "base_channels",
            CPU_SMALL_NET["base_channels"],
            f"CPU: default U-Net (depth 4, base 32) step ~8 s on 2 cores; using the small net "
            f"(base {CPU_SMALL_NET['base_channels']}) on {info.cpu_cores} cores",
        )
    else:
        base = ctx.decide(
            "base_channels",
            config.base_channels,
            f"kept the architecture's {config.base_channels} (preset {config.preset})",
        )
    return base, small_net


def _raw_patch(ctx: _PlanContext) -> tuple[list[int], str]:
    """The patch before rounding to the pooling factors, and why."""
    fingerprint, info, ndim = ctx.fingerprint, ctx.info, ctx.ndim
    median = list(fingerprint.median_shape)
    if "patch_size" in ctx.user:
        raw_patch = [int(v) for v in ctx.user["patch_size"]]
        if len(raw_patch) != ndim:
            raise ValueError(f"patch_size {raw_patch} needs {ndim} values for {ctx.dims} data")
        return raw_patch, ""
    if info.kind == "cpu":
        limit_2d, limit_3d, where = PATCH_LIMIT_2D["cpu"], PATCH_LIMIT_3D["cpu"], "CPU"
    else:
        large = info.memory_bytes >= LARGE_GPU_BYTES
        limit_2d = PATCH_LIMIT_2D["gpu_large" if large else "gpu_small"]
        limit_3d, where = PATCH_LIMIT_3D["gpu"], f"{info.kind.upper()} with {_gib(info.memory_bytes)}"
    if ndim == 2:
        raw_patch = [min(m, limit_2d) for m in median]
        patch_why = f"median image shape {_fmt(median)} of {fingerprint.n_pairs} pairs, {where} limit {limit_2d} per axis"
        return raw_patch, patch_why
    spacing = fingerprint.median_spacing or [1.0, 1.0, 1.0]
    weights = [min(spacing) / s for s in spacing]
    raw_patch = _budget_patch([min(m, limit_2d) for m in median], weights, float(limit_3d**3))
    patch_why = (
        f"median image shape {_fmt(median)} of {fingerprint.n_pairs} pairs, spacing {_fmt(spacing)} "
        f"(z/in-plane {fingerprint.anisotropy:.3g}), {where} budget {limit_3d}^3 voxels shared in proportion "
        f"to 1/spacing, at most {limit_2d} per axis"
    )
    return raw_patch, patch_why


def _memory_reserve(ctx: _PlanContext) -> tuple[float, str]:
    """Memory available for weights and activations, and why."""
    info = ctx.info
    if ctx.gpu:
        reserve = GPU_MEMORY_FRACTION * info.memory_bytes - GPU_RESERVE_BYTES
        memory_why = (
            f"{GPU_MEMORY_FRACTION:.0%} of {_gib(info.memory_bytes)} free GPU memory less "
            f"{GPU_RESERVE_BYTES // MiB} MiB reserve"
        )
    else:
        reserve = CPU_MEMORY_FRACTION * info.memory_bytes
        memory_why = f"{CPU_MEMORY_FRACTION:.0%} of {_gib(info.memory_bytes)} available memory"
    return reserve, memory_why


def _decide_depth(ctx: _PlanContext, topo: _Topology, small_net: bool, depth_cap: int) -> Any:
    bottleneck = [p // f for p, f in zip(topo.raw, topo.total, strict=True)]
    min_bn = ctx.min_bn
    if small_net:
        depth_why = (
            f"CPU: default U-Net step ~8 s on 2 cores; small net depth {CPU_SMALL_NET['depth']} (cap), "
            f"largest depth <= {depth_cap} whose bottleneck keeps >= {min_bn} voxels per axis of patch "
            f"{_fmt(topo.raw)} (bottleneck {_fmt(bottleneck)})"
        )
    else:
        depth_why = (
            f"largest depth <= {depth_cap} whose bottleneck keeps >= {min_bn} voxels per pooled axis of patch "
            f"{_fmt(topo.raw)} (bottleneck {_fmt(bottleneck)})"
        )
    return ctx.decide("depth", topo.depth, depth_why)


def _decide_anisotropic_levels(ctx: _PlanContext, topo: _Topology, depth: Any) -> None:
    """anisotropic_levels (3D only; 2D records [] without a decision)."""
    if ctx.ndim != 3:
        ctx.resolved["anisotropic_levels"] = []
        return
    level_reasons = "; ".join(
        f"level {lvl}: {w}" for lvl, w in zip(topo.levels, topo.level_reasons, strict=True)
    )
    levels = ctx.decide(
        "anisotropic_levels",
        topo.levels,
        (
            f"pool (y, x) only on levels {topo.levels} ({level_reasons})"
            if topo.levels
            else f"isotropic pooling: z/in-plane spacing ratio {ctx.fingerprint.anisotropy:.3g} <= "
            f"{ANISOTROPY_THRESHOLD:g} and z extent {topo.raw[0]} allows {depth} poolings"
        ),
    )
    if any(not 0 <= int(lvl) < depth for lvl in levels):
        raise ValueError(f"anisotropic_levels {levels} out of range for depth {depth}")


def _decide_patch_size(
    ctx: _PlanContext, topo: _Topology, patch_why: str, shrunk_from: list[int] | None, need: int
) -> Any:
    if shrunk_from is not None:
        patch_why += f"; shrunk from {_fmt(shrunk_from)} so that {need} samples fit in memory"
    if "patch_size" not in ctx.user:
        patch_why += f" -> {_fmt(topo.patch)} (multiple of pooling factors {_fmt(topo.total)} where possible)"
    return ctx.decide("patch_size", [int(v) for v in topo.patch], patch_why)


def _batch_limits(info: DeviceInfo) -> tuple[int, int]:
    return BATCH_LIMITS["gpu" if info.kind != "cpu" else "cpu"]


def _decide_batch_size(
    ctx: _PlanContext, topo: _Topology, net: _Net, patch: Any, depth: Any, memory_why: str
) -> int:
    """batch_size: what fits in memory, on the CPU also what keeps a step short."""
    info = ctx.info
    per_sample, step_flops, params = topo.per_sample, topo.flops, topo.params
    memory_why += f"{' and' if ctx.gpu else ' less'} {BYTES_PER_PARAMETER * params / MiB:.0f} MiB for {params:,} parameters"
    lo, hi = _batch_limits(info)
    memory_batch = int(topo.usable // per_sample)
    seconds_per_sample = step_flops / (CPU_FLOPS_PER_CORE[ctx.dims] * info.cpu_cores)
    if info.kind == "cpu":
        compute_batch = int(CPU_TARGET_STEP_SECONDS // seconds_per_sample) if seconds_per_sample > 0 else hi
        auto_batch = max(lo, min(hi, memory_batch, compute_batch))
        batch_why = (
            f"CPU: ~{seconds_per_sample:.2f} s per sample on {info.cpu_cores} cores (est. {step_flops / 1e9:.1f} GFLOP), "
            f"step target {CPU_TARGET_STEP_SECONDS:g} s -> {compute_batch}; memory {per_sample / MiB:.0f} MiB per sample in "
            f"{memory_why} -> {memory_batch}; clamped to {lo}..{hi} -> {auto_batch} "
            f"(~{auto_batch * seconds_per_sample:.1f} s per step)"
        )
    else:
        auto_batch = max(lo, min(hi, memory_batch))
        batch_why = (
            f"estimated {per_sample / MiB:.0f} MiB activations per sample (patch {_fmt(patch)}, depth {depth}, base {net.base}, "
            f"{net.bytes_per_value}-byte values) in {memory_why} -> {memory_batch}; clamped to {lo}..{hi} -> {auto_batch}"
        )
    if memory_batch < lo:
        batch_why += f" (WARNING: even {lo} samples may not fit in memory)"
    return int(ctx.decide("batch_size", auto_batch, batch_why))


def _decide_samples_per_epoch(ctx: _PlanContext, patch: Any, batch: int) -> None:
    fingerprint = ctx.fingerprint
    patch_voxels = math.prod(patch)
    cover = math.ceil(fingerprint.total_voxels / patch_voxels)
    max_steps = MAX_STEPS_PER_EPOCH["cpu" if ctx.info.kind == "cpu" else "gpu"]
    steps = max(MIN_STEPS_PER_EPOCH, min(max_steps, math.ceil(cover / batch)))
    ctx.decide(
        "samples_per_epoch",
        steps * batch,
        f"{fingerprint.total_voxels:,} training voxels in {fingerprint.n_pairs} pairs ~ {cover} patches of "
        f"{_fmt(patch)}; {steps} steps of {batch} (between {MIN_STEPS_PER_EPOCH} and {max_steps} steps per epoch)",
    )


def _decide_num_workers(ctx: _PlanContext) -> None:
    """num_workers: data-loading processes."""
    info = ctx.info
    cores = info.cpu_cores
    if ctx.gpu:
        workers = min(4, max(cores - 1, 0))
        workers_why = f"CUDA: min(4, {cores} cores - 1) loader processes keep the GPU fed"
    elif cores <= 4:
        workers = 0
        workers_why = f"{info.kind.upper()} with {cores} cores: loading in the main process leaves every core to the model"
    else:
        workers = min(2, cores // 4)
        workers_why = f"{info.kind.upper()} with {cores} cores: min(2, {cores} // 4) loader processes"
    ctx.decide("num_workers", workers, workers_why)


def plan(
    fingerprint: DatasetFingerprint,
    architecture: Mapping[str, Any] | ArchitectureConfig,
    settings: TrainingSettings | None = None,
    device: str | DeviceInfo | None = None,
    user_overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[AutoConfigDecision]]:
    """Resolve the training settings for `fingerprint` on `device` (rules: see the package doc).

    device: a device string ("auto", "cpu", "cuda", "cuda:N", "mps"; default ``settings.device``)
        or a `DeviceInfo` (e.g. a made-up GPU, to plan for another machine).
    user_overrides: names of settings the user fixed (values from `settings` or the
        architecture), or a mapping name -> value.
    Returns (resolved, decisions): `resolved` holds device, precision, base_channels, depth,
    anisotropic_levels, patch_size, batch_size, samples_per_epoch and num_workers; `decisions`
    one `AutoConfigDecision` per resolved setting (anisotropic_levels only in 3D), in that order.
    """
    config = _architecture(architecture)
    settings = settings or TrainingSettings()
    if fingerprint.spatial_dims != config.spatial_dims:
        raise ValueError(
            f"the data are {fingerprint.spatial_dims} but the architecture is {config.spatial_dims}; "
            "change spatial_dims or the pairs"
        )
    user = _user_values(user_overrides, settings, config)
    if isinstance(device, DeviceInfo):
        info = device
    else:
        info = describe_device(user.get("device", device if device is not None else settings.device))
    ctx = _PlanContext(fingerprint, config, user, info)

    _decide_device(ctx, device)
    bytes_per_value = _decide_precision(ctx)
    base, small_net = _decide_base_channels(ctx)
    depth_cap = CPU_SMALL_NET["depth"] if small_net else MAX_DEPTH
    raw_patch, patch_why = _raw_patch(ctx)
    reserve, memory_why = _memory_reserve(ctx)
    net = _Net(base, depth_cap, bytes_per_value, reserve)
    need = int(user["batch_size"]) if "batch_size" in user else _batch_limits(info)[0]
    topo, shrunk_from = _fit_patch(ctx, raw_patch, net, need)
    depth = _decide_depth(ctx, topo, small_net, depth_cap)
    _decide_anisotropic_levels(ctx, topo, depth)
    patch = _decide_patch_size(ctx, topo, patch_why, shrunk_from, need)
    batch = _decide_batch_size(ctx, topo, net, patch, depth, memory_why)
    _decide_samples_per_epoch(ctx, patch, batch)
    _decide_num_workers(ctx)
    return ctx.resolved, ctx.decisions


def planned_architecture(
    architecture: Mapping[str, Any] | ArchitectureConfig, resolved: Mapping[str, Any]
) -> ArchitectureConfig:
    """The architecture with the planned depth, base_channels and anisotropic_levels applied.

    The preset becomes the preset whose depth and base match, else "custom".
    """
    config = _architecture(architecture)
    data = config.model_dump()
    for key in ("depth", "base_channels", "anisotropic_levels"):
        if key in resolved:
            data[key] = resolved[key]
    if config.spatial_dims == "2d":
        data["anisotropic_levels"] = []
    data["preset"] = next(
        (
            name
            for name, p in PRESETS.items()
            if p["depth"] == data["depth"] and p["base_channels"] == data["base_channels"]
        ),
        "custom",
    )
    return ArchitectureConfig.model_validate(data)
