"""Auto-configuration: a data-set fingerprint plus the device give patch size, batch size, depth, ...

Three steps, all cheap and free of side effects at import:

1. `fingerprint(...)` summarises the training pairs (shapes, spacing, channels, intensities,
   class frequencies) in a JSON-serialisable `DatasetFingerprint`.
2. `describe_device(...)` / `device_memory(...)` say what the device offers.
3. `plan(fingerprint, architecture, settings, device, user_overrides)` resolves the settings and
   explains each one as an `AutoConfigDecision` whose reason names the numbers it used.

Rules used by `plan` (constants in `constants.py`; every one is applied only where the user fixed nothing):

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

from .constants import (
    ACTIVATION_OVERHEAD,
    ANISOTROPY_THRESHOLD,
    BATCH_LIMITS,
    BYTES_PER_PARAMETER,
    CPU_FLOPS_PER_CORE,
    CPU_MEMORY_FRACTION,
    CPU_SMALL_NET,
    CPU_TARGET_STEP_SECONDS,
    DEFAULT_MEMORY_BYTES,
    GPU_MEMORY_FRACTION,
    GPU_RESERVE_BYTES,
    LARGE_GPU_BYTES,
    MAX_DEPTH,
    MAX_LEVELS,
    MAX_STEPS_PER_EPOCH,
    MIN_BOTTLENECK,
    MIN_STEPS_PER_EPOCH,
    PATCH_LIMIT_2D,
    PATCH_LIMIT_3D,
    PLANNED_SETTINGS,
    VALUES_PER_BOTTLENECK_CHANNEL,
    VALUES_PER_LEVEL_CHANNEL,
    GiB,
    MiB,
)
from .dataset_fingerprint import DatasetFingerprint, IntensityStats, fingerprint, image_intensity_stats
from .device import DeviceInfo, cpu_cores, describe_device, device_memory
from .estimates import (
    activation_bytes_per_sample,
    forward_flops_per_sample,
    parameter_count,
    pooling_factors,
)
from .planner import plan, planned_architecture

__all__ = [
    "ACTIVATION_OVERHEAD",
    "ANISOTROPY_THRESHOLD",
    "BATCH_LIMITS",
    "BYTES_PER_PARAMETER",
    "CPU_FLOPS_PER_CORE",
    "CPU_MEMORY_FRACTION",
    "CPU_SMALL_NET",
    "CPU_TARGET_STEP_SECONDS",
    "DEFAULT_MEMORY_BYTES",
    "GPU_MEMORY_FRACTION",
    "GPU_RESERVE_BYTES",
    "LARGE_GPU_BYTES",
    "MAX_DEPTH",
    "MAX_LEVELS",
    "MAX_STEPS_PER_EPOCH",
    "MIN_BOTTLENECK",
    "MIN_STEPS_PER_EPOCH",
    "PATCH_LIMIT_2D",
    "PATCH_LIMIT_3D",
    "PLANNED_SETTINGS",
    "VALUES_PER_BOTTLENECK_CHANNEL",
    "VALUES_PER_LEVEL_CHANNEL",
    "DatasetFingerprint",
    "DeviceInfo",
    "GiB",
    "IntensityStats",
    "MiB",
    "activation_bytes_per_sample",
    "cpu_cores",
    "describe_device",
    "device_memory",
    "fingerprint",
    "forward_flops_per_sample",
    "image_intensity_stats",
    "parameter_count",
    "plan",
    "planned_architecture",
    "pooling_factors",
]
