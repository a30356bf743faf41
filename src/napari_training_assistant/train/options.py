"""Device resolution and the rank-zero test of a run; `TrainOptions` (what a run is asked) lives in
`project.run_options` so the CLI checks flags without importing torch."""

from __future__ import annotations

import os

from ..project.run_options import TrainOptions
from ..project.user_input import InputError

__all__ = ["TrainOptions", "is_rank_zero", "resolve_device"]


def resolve_device(requested: str | None) -> tuple[str, list[int] | None]:
    """(Lightning accelerator, explicit device indices or None) for auto / cpu / cuda / cuda:N / mps."""
    import torch

    name = (requested or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda", None
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps", None
        return "cpu", None
    if name == "cpu":
        return "cpu", None
    if name.startswith("cuda") or name == "gpu":
        if not torch.cuda.is_available():
            raise InputError(f"`device` {requested!r} asked for, but this torch sees no CUDA GPU: use cpu or install a CUDA build of torch")
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise InputError(f"`device` {requested!r} not understood: use cuda or cuda:N")
        if index and int(index) >= torch.cuda.device_count():
            raise InputError(f"`device` {requested!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return "cuda", [int(index)] if index else None
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise InputError("`device` 'mps' asked for, but Apple MPS is not available here: use cpu")
        return "mps", None
    raise InputError(f"`device` {requested!r} not understood: use auto, cpu, cuda, cuda:N or mps")


def is_rank_zero() -> bool:
    """True in the launching process (or rank 0 of a torchrun/SLURM/Lightning DDP job)."""
    for variable in ("RANK", "SLURM_PROCID", "PMI_RANK"):
        if variable in os.environ:
            return int(os.environ[variable]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
