"""Tagged U-Net building blocks: one class per layer kind, so `describe` can count honestly."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import nn

Normalization = Literal["batch", "instance", "group", "none"]
BlockRole = Literal["encoder", "bottleneck", "decoder"]
Factor = tuple[int, ...]


def conv_class(dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """`nn.Conv2d` or `nn.Conv3d`."""
    return nn.Conv2d if dims == 2 else nn.Conv3d


def group_count(channels: int) -> int:
    """Largest of 8, 4, 2, 1 that divides `channels` (GroupNorm groups)."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def make_norm(dims: int, normalization: Normalization, channels: int) -> nn.Module | None:
    """The normalization layer for `channels` features, or None for `none`."""
    if normalization == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    if normalization == "instance":
        cls = nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d
        return cls(channels, affine=True)
    if normalization == "group":
        return nn.GroupNorm(group_count(channels), channels)
    return None


class MainConv(nn.Sequential):
    """One main convolution layer: 3x3(x3) conv (bias only without norm), normalization, ReLU."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, normalization: Normalization):
        norm = make_norm(dims, normalization, out_channels)
        conv = conv_class(dims)(in_channels, out_channels, kernel_size=3, padding=1, bias=norm is None)
        layers: OrderedDict[str, nn.Module] = OrderedDict(conv=conv)
        if norm is not None:
            layers["norm"] = norm
        layers["act"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class ConvBlock(nn.Sequential):
    """Two main convolution layers at one level of the encoder, bottleneck or decoder."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        normalization: Normalization,
        role: BlockRole,
        level: int,
    ):
        super().__init__(
            OrderedDict(
                conv1=MainConv(dims, in_channels, out_channels, normalization),
                conv2=MainConv(dims, out_channels, out_channels, normalization),
            )
        )
        self.role: BlockRole = role
        self.level = level

    @property
    def out_channels(self) -> int:
        """Feature channels this block produces."""
        return self.conv2.conv.out_channels


class UpsamplingLayer(nn.Sequential):
    """Doubles the resolution by `factor` and halves the channels.

    `transpose`: one ConvTranspose with kernel = stride = factor. Otherwise nn.Upsample
    (bilinear/trilinear) followed by a 1x1 conv; that conv belongs to this layer.
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, mode: str, factor: Factor):
        if mode == "transpose":
            cls = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
            layers = OrderedDict(transpose=cls(in_channels, out_channels, kernel_size=factor, stride=factor))
        else:
            scale = tuple(float(f) for f in factor)
            layers = OrderedDict(
                resample=nn.Upsample(scale_factor=scale, mode=mode, align_corners=False),
                conv=conv_class(dims)(in_channels, out_channels, kernel_size=1),
            )
        super().__init__(layers)
        self.factor = factor


class FinalProjection(nn.Sequential):
    """1x1(x1) conv from the first-level features to the output channels (logits)."""

    def __init__(self, dims: int, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(conv=conv_class(dims)(in_channels, out_channels, kernel_size=1)))


def make_pool(dims: int, factor: Factor) -> nn.Module:
    """Max pooling with kernel = stride = factor."""
    return nn.MaxPool2d(factor) if dims == 2 else nn.MaxPool3d(factor)
