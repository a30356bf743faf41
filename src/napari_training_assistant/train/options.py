"""The rank-zero test of a run; re-exports `TrainOptions` (what a run is asked: `project.run_options`, so the
CLI checks flags without importing torch) and `resolve_device` (`model.device`, the one device resolver)."""

from __future__ import annotations

import os

from ..model.device import resolve_device
from ..project.run_options import TrainOptions

__all__ = ["TrainOptions", "is_rank_zero", "resolve_device"]


def is_rank_zero() -> bool:
    """True in the launching process (or rank 0 of a torchrun/SLURM/Lightning DDP job)."""
    for variable in ("RANK", "SLURM_PROCID", "PMI_RANK"):
        if variable in os.environ:
            return int(os.environ[variable]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
