"""Auto-configuration: a data-set fingerprint plus the device give patch size, batch size, depth, ...

Three steps, all cheap and free of side effects at import:

1. `fingerprint(...)` summarises the training pairs (shapes, spacing, channels, intensities,
   class frequencies) in a JSON-serialisable `DatasetFingerprint`.
2. `describe_device(...)` / `device_memory(...)` say what the device offers.
3. `plan(fingerprint, architecture, settings, device, user_overrides)` resolves the settings and
   explains each one as an `AutoConfigDecision` whose reason names the numbers it used.

Rules used by `plan` (constants below; every one is applied only where the user fixed nothing):

* **User values win.** A setting named in `user_overrides` keeps the user's value (from the
  mapping, else from `settings`, else from the architecture) and is recorded with source "user"
  and reason "set by the user". `TrainingSettings` documents ``None`` as "let auto-configuration
  decide", so ``settings.batch_size`` / ``settings.patch_size`` that are not ``None``, a
  ``settings.precision`` other than "auto" and a ``settings.device`` other than "auto" count as
  fixed by the user as well.
* **precision**: CUDA "bf16-mixed" where the GPU supports bf16, else "16-mixed"; CPU "32" (bf16
  autocast is ~10x slower on CPUs without AMX/AVX-512 and fp16 autocast is not supported there);
  MPS "32" (mixed precision on MPS is the least mature path).
* **small net on CPU**: when the device is the CPU, the architecture is still the default preset
  (standard_unet, depth 4, base 32) and the user fixed neither depth nor base_channels, use depth
  3 / base 16 (the small_unet preset): a default-size U-Net step takes ~8 s on 2 cores.
* **patch_size**: per axis the median image extent, clipped to a device limit: 2D 128 (CPU) or
  256 / 512 (GPU with < / >= 20 GiB); 3D a voxel budget of 64**3 (CPU) or 128**3 (GPU) spread over
  the axes in proportion to 1 / spacing (so anisotropic stacks get patches flat in z, e.g. 16 x 128
  x 128), no axis beyond the 2D limit or the median extent. Each axis is then rounded DOWN to a
  multiple of the U-Net's pooling factor on that axis (2**depth, fewer in z on in-plane-only
  levels) where the axis is at least that large (efficient, not required: the U-Net pads). So
  the patch never exceeds the median image extent (nor the limit); images smaller than the patch
  are padded by the sampler and the padding is masked out of the loss by ``valid``.
* **anisotropic_levels** (3D): with z spacing > 2x the in-plane spacing, the first levels pool
  (y, x) only until the voxels are within 2:1 (e.g. 40 nm / 4 nm -> levels 0, 1, 2); a level also
  pools (y, x) only when halving z would leave fewer than 4 voxels in z.
* **depth**: the largest depth <= 5 (<= 3 for the small CPU net) whose bottleneck keeps at least
  8 (2D) / 4 (3D) voxels on every pooled axis of the patch; at least 1.
* **batch_size**: from an estimate of the training memory of one sample: per level
  ~12 stored values per voxel per feature channel (encoder 4, decoder 7, pooling 1; bottleneck 5),
  x2 for gradients and allocator slack, x bytes per value (2 mixed, 4 fp32). It must fit into 75%
  of the free GPU memory (less 512 MiB and 16 bytes per parameter for weights, gradients and Adam)
  or 50% of available RAM; clamp 2..32. On the CPU it is also bounded by compute: an estimated
  step (3x the forward FLOPs at ~5 (2D) / ~10 (3D) GFLOP/s per core) should take <= ~3 s, clamp
  2..8 (the small net at 128 x 128 gets 8 on 2 cores). If not even 2 samples fit, the patch shrinks (largest
  physical axis first, one pooling factor at a time) unless the user fixed it.
* **samples_per_epoch**: enough patches to cover the training voxels about once, as whole
  batches, at least 10 and at most 50 (CPU) / 250 (GPU) steps per epoch.
* **num_workers**: CUDA min(4, cores - 1); CPU / MPS 0 with <= 4 cores (workers would take cores
  from the model), else min(2, cores // 4).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..project.schemas.architecture import PRESETS, ArchitectureConfig
from ..project.schemas.project_config import AutoConfigDecision, TrainingSettings

GiB = 1024**3
MiB = 1024**2

PLANNED_SETTINGS: tuple[str, ...] = (
    "device",
    "precision",
    "base_channels",
    "depth",
    "anisotropic_levels",
    "patch_size",
    "batch_size",
    "samples_per_epoch",
    "num_workers",
)

PATCH_LIMIT_2D = {"cpu": 128, "gpu_small": 256, "gpu_large": 512}
PATCH_LIMIT_3D = {"cpu": 64, "gpu": 128}  # cube root of the voxel budget
LARGE_GPU_BYTES = 20 * GiB
MIN_BOTTLENECK = {"2d": 8, "3d": 4}
MAX_DEPTH = 5
CPU_SMALL_NET = PRESETS["small_unet"]  # depth 3, base 16
ANISOTROPY_THRESHOLD = 2.0
MAX_LEVELS = 6

VALUES_PER_LEVEL_CHANNEL = 12  # stored per voxel per feature channel: encoder 4, decoder 7, pool 1
VALUES_PER_BOTTLENECK_CHANNEL = 5
ACTIVATION_OVERHEAD = 2.0  # gradients during backward, allocator slack
BYTES_PER_PARAMETER = 16  # fp32 weight, gradient and two Adam moments
GPU_MEMORY_FRACTION = 0.75
GPU_RESERVE_BYTES = 512 * MiB
CPU_MEMORY_FRACTION = 0.5
# sustained fp32 conv training throughput per core, measured on a 2-core AVX-512 Xeon (3D convs run faster)
CPU_FLOPS_PER_CORE = {"2d": 5e9, "3d": 10e9}
CPU_TARGET_STEP_SECONDS = 3.0
BATCH_LIMITS = {"cpu": (2, 8), "gpu": (2, 32)}
MIN_STEPS_PER_EPOCH = 10
MAX_STEPS_PER_EPOCH = {"cpu": 50, "gpu": 250}
DEFAULT_MEMORY_BYTES = 8 * GiB


# -- fingerprint ---------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntensityStats(_Model):
    """Intensity summary of one image (or of a data set): mean, std and percentiles by name ("99.5")."""

    mean: float
    std: float
    percentiles: dict[str, float] = Field(default_factory=dict)


class DatasetFingerprint(_Model):
    """What auto-configuration knows about the training pairs. JSON: ``model_dump(mode="json")``.

    Shapes and spacings are spatial only, (y, x) or (z, y, x). `anisotropy` is z spacing over
    the median in-plane spacing in 3D (largest over smallest spacing in 2D); 1.0 without spacing.
    `class_frequencies` is indexed by class id (multilabel: by channel).
    """

    n_pairs: int
    spatial_dims: Literal["2d", "3d"]
    shapes: list[list[int]]
    median_shape: list[int]
    min_shape: list[int]
    max_shape: list[int]
    total_voxels: int
    spacings: list[list[float]] | None = None
    median_spacing: list[float] | None = None
    anisotropy: float = 1.0
    channels: int = 1
    intensity: list[IntensityStats] | None = None
    intensity_summary: IntensityStats | None = None
    class_frequencies: list[float] | None = None


def _percentile_key(q: float) -> str:
    return f"{q:g}"


def image_intensity_stats(
    image: Any, percentiles: Sequence[float] = (0.5, 1.0, 50.0, 99.0, 99.5), max_samples: int = 2**22
) -> IntensityStats:
    """Mean, std and percentiles of one image; above `max_samples` voxels a regular subsample is used."""
    values = np.asarray(image, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("empty image")
    if values.size > max_samples:
        values = values[:: math.ceil(values.size / max_samples)]
    pct = np.percentile(values, list(percentiles)) if percentiles else []
    return IntensityStats(
        mean=float(values.mean()),
        std=float(values.std()),
        percentiles={_percentile_key(q): float(v) for q, v in zip(percentiles, pct, strict=True)},
    )


def _to_intensity(stats: IntensityStats | Mapping[str, Any]) -> IntensityStats:
    if isinstance(stats, IntensityStats):
        return stats
    data = dict(stats)
    percentiles = {_percentile_key(float(k)): float(v) for k, v in dict(data.pop("percentiles", {})).items()}
    for key in [
        k for k in data if isinstance(k, str) and k.startswith("p") and k[1:].replace(".", "", 1).isdigit()
    ]:
        percentiles[_percentile_key(float(key[1:]))] = float(data.pop(key))
    return IntensityStats(mean=float(data.pop("mean")), std=float(data.pop("std")), percentiles=percentiles)


def _summarise_intensity(per_image: list[IntensityStats]) -> IntensityStats:
    """Mean of means, pooled std (equal weights per image), median of each percentile."""
    means = np.array([s.mean for s in per_image])
    variances = np.array([s.std**2 for s in per_image])
    pooled = float(np.sqrt(variances.mean() + means.var()))
    keys = set.intersection(*(set(s.percentiles) for s in per_image))
    percentiles = {
        k: float(np.median([s.percentiles[k] for s in per_image])) for k in sorted(keys, key=float)
    }
    return IntensityStats(mean=float(means.mean()), std=pooled, percentiles=percentiles)


def _frequencies(values: Mapping[Any, float] | Sequence[float]) -> list[float]:
    if isinstance(values, Mapping):
        size = max(int(k) for k in values) + 1 if values else 0
        freq = [0.0] * size
        for k, v in values.items():
            freq[int(k)] = float(v)
    else:
        freq = [float(v) for v in values]
    if any(v < 0 for v in freq):
        raise ValueError("class frequencies must be >= 0")
    total = sum(freq)
    if any(v > 1 for v in freq) and total > 0:  # counts, not fractions
        freq = [v / total for v in freq]
    return freq


def fingerprint(
    pair_shapes: Sequence[Sequence[int]],
    spacings: Sequence[Sequence[float]] | Sequence[float] | None = None,
    channels: int = 1,
    intensity_stats: Sequence[IntensityStats | Mapping[str, Any]] | None = None,
    class_frequencies: Mapping[Any, float] | Sequence[float] | None = None,
) -> DatasetFingerprint:
    """Summarise the training pairs.

    pair_shapes: spatial shape of each pair's image, all (y, x) or all (z, y, x).
    spacings: one spacing per pair (same order and length as the shapes) or a single spacing for
        all; None for unknown (treated as isotropic).
    channels: image channels.
    intensity_stats: per image ``{"mean", "std", "percentiles": {q: value}}`` (``"p99.5"`` keys work
        too) or `IntensityStats` (see `image_intensity_stats`).
    class_frequencies: fraction (or count; counts are normalised) of voxels per class id.
    """
    shapes = [[int(s) for s in shape] for shape in pair_shapes]
    if not shapes:
        raise ValueError("fingerprint needs at least one pair shape")
    ndim = {len(s) for s in shapes}
    if len(ndim) != 1 or next(iter(ndim)) not in (2, 3):
        raise ValueError(f"pair shapes must all be (y, x) or all (z, y, x); got {sorted(ndim)} axes")
    if any(s < 1 for shape in shapes for s in shape):
        raise ValueError("pair shapes must be positive")
    dims = next(iter(ndim))
    arr = np.array(shapes)
    spacing_list: list[list[float]] | None = None
    median_spacing: list[float] | None = None
    anisotropy = 1.0
    if spacings is not None:
        raw = list(spacings)
        if raw and not isinstance(raw[0], Sequence | np.ndarray):
            raw = [raw] * len(shapes)
        spacing_list = [[float(v) for v in sp] for sp in raw]  # type: ignore[union-attr]
        if len(spacing_list) != len(shapes) or any(len(sp) != dims for sp in spacing_list):
            raise ValueError(f"spacings need one {dims}-value spacing per pair (or one for all)")
        if any(v <= 0 for sp in spacing_list for v in sp):
            raise ValueError("spacings must be > 0")
        median_spacing = [float(v) for v in np.median(np.array(spacing_list), axis=0)]
        if dims == 3:
            anisotropy = median_spacing[0] / float(np.median(median_spacing[1:]))
        else:
            anisotropy = max(median_spacing) / min(median_spacing)
    per_image = [_to_intensity(s) for s in intensity_stats] if intensity_stats else None
    return DatasetFingerprint(
        n_pairs=len(shapes),
        spatial_dims="2d" if dims == 2 else "3d",
        shapes=shapes,
        median_shape=[int(v) for v in np.median(arr, axis=0)],
        min_shape=[int(v) for v in arr.min(axis=0)],
        max_shape=[int(v) for v in arr.max(axis=0)],
        total_voxels=int(sum(math.prod(s) for s in shapes)),
        spacings=spacing_list,
        median_spacing=median_spacing,
        anisotropy=float(anisotropy),
        channels=int(channels),
        intensity=per_image,
        intensity_summary=_summarise_intensity(per_image) if per_image else None,
        class_frequencies=_frequencies(class_frequencies) if class_frequencies is not None else None,
    )


# -- device --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """What planning needs to know about a device. Build one by hand to plan for another machine."""

    device: str  # torch device string: "cpu", "cuda:0", "mps"
    kind: Literal["cpu", "cuda", "mps"]
    memory_bytes: int  # usable memory (see `device_memory`)
    bf16_supported: bool = False
    cpu_cores: int = 1
    name: str = ""


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _available_ram() -> int:
    """Available system memory: MemAvailable from /proc/meminfo (Linux), else os.sysconf pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * page)
        except (ValueError, OSError):
            return int(os.sysconf("SC_PHYS_PAGES") * page // 2)  # assume half of physical is free
    except (AttributeError, ValueError, OSError):
        return DEFAULT_MEMORY_BYTES


def resolve_device(device: Any = "auto") -> str:
    """Resolve "auto" to "cuda:0" if CUDA is available, else "mps" if available, else "cpu"."""
    import torch

    name = str(device)
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda:0"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def device_memory(device: Any) -> int:
    """Bytes of memory a training run may use on `device`.

    CUDA: the free memory `torch.cuda.mem_get_info` reports (what other processes left).
    MPS: `torch.mps.recommended_max_memory()` where available, capped by available RAM
    (unified memory). CPU: available RAM (/proc/meminfo MemAvailable on Linux, else
    os.sysconf available pages, else half of physical memory, else 8 GiB). No psutil.
    """
    import torch

    dev = torch.device(resolve_device(device))
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(
            dev.index if dev.index is not None else torch.cuda.current_device()
        )
        return int(free)
    ram = _available_ram()
    if dev.type == "mps":
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        if recommended is not None:
            try:
                return int(min(recommended(), ram))
            except RuntimeError:
                pass
    return int(ram)


def describe_device(device: Any = "auto") -> DeviceInfo:
    """The `DeviceInfo` of a real device ("auto", "cpu", "cuda", "cuda:N", "mps")."""
    import torch

    dev = torch.device(resolve_device(device))
    cores = cpu_cores()
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return DeviceInfo(
            device=f"cuda:{index}",
            kind="cuda",
            memory_bytes=device_memory(f"cuda:{index}"),
            bf16_supported=bool(torch.cuda.is_bf16_supported()),
            cpu_cores=cores,
            name=torch.cuda.get_device_name(index),
        )
    if dev.type == "mps":
        return DeviceInfo("mps", "mps", device_memory("mps"), False, cores, "Apple MPS")
    if dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return DeviceInfo("cpu", "cpu", device_memory("cpu"), False, cores, "CPU")


# -- estimates -----------------------------------------------------------------------------------


def pooling_factors(
    spatial_dims: str, depth: int, anisotropic_levels: Iterable[int] = ()
) -> list[tuple[int, ...]]:
    """Per-level pooling factors of the U-Net (as `model.unet.level_factors`)."""
    if spatial_dims == "2d":
        return [(2, 2)] * depth
    aniso = set(anisotropic_levels)
    return [(1, 2, 2) if lvl in aniso else (2, 2, 2) for lvl in range(depth)]


def _total_factor(factors: Sequence[tuple[int, ...]], ndim: int) -> list[int]:
    return [math.prod(f[i] for f in factors) for i in range(ndim)]


def activation_bytes_per_sample(
    patch_size: Sequence[int],
    depth: int,
    base_channels: int,
    factors: Sequence[tuple[int, ...]],
    input_channels: int = 1,
    output_channels: int = 1,
    bytes_per_value: int = 4,
) -> int:
    """Estimated training memory of one sample's activations (see the module doc for the constants)."""
    voxels = float(math.prod(patch_size))
    values = (input_channels + output_channels) * voxels
    for level in range(depth):
        values += VALUES_PER_LEVEL_CHANNEL * base_channels * 2**level * voxels
        voxels /= math.prod(factors[level])
    values += VALUES_PER_BOTTLENECK_CHANNEL * base_channels * 2**depth * voxels
    return int(ACTIVATION_OVERHEAD * values * bytes_per_value)


def forward_flops_per_sample(
    patch_size: Sequence[int],
    depth: int,
    base_channels: int,
    factors: Sequence[tuple[int, ...]],
    input_channels: int = 1,
    output_channels: int = 1,
) -> float:
    """Multiply-adds x2 of one forward pass (3x3(x3) convs, transposed-conv upsampling, 1x1 head)."""
    taps = 3 ** len(patch_size)
    channels = [base_channels * 2**lvl for lvl in range(depth + 1)]
    voxels = [float(math.prod(patch_size))]
    for level in range(depth):
        voxels.append(voxels[-1] / math.prod(factors[level]))
    flops = 2.0 * channels[0] * output_channels * voxels[0]
    for level in range(depth):
        c, c_in = channels[level], input_channels if level == 0 else channels[level - 1]
        flops += 2.0 * taps * (c_in * c + c * c) * voxels[level]  # encoder block
        flops += 2.0 * taps * (2 * c * c + c * c) * voxels[level]  # decoder block
        flops += 2.0 * math.prod(factors[level]) * channels[level + 1] * c * voxels[level + 1]  # upsampling
    c, c_in = channels[depth], channels[depth - 1]
    flops += 2.0 * taps * (c_in * c + c * c) * voxels[depth]
    return flops


def parameter_count(
    depth: int, base_channels: int, spatial_dims: str, input_channels: int = 1, output_channels: int = 1
) -> int:
    """Approximate parameter count of the U-Net (conv weights; norms and biases are negligible)."""
    taps = 9 if spatial_dims == "2d" else 27
    up = 4 if spatial_dims == "2d" else 8
    channels = [base_channels * 2**lvl for lvl in range(depth + 1)]
    total = channels[0] * output_channels
    for level in range(depth):
        c, c_in = channels[level], input_channels if level == 0 else channels[level - 1]
        total += taps * (c_in * c + c * c) + taps * 3 * c * c + up * channels[level + 1] * c
    total += taps * (channels[depth - 1] * channels[depth] + channels[depth] ** 2)
    return int(total)


# -- planning ------------------------------------------------------------------------------------


def _fmt(shape: Sequence[Any]) -> str:
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in shape)


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def _user_values(
    user_overrides: Iterable[str] | Mapping[str, Any] | None,
    settings: TrainingSettings,
    config: ArchitectureConfig,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if settings.device != "auto":
        values["device"] = settings.device
    if settings.precision != "auto":
        values["precision"] = settings.precision
    if settings.batch_size is not None:
        values["batch_size"] = settings.batch_size
    if settings.patch_size is not None:
        values["patch_size"] = list(settings.patch_size)
    if user_overrides is None:
        return values
    if isinstance(user_overrides, Mapping):
        values.update(user_overrides)
        return values
    for name in user_overrides:
        if name not in PLANNED_SETTINGS or name in values:
            continue
        value = getattr(settings, name, None) if name in TrainingSettings.model_fields else None
        if value is None and name in ArchitectureConfig.model_fields:
            value = getattr(config, name)
        if value is None or value == "auto":
            raise ValueError(f"user override {name!r} has no value: give it in the settings or as a mapping")
        values[name] = value
    return values


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


def _round_patch(patch: Sequence[int], total: Sequence[int]) -> list[int]:
    return [p // f * f if p >= f else p for p, f in zip(patch, total, strict=True)]


def plan(
    fingerprint: DatasetFingerprint,
    architecture: Mapping[str, Any] | ArchitectureConfig,
    settings: TrainingSettings | None = None,
    device: str | DeviceInfo | None = None,
    user_overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[AutoConfigDecision]]:
    """Resolve the training settings for `fingerprint` on `device` (rules: see the module doc).

    device: a device string ("auto", "cpu", "cuda", "cuda:N", "mps"; default ``settings.device``)
        or a `DeviceInfo` (e.g. a made-up GPU, to plan for another machine).
    user_overrides: names of settings the user fixed (values from `settings` or the
        architecture), or a mapping name -> value.
    Returns (resolved, decisions): `resolved` holds device, precision, base_channels, depth,
    anisotropic_levels, patch_size, batch_size, samples_per_epoch and num_workers; `decisions`
    one `AutoConfigDecision` per resolved setting (anisotropic_levels only in 3D), in that order.
    """
    config = (
        architecture
        if isinstance(architecture, ArchitectureConfig)
        else ArchitectureConfig.model_validate(dict(architecture))
    )
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
    gpu = info.kind == "cuda"
    dims = config.spatial_dims
    ndim = 2 if dims == "2d" else 3
    min_bn = MIN_BOTTLENECK[dims]
    resolved: dict[str, Any] = {}
    decisions: list[AutoConfigDecision] = []

    def decide(setting: str, value: Any, reason: str) -> Any:
        if setting in user:
            value = user[setting]
            decisions.append(
                AutoConfigDecision(setting=setting, value=value, reason="set by the user", source="user")
            )
        else:
            decisions.append(AutoConfigDecision(setting=setting, value=value, reason=reason, source="auto"))
        resolved[setting] = value
        return value

    # device (a DeviceInfo passed by the caller is what gets planned for, so its name is recorded)
    if isinstance(device, DeviceInfo) and "device" in user:
        user["device"] = info.device
    decide(
        "device",
        info.device,
        f"{info.kind} device {info.name or info.device} with {_gib(info.memory_bytes)} usable memory "
        f"and {info.cpu_cores} CPU cores",
    )

    # precision
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
    precision = decide("precision", auto_precision, why)
    bytes_per_value = 2 if precision in ("16-mixed", "bf16-mixed") else 4

    # net size
    default_net = config.preset == "standard_unet" and config.depth == 4 and config.base_channels == 32
    small_net = info.kind == "cpu" and default_net and "depth" not in user and "base_channels" not in user
    if small_net:
        base = decide(
            "base_channels",
            CPU_SMALL_NET["base_channels"],
            f"CPU: default U-Net (depth 4, base 32) step ~8 s on 2 cores; using the small net "
            f"(base {CPU_SMALL_NET['base_channels']}) on {info.cpu_cores} cores",
        )
    else:
        base = decide(
            "base_channels",
            config.base_channels,
            f"kept the architecture's {config.base_channels} (preset {config.preset})",
        )
    depth_cap = CPU_SMALL_NET["depth"] if small_net else MAX_DEPTH

    # raw patch (before rounding to the pooling factors)
    median = list(fingerprint.median_shape)
    if "patch_size" in user:
        raw_patch = [int(v) for v in user["patch_size"]]
        if len(raw_patch) != ndim:
            raise ValueError(f"patch_size {raw_patch} needs {ndim} values for {dims} data")
        patch_why = ""
    else:
        if info.kind == "cpu":
            limit_2d, limit_3d, where = PATCH_LIMIT_2D["cpu"], PATCH_LIMIT_3D["cpu"], "CPU"
        else:
            large = info.memory_bytes >= LARGE_GPU_BYTES
            limit_2d = PATCH_LIMIT_2D["gpu_large" if large else "gpu_small"]
            limit_3d, where = PATCH_LIMIT_3D["gpu"], f"{info.kind.upper()} with {_gib(info.memory_bytes)}"
        if ndim == 2:
            raw_patch = [min(m, limit_2d) for m in median]
            patch_why = f"median image shape {_fmt(median)} of {fingerprint.n_pairs} pairs, {where} limit {limit_2d} per axis"
        else:
            spacing = fingerprint.median_spacing or [1.0, 1.0, 1.0]
            weights = [min(spacing) / s for s in spacing]
            raw_patch = _budget_patch([min(m, limit_2d) for m in median], weights, float(limit_3d**3))
            patch_why = (
                f"median image shape {_fmt(median)} of {fingerprint.n_pairs} pairs, spacing {_fmt(spacing)} "
                f"(z/in-plane {fingerprint.anisotropy:.3g}), {where} budget {limit_3d}^3 voxels shared in proportion "
                f"to 1/spacing, at most {limit_2d} per axis"
            )

    # memory available for activations
    if gpu:
        reserve = GPU_MEMORY_FRACTION * info.memory_bytes - GPU_RESERVE_BYTES
        memory_why = (
            f"{GPU_MEMORY_FRACTION:.0%} of {_gib(info.memory_bytes)} free GPU memory less "
            f"{GPU_RESERVE_BYTES // MiB} MiB reserve"
        )
    else:
        reserve = CPU_MEMORY_FRACTION * info.memory_bytes
        memory_why = f"{CPU_MEMORY_FRACTION:.0%} of {_gib(info.memory_bytes)} available memory"
    lo, hi = BATCH_LIMITS["gpu" if info.kind != "cpu" else "cpu"]
    need = int(user["batch_size"]) if "batch_size" in user else lo

    def topology(raw: list[int]) -> _Topology:
        """Depth, anisotropic levels and the rounded patch for one raw patch."""
        if ndim == 3 and "anisotropic_levels" in user:
            fixed = sorted(int(v) for v in user["anisotropic_levels"])
            pattern, pattern_why = (
                [lvl in fixed for lvl in range(MAX_LEVELS)],
                ["set by the user"] * MAX_LEVELS,
            )
        elif ndim == 3:
            pattern, pattern_why = _anisotropic_pattern(fingerprint.anisotropy, raw[0], min_bn)
        else:
            pattern, pattern_why = [False] * MAX_LEVELS, [""] * MAX_LEVELS
        if "depth" in user:
            depth = int(user["depth"])
        else:
            depth = next(
                (
                    d
                    for d in range(depth_cap, 0, -1)
                    if _depth_fits(
                        raw, pooling_factors(dims, d, [lvl for lvl in range(d) if pattern[lvl]]), min_bn
                    )
                ),
                1,
            )
            if ndim == 3 and "anisotropic_levels" in user and user["anisotropic_levels"]:
                depth = max(depth, max(int(v) for v in user["anisotropic_levels"]) + 1)
        levels = [lvl for lvl in range(min(depth, MAX_LEVELS)) if pattern[lvl]] if ndim == 3 else []
        factors = pooling_factors(dims, depth, levels)
        total = _total_factor(factors, ndim)
        patch = list(raw) if "patch_size" in user else _round_patch(raw, total)
        per = activation_bytes_per_sample(
            patch, depth, base, factors, config.input_channels, config.output_channels, bytes_per_value
        )
        flops = 3.0 * forward_flops_per_sample(
            patch, depth, base, factors, config.input_channels, config.output_channels
        )
        params = parameter_count(depth, base, dims, config.input_channels, config.output_channels)
        usable = max(0.0, reserve - BYTES_PER_PARAMETER * params)
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

    # shrink the (raw) patch while not even `need` samples fit; the topology follows the patch
    topo = topology(raw_patch)
    shrunk_from = None
    if "patch_size" not in user:
        spacing = fingerprint.median_spacing or [1.0] * ndim
        floor = [min(r, 2 * min_bn) for r in raw_patch]
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
            topo = topology(raw)

    bottleneck = [p // f for p, f in zip(topo.raw, topo.total, strict=True)]
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
    depth = decide("depth", topo.depth, depth_why)
    if ndim == 3:
        level_reasons = "; ".join(
            f"level {lvl}: {w}" for lvl, w in zip(topo.levels, topo.level_reasons, strict=True)
        )
        levels = decide(
            "anisotropic_levels",
            topo.levels,
            (
                f"pool (y, x) only on levels {topo.levels} ({level_reasons})"
                if topo.levels
                else f"isotropic pooling: z/in-plane spacing ratio {fingerprint.anisotropy:.3g} <= "
                f"{ANISOTROPY_THRESHOLD:g} and z extent {topo.raw[0]} allows {depth} poolings"
            ),
        )
        if any(not 0 <= int(lvl) < depth for lvl in levels):
            raise ValueError(f"anisotropic_levels {levels} out of range for depth {depth}")
    else:
        resolved["anisotropic_levels"] = []
    patch, per_sample, step_flops, params = topo.patch, topo.per_sample, topo.flops, topo.params
    usable = topo.usable
    memory_why += (
        f"{' and' if gpu else ' less'} {BYTES_PER_PARAMETER * params / MiB:.0f} MiB for {params:,} parameters"
    )
    if shrunk_from is not None:
        patch_why += f"; shrunk from {_fmt(shrunk_from)} so that {need} samples fit in memory"
    if "patch_size" not in user:
        patch_why += f" -> {_fmt(patch)} (multiple of pooling factors {_fmt(topo.total)} where possible)"
    patch = decide("patch_size", [int(v) for v in patch], patch_why)

    memory_batch = int(usable // per_sample)
    seconds_per_sample = step_flops / (CPU_FLOPS_PER_CORE[dims] * info.cpu_cores)
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
            f"estimated {per_sample / MiB:.0f} MiB activations per sample (patch {_fmt(patch)}, depth {depth}, base {base}, "
            f"{bytes_per_value}-byte values) in {memory_why} -> {memory_batch}; clamped to {lo}..{hi} -> {auto_batch}"
        )
    if memory_batch < lo:
        batch_why += f" (WARNING: even {lo} samples may not fit in memory)"
    batch = int(decide("batch_size", auto_batch, batch_why))

    # samples per epoch
    patch_voxels = math.prod(patch)
    cover = math.ceil(fingerprint.total_voxels / patch_voxels)
    max_steps = MAX_STEPS_PER_EPOCH["cpu" if info.kind == "cpu" else "gpu"]
    steps = max(MIN_STEPS_PER_EPOCH, min(max_steps, math.ceil(cover / batch)))
    decide(
        "samples_per_epoch",
        steps * batch,
        f"{fingerprint.total_voxels:,} training voxels in {fingerprint.n_pairs} pairs ~ {cover} patches of "
        f"{_fmt(patch)}; {steps} steps of {batch} (between {MIN_STEPS_PER_EPOCH} and {max_steps} steps per epoch)",
    )

    # data-loading workers
    cores = info.cpu_cores
    if gpu:
        workers = min(4, max(cores - 1, 0))
        workers_why = f"CUDA: min(4, {cores} cores - 1) loader processes keep the GPU fed"
    elif cores <= 4:
        workers = 0
        workers_why = f"{info.kind.upper()} with {cores} cores: loading in the main process leaves every core to the model"
    else:
        workers = min(2, cores // 4)
        workers_why = f"{info.kind.upper()} with {cores} cores: min(2, {cores} // 4) loader processes"
    decide("num_workers", workers, workers_why)
    return resolved, decisions


def planned_architecture(
    architecture: Mapping[str, Any] | ArchitectureConfig, resolved: Mapping[str, Any]
) -> ArchitectureConfig:
    """The architecture with the planned depth, base_channels and anisotropic_levels applied.

    The preset becomes the preset whose depth and base match, else "custom".
    """
    config = (
        architecture
        if isinstance(architecture, ArchitectureConfig)
        else ArchitectureConfig.model_validate(dict(architecture))
    )
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
