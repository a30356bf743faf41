"""A U-Net as ONNX or TorchScript, for other runtimes: the unpadded graph (`UNet.forward_padded`), so any
input whose spatial size is a multiple of the pooling factor (and at least twice it) runs, batch size free."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from .unet import UNet

ONNX_OPSET = 18


class UnpaddedUNet(nn.Module):
    """The U-Net without its pad-and-crop: what the exported graphs compute."""

    def __init__(self, unet: UNet):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet.forward_padded(x)


class UnpaddedMarkedUNet(UnpaddedUNet):
    """A point model trained with a centre marker: image and marker as two inputs, joined as its channels."""

    def forward(self, image: torch.Tensor, marker: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.unet.forward_padded(torch.cat([image, marker], dim=1))


def input_names(model: UNet, marker: bool = False) -> list[str]:
    """The exported graph's inputs: `input`, or `input` (image channels) and `marker` (the last channel)."""
    return ["input", "marker"] if marker else ["input"]


def _graph(model: UNet, marker: bool) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The module to export (eval, cpu) and its example inputs."""
    x = example_input(model)
    if marker:
        return UnpaddedMarkedUNet(model).eval().cpu(), (x[:, :-1], x[:, -1:])
    return UnpaddedUNet(model).eval().cpu(), (x,)


def size_step(model: UNet) -> tuple[int, ...]:
    """Per spatial axis, the multiple every exported input size must be (the total pooling factor)."""
    return tuple(int(f) for f in model.total_factor)


def minimum_size(model: UNet) -> tuple[int, ...]:
    """The smallest input an export takes: two pooling factors per axis (the bottleneck keeps 2 cells)."""
    return tuple(2 * f for f in size_step(model))


def example_input(model: UNet, size: tuple[int, ...] | None = None, batch: int = 1) -> torch.Tensor:
    """A seeded random input of `size` (default: twice the minimum) for tracing and checks."""
    size = size or tuple(2 * m for m in minimum_size(model))
    generator = torch.Generator().manual_seed(0)
    channels = int(model.architecture["input_channels"])
    return torch.rand((batch, channels, *size), generator=generator)


def export_onnx(model: UNet, path: str | Path, *, opset: int = ONNX_OPSET, marker: bool = False) -> int:
    """Write `model` (eval mode, cpu) to one self-contained .onnx file with dynamic batch and spatial axes
    (multiples of `size_step`); return the opset. Inputs `input_names(model, marker)`, output `output`."""
    core, inputs = _graph(model, marker)
    steps = size_step(model)
    dims = {0: torch.export.Dim("batch", min=1, max=4096)}
    for axis, step in enumerate(steps):
        dims[axis + 2] = torch.export.Dim(f"{'zyx'[-len(steps) + axis]}_blocks", min=2, max=65536 // step) * step
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            core,
            inputs,
            input_names=input_names(model, marker),
            output_names=["output"],
            dynamic_shapes=[dims] * len(inputs),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
        program.save(str(path), external_data=False)
    return opset


def export_torchscript(model: UNet, path: str | Path, *, marker: bool = False) -> None:
    """Write `model` traced (eval mode, cpu) as a TorchScript file; any size that fits `size_step` runs."""
    core, inputs = _graph(model, marker)
    with _quiet_exporter(), torch.no_grad():
        traced = torch.jit.trace(core, inputs, check_trace=False)
    traced.save(str(path))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters' progress lines and warnings (missing torchvision ops, deprecations) kept off the console."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
