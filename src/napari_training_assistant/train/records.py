"""What a run leaves behind in the records, shared by the run life cycle and its end: the result type, the
failure type and the end of the run record."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..project import TrainingProject
from ..project.clock import now
from ..project.errors import ProjectError
from ..project.schemas import TrainingRun


class TrainingFailed(ProjectError):
    """The run started but failed; it is recorded as failed in history/training_runs.json."""


@dataclass
class TrainResult:
    run_id: str
    status: str
    checkpoint_id: str | None
    checkpoint_path: str | None
    parent_id: str | None
    metrics: dict[str, Any]
    benchmark: dict[str, Any] | None
    curves_path: str | None
    metrics_csv: str | None
    duration_s: float
    decisions: list[dict[str, Any]] = field(default_factory=list)
    points: dict[str, Any] | None = None  # point-windowed runs: train / val / dropped counts

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_end(project: TrainingProject, run_id: str, status: str, started: float, parent_id: str | None, reason: str = "", **extra: Any) -> None:
    """The run record's end (status, times, reason); what the start recorded (settings, heartbeat, held
    pairs, dataset hash) is kept."""
    existing = next((r for r in project.history.runs if r.run_id == run_id), None)
    ended = now()
    kept = {"heartbeat", "manifest_sha256", "held_pairs", "settings"}
    earlier = existing.model_dump(include=kept) if existing else {}
    project.history.record_run(
        TrainingRun(
            **earlier,
            run_id=run_id,
            status=status,
            started_at=existing.started_at if existing else ended,
            ended_at=ended,
            duration_s=round(time.perf_counter() - started, 2),
            parent_id=parent_id,
            reason=reason,
            **extra,
        )
    )
