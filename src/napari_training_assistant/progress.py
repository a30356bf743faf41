"""Typed progress events: what a run tells its listener (CLI, widget, a child process's pipe).

No torch, no Qt: the napari widget imports these without the training stack, and events pickled in a
training child process unpickle in the GUI process as the same classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    STARTED = "started"  # plan resolved, data loaded, first step about to run
    STEP = "step"  # one optimisation step done
    EPOCH = "epoch"  # one epoch (with validation) done
    MESSAGE = "message"  # a line for the log view
    FINISHED = "finished"  # run ended (completed, cancelled or failed)


@dataclass(frozen=True)
class ProgressEvent:
    kind: EventKind
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    eta_s: float | None = None
    message: str = ""


Listener = Callable[[ProgressEvent], None]


def duration(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour (ETAs and elapsed times)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"
