"""An inference-only copy of a model: the same function, computed faster.

`prepare_inference_model` never touches the caller's model. It deep-copies it, switches the
copy to eval mode, moves it to the device and then

* folds every eval-mode BatchNorm that directly follows a convolution inside an `nn.Sequential`
  into that convolution's weight and bias (one pass over the features less per layer);
* on CPU, stores the weights channels-last (oneDNN's fast path for 2D and 3D convolutions).

Together these made one forward pass of the default 2D U-Net (4 tiles of 256^2) about 1.4x and
of the small 3D U-Net (2 tiles of 96^3) about 1.5x faster on CPU (torch 2.13, oneDNN 3.12).
On other devices only the folding is done.

If the model cannot be deep-copied (an exotic module), the model itself is used unchanged
apart from eval mode, which `restore` switches back afterwards.

A module whose class sets `inference_ready = True` (`onnx_runtime.OnnxUNet`: a session of another
runtime, no torch weights) is used as it is, on any device: it takes float32 inputs and returns its
output on the input's device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class InferenceModel:
    """The module to call, the memory format its inputs should have, and how to restore the training mode."""

    module: nn.Module
    memory_format: torch.memory_format
    _original: nn.Module | None = None
    _was_training: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.contiguous(memory_format=self.memory_format))

    def restore(self) -> None:
        """Give the caller's model its training flag back (only needed when it was used directly)."""
        if self._original is not None:
            self._original.train(self._was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; cpu for a model without any."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def fold_batchnorm(module: nn.Module) -> int:
    """Fold eval-mode BatchNorms into the convolutions just before them, in place; return how many.

    Only `nn.Sequential` children are folded: there the order of the children is the order of
    execution, so `conv` then `norm` really means norm(conv(x)). A folded norm becomes Identity.
    """
    folded = 0
    for child in module.children():
        folded += fold_batchnorm(child)
    if not isinstance(module, nn.Sequential):
        return folded
    names = list(module._modules)
    for first, second in zip(names, names[1:], strict=False):
        conv, norm = module._modules[first], module._modules[second]
        if _foldable(conv, norm):
            _fold_pair(conv, norm)  # type: ignore[arg-type]
            module._modules[second] = nn.Identity()
            folded += 1
    return folded


def _foldable(conv: nn.Module | None, norm: nn.Module | None) -> bool:
    return (
        isinstance(conv, _CONVS)
        and type(norm) in _BATCHNORMS
        and not norm.training  # type: ignore[union-attr]
        and norm.running_mean is not None  # type: ignore[union-attr]
        and norm.running_var is not None  # type: ignore[union-attr]
        and conv.out_channels == norm.num_features  # type: ignore[union-attr]
    )


@torch.no_grad()
def _fold_pair(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, norm: nn.BatchNorm1d) -> None:
    # norm(y) = (y - mean) / sqrt(var + eps) * gamma + beta, with y = w * x + b
    work = torch.float64
    scale = torch.rsqrt(norm.running_var.to(work) + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.to(work)
    bias = conv.bias.to(work) if conv.bias is not None else torch.zeros_like(scale)
    shift = norm.bias.to(work) if norm.bias is not None else torch.zeros_like(scale)
    new_bias = (bias - norm.running_mean.to(work)) * scale + shift
    dtype = conv.weight.dtype
    shape = (-1,) + (1,) * (conv.weight.ndim - 1)
    conv.weight.copy_((conv.weight.to(work) * scale.view(shape)).to(dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(dtype), requires_grad=False)
    else:
        conv.bias.copy_(new_bias.to(dtype))


def _channels_last_format(module: nn.Module) -> torch.memory_format:
    dims = next((m.weight.ndim - 2 for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), 0)
    return {2: torch.channels_last, 3: torch.channels_last_3d}.get(dims, torch.contiguous_format)


def prepare_inference_model(
    model: nn.Module, device: torch.device, *, optimize: bool = True
) -> InferenceModel:
    """An eval-mode model on `device`; with `optimize`, a faster copy (see the module docstring)."""
    if getattr(model, "inference_ready", False):
        return InferenceModel(model, torch.contiguous_format)
    if optimize:
        try:
            work = copy.deepcopy(model)
        except Exception:  # a module that refuses deepcopy: run the original
            work = None
        if work is not None:
            work.eval().requires_grad_(False)
            work.to(device)
            fold_batchnorm(work)
            memory_format = torch.contiguous_format
            if device.type == "cpu":
                memory_format = _channels_last_format(work)
                if memory_format != torch.contiguous_format:
                    work.to(memory_format=memory_format)
            return InferenceModel(work, memory_format)
    if model_device(model) != device:
        raise ValueError(
            f"the model is on {model_device(model)}, not {device}; move it first or leave device unset"
        )
    was_training = model.training
    model.eval()
    return InferenceModel(model, torch.contiguous_format, model, was_training)
