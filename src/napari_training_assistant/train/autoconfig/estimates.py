"""Cost estimates of the U-Net: pooling factors, activation memory, FLOPs and parameter count."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .constants import ACTIVATION_OVERHEAD, VALUES_PER_BOTTLENECK_CHANNEL, VALUES_PER_LEVEL_CHANNEL


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
    """Estimated training memory of one sample's activations (see the package doc for the constants)."""
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
