"""Constants of the auto-configuration rules (described in the package doc)."""

from __future__ import annotations

from ...project.schemas.architecture import PRESETS

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
