"""The one device resolver of training, prediction and SAM3: what `auto, cpu, cuda, cuda:N, mps` means on
this machine (`project.devices` reads the names without torch; torch is imported here, inside functions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..project.devices import DEVICE_HELP, parse_device
from ..project.user_input import InputError, echo

if TYPE_CHECKING:
    import torch

Accelerator = Literal["cpu", "cuda", "mps"]


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(requested: str | None) -> tuple[Accelerator, list[int] | None]:
    """(Lightning accelerator, explicit device indices or None) for auto / cpu / cuda / cuda:N / mps;
    an `InputError` naming `device` when the name is unknown or this machine lacks the device."""
    try:
        request = parse_device(requested)
    except ValueError:
        raise InputError(f"unsupported `device` {echo(requested)}: use {DEVICE_HELP}") from None
    if request.kind == "auto":
        return ("cuda" if cuda_available() else "mps" if mps_available() else "cpu"), None
    if request.kind == "cuda":
        import torch

        if not cuda_available():
            raise InputError(f"`device` {requested!r} asked for, but this torch sees no CUDA GPU: use cpu or install a CUDA build of torch")
        if request.index is not None and request.index >= torch.cuda.device_count():
            raise InputError(f"`device` {requested!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return "cuda", None if request.index is None else [request.index]
    if request.kind == "mps" and not mps_available():
        raise InputError("`device` 'mps' asked for, but Apple MPS is not available here: use cpu")
    return request.kind, None


def torch_device(requested: str | None) -> torch.device:
    """The `torch.device` a name resolves to (`cuda` without an index is the current GPU)."""
    import torch

    accelerator, indices = resolve_device(requested)
    return torch.device(accelerator if indices is None else f"{accelerator}:{indices[0]}")
