"""What one training run is asked to do (CLI flags, widget fields, API arguments)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import torch

from ..project.errors import ProjectError


@dataclass
class TrainOptions:
    """`None` means: take the project's training settings, or let auto-configuration decide."""

    epochs: int | None = None
    patch_size: list[int] | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    start: str | None = None  # scratch | latest | checkpoint:ID | imported:ID (default: the project's choice)
    device: str | None = None  # auto | cpu | cuda | cuda:N | mps
    devices: int | None = None  # processes / GPUs per node (DDP when > 1)
    num_nodes: int = 1
    strategy: str | None = None  # default: ddp (subprocess launcher) for the CLI, ddp_spawn from Python
    resume: bool = False
    seed: int | None = None
    num_workers: int = 0
    samples_per_epoch: int | None = None
    precision: str | None = None
    run_benchmark: bool = True
    keep_architecture: bool = False  # True: auto-configuration never changes depth / width / levels

    def user_fixed(self) -> set[str]:
        return {f.name for f in fields(self) if f.name in ("epochs", "patch_size", "batch_size", "precision") and getattr(self, f.name) is not None}


def resolve_device(requested: str | None) -> tuple[str, list[int] | None]:
    """(Lightning accelerator, explicit device indices or None) for auto / cpu / cuda / cuda:N / mps."""
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
            raise ProjectError(f"device {requested!r} asked for, but this torch sees no CUDA GPU: use --device cpu or install a CUDA build of torch")
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise ProjectError(f"device {requested!r} not understood: use cuda or cuda:N")
        if index and int(index) >= torch.cuda.device_count():
            raise ProjectError(f"device {requested!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return "cuda", [int(index)] if index else None
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ProjectError("device 'mps' asked for, but Apple MPS is not available here: use --device cpu")
        return "mps", None
    raise ProjectError(f"device {requested!r} not understood: use auto, cpu, cuda, cuda:N or mps")


def is_rank_zero() -> bool:
    """True in the launching process (or rank 0 of a torchrun/SLURM/Lightning DDP job)."""
    for variable in ("RANK", "SLURM_PROCID", "PMI_RANK"):
        if variable in os.environ:
            return int(os.environ[variable]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
