"""`describe`: what a descriptor builds, counted from the module itself (not from the config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..project.schemas.architecture import ArchitectureConfig
from .layers import ConvBlock, FinalProjection, MainConv, UpsamplingLayer
from .unet import build_unallocated


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def _blocks(model: nn.Module, role: str) -> list[ConvBlock]:
    blocks = [m for m in model.modules() if isinstance(m, ConvBlock) and m.role == role]
    return sorted(blocks, key=lambda b: b.level)


def _pool_factors(model: nn.Module) -> list[list[int]]:
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d | nn.MaxPool3d)]
    return [list(p.kernel_size) if isinstance(p.kernel_size, tuple) else [p.kernel_size] for p in pools]


def _spatial_dims(model: nn.Module) -> str:
    head = next(m for m in model.modules() if isinstance(m, FinalProjection))
    return f"{head.conv.weight.ndim - 2}d"


def describe_module(model: nn.Module) -> dict[str, Any]:
    """Layer counts, channels, pooling and parameters of a built U-Net."""
    encoder, bottleneck = _blocks(model, "encoder"), _blocks(model, "bottleneck")
    info: dict[str, Any] = {
        "spatial_dims": _spatial_dims(model),
        "feature_channels": [b.out_channels for b in encoder + bottleneck],
        "encoder_levels": len(encoder),
        "bottleneck_levels": len(bottleneck),
        "decoder_levels": len(_blocks(model, "decoder")),
        "main_conv_layers": _count(model, MainConv),
        "upsampling_layers": _count(model, UpsamplingLayer),
        "final_projection_layers": _count(model, FinalProjection),
        "parameters": sum(p.numel() for p in model.parameters()),
        "pool_factors": _pool_factors(model),
    }
    info["text"] = _text(info)
    return info


def _text(info: Mapping[str, Any]) -> str:
    channels = "-".join(str(c) for c in info["feature_channels"])
    return (
        f"{info['spatial_dims'].upper()} U-Net: {info['encoder_levels']} encoder + "
        f"{info['bottleneck_levels']} bottleneck + {info['decoder_levels']} decoder levels, "
        f"features {channels}, {info['main_conv_layers']} conv + {info['upsampling_layers']} upsampling + "
        f"{info['final_projection_layers']} projection layers, {info['parameters']:,} parameters"
    )


def describe(architecture: Mapping[str, Any] | ArchitectureConfig) -> dict[str, Any]:
    """Build the descriptor's U-Net (on `meta`, no weights allocated) and report what it contains."""
    return describe_module(build_unallocated(architecture))
