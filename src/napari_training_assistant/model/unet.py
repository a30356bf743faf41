"""The trainable U-Net, built from an `ArchitectureConfig` descriptor. It returns logits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from ..project.errors import ProjectError
from ..project.schemas.architecture import ArchitectureConfig
from .layers import ConvBlock, Factor, FinalProjection, UpsamplingLayer, make_pool
from .padding import pad_to_multiple


def validate_architecture(architecture: Mapping[str, Any] | ArchitectureConfig) -> ArchitectureConfig:
    """The descriptor as an `ArchitectureConfig`; a bad dict raises a one-line `ProjectError`."""
    if isinstance(architecture, ArchitectureConfig):
        return architecture
    try:
        return ArchitectureConfig.model_validate(dict(architecture))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'architecture'}: {err['msg']}" for err in exc.errors()
        )
        raise ProjectError(f"invalid architecture: {problems}") from exc


def feature_channels(config: ArchitectureConfig) -> list[int]:
    """Channels per level, encoder levels then the bottleneck: base * 2**level."""
    return [config.base_channels * 2**level for level in range(config.depth + 1)]


def level_factors(config: ArchitectureConfig) -> list[Factor]:
    """Pooling (and upsampling) factor of each encoder level; (1, 2, 2) on anisotropic 3D levels."""
    if config.spatial_dims == "2d":
        return [(2, 2)] * config.depth
    return [(1, 2, 2) if lvl in config.anisotropic_levels else (2, 2, 2) for lvl in range(config.depth)]


class UNet(nn.Module):
    """2D/3D U-Net: `depth` encoder levels, a bottleneck, `depth` decoder levels, a 1x1 projection.

    Any spatial input size works: `forward` pads to the total pooling factor and crops back
    (see `padding`). `architecture` holds the validated descriptor as a plain dict.
    """

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        dims = 2 if config.spatial_dims == "2d" else 3
        channels = feature_channels(config)
        factors = level_factors(config)
        norm, depth = config.normalization, config.depth
        self.architecture: dict[str, Any] = config.model_dump()
        inputs = [config.input_channels, *channels[: depth - 1]]
        self.encoder = nn.ModuleList(
            ConvBlock(dims, inputs[lvl], channels[lvl], norm, "encoder", lvl) for lvl in range(depth)
        )
        self.pools = nn.ModuleList(make_pool(dims, f) for f in factors)
        self.bottleneck = ConvBlock(dims, channels[depth - 1], channels[depth], norm, "bottleneck", depth)
        self.ups = nn.ModuleList(
            UpsamplingLayer(dims, channels[lvl + 1], channels[lvl], config.upsampling, factors[lvl])
            for lvl in range(depth)
        )
        self.decoder = nn.ModuleList(
            ConvBlock(dims, 2 * channels[lvl], channels[lvl], norm, "decoder", lvl) for lvl in range(depth)
        )
        self.head = FinalProjection(dims, channels[0], config.output_channels)
        self.total_factor: tuple[int, ...] = tuple(math.prod(axis) for axis in zip(*factors, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits with the input's spatial size and `output_channels` channels."""
        self._check_input(x)
        x, crop = pad_to_multiple(x, self.total_factor)
        return self.forward_padded(x)[crop]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of an input whose spatial size is already a multiple of `total_factor` (no padding, no
        crop: the graph that ONNX and TorchScript export, any such size)."""
        skips = []
        for block, pool in zip(self.encoder, self.pools, strict=True):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for lvl in reversed(range(len(self.decoder))):
            x = self.decoder[lvl](torch.cat([self.ups[lvl](x), skips[lvl]], dim=1))
        return self.head(x)

    def _check_input(self, x: torch.Tensor) -> None:
        dims = len(self.total_factor)
        expected = self.architecture["input_channels"]
        if x.ndim != dims + 2 or x.shape[1] != expected:
            raise ValueError(
                f"U-Net expects input (batch, {expected}, {', '.join('zyx'[-dims:])}); got shape {tuple(x.shape)}"
            )


def build_model(architecture: Mapping[str, Any] | ArchitectureConfig) -> UNet:
    """Build the U-Net a descriptor (dict or `ArchitectureConfig`) describes."""
    return UNet(validate_architecture(architecture))


def build_unallocated(architecture: Mapping[str, Any] | ArchitectureConfig) -> UNet:
    """Build on the `meta` device (shapes only, no memory); fall back to cpu if that fails."""
    config = validate_architecture(architecture)
    try:
        with torch.device("meta"):
            return UNet(config)
    except (NotImplementedError, RuntimeError):
        return UNet(config)
