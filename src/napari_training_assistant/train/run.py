"""One training run of a project, end to end: plan -> data -> Lightning fit -> checkpoint -> benchmark -> history."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..project import TrainingProject
from ..project.errors import ProjectError
from ..project.schemas import TrainingRun
from ..project.training_project import now
from .events import CancelToken, EventKind, Listener, ProgressEvent
from .options import TrainOptions, is_rank_zero

RUN_ID_VARIABLE = "NTA_RUN_ID"  # DDP worker processes re-run the command: they join the launcher's run


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


def train_project(
    project: TrainingProject,
    options: TrainOptions | None = None,
    *,
    listener: Listener | None = None,
    cancel: CancelToken | None = None,
    launcher: str = "python",
) -> TrainResult | None:
    """Train the project's U-Net on its pairs as its files say; returns None in DDP worker processes."""
    from .plan import prepare_run

    return execute_run(project, options or TrainOptions(), prepare_run, "pairs", listener=listener, cancel=cancel, launcher=launcher)


def execute_run(
    project: TrainingProject,
    options: TrainOptions,
    prepare: Callable[[TrainingProject, TrainOptions, str], Any],
    training_mode: str,
    *,
    listener: Listener | None = None,
    cancel: CancelToken | None = None,
    launcher: str = "python",
) -> TrainResult | None:
    """The life cycle every run shares (pair training, point windows): identity, preparation before any
    write, run record, fit with events and cancel, then (rank 0) checkpoint, benchmark and history."""
    cancel = cancel or CancelToken()
    emit = listener or (lambda event: None)
    started = time.perf_counter()
    rank_zero = is_rank_zero()
    run_id, resume_ckpt = _run_identity(project, options, rank_zero, training_mode)
    prepared = prepare(project, options, run_id)  # validation, plan, data, starting weights: errors before any write
    logger = _project_logger(project) if rank_zero else logging.getLogger("nta.worker")
    if rank_zero:
        earlier = next((r for r in project.history.runs if r.run_id == run_id), None)  # a resumed run keeps its start
        settings = {"training_mode": training_mode, **prepared.settings_record()}
        project.history.record_run(
            TrainingRun(
                run_id=run_id,
                status="running",
                started_at=earlier.started_at if earlier else now(),
                parent_id=prepared.start.parent_id,
                settings=settings,
            )
        )
        prepared.record_decisions(project)
        logger.info("%s started: %s", run_id, prepared.summary())
        emit(ProgressEvent(EventKind.STARTED, epochs=prepared.epochs, message=prepared.summary()))
    os.environ[RUN_ID_VARIABLE] = run_id
    trainer = prepared.build_trainer(listener=emit, cancel=cancel, launcher=launcher)
    try:
        with _sigint_cancels(cancel):
            trainer.fit(
                prepared.module,
                train_dataloaders=prepared.train_loader,
                val_dataloaders=prepared.val_loader,
                ckpt_path=resume_ckpt,
                weights_only=False,
            )
    except Exception as exc:  # the run failed: record it, keep the project consistent, re-raise as one line
        if rank_zero:
            _record_end(project, run_id, "failed", started, prepared, reason=f"{type(exc).__name__}: {exc}")
            logger.exception("%s failed", run_id)
            emit(ProgressEvent(EventKind.FINISHED, message=f"failed: {exc}"))
        raise TrainingFailed(f"training run {run_id} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        os.environ.pop(RUN_ID_VARIABLE, None)
    if not (rank_zero and trainer.is_global_zero):
        return None
    from .finish import finish_run

    status = "cancelled" if cancel.cancelled else "completed"
    result = finish_run(project, prepared, trainer, run_id, status, started, reason=cancel.reason if cancel.cancelled else "")
    logger.info("%s %s: checkpoint %s, %s", run_id, status, result.checkpoint_id, _fmt(result.metrics))
    emit(ProgressEvent(EventKind.FINISHED, metrics=result.metrics, message=f"{status}: {result.checkpoint_id}"))
    return result


def _run_identity(project: TrainingProject, options: TrainOptions, rank_zero: bool, training_mode: str) -> tuple[str, str | None]:
    """(run id, Lightning checkpoint to resume from or None)."""
    if not rank_zero and os.environ.get(RUN_ID_VARIABLE):
        run_id = os.environ[RUN_ID_VARIABLE]
        last = project.layout.run_dir(run_id) / "last.ckpt"
        return run_id, str(last) if options.resume and last.exists() else None
    runs = project.history.runs
    if options.resume:
        for run in reversed(runs):
            last = project.layout.run_dir(run.run_id) / "last.ckpt"
            same_kind = run.settings.get("training_mode", "pairs") == training_mode
            if same_kind and run.status in ("running", "cancelled", "failed") and last.exists():
                return run.run_id, str(last)
        raise ProjectError(f"nothing to resume in {project.root}: no interrupted, cancelled or failed run with a saved state; train without --resume")
    numbers = [int(r.run_id.rpartition("_")[2]) for r in runs if r.run_id.rpartition("_")[2].isdigit()]
    return f"run_{max(numbers, default=0) + 1:03d}", None


def _record_end(project: TrainingProject, run_id: str, status: str, started: float, prepared, reason: str = "", **extra: Any) -> None:
    existing = next((r for r in project.history.runs if r.run_id == run_id), None)
    ended = now()
    project.history.record_run(
        TrainingRun(
            run_id=run_id,
            status=status,
            started_at=existing.started_at if existing else ended,
            ended_at=ended,
            duration_s=round(time.perf_counter() - started, 2),
            parent_id=prepared.start.parent_id,
            reason=reason,
            settings={"training_mode": existing.settings.get("training_mode", "pairs") if existing else "pairs", **prepared.settings_record()},
            **extra,
        )
    )


def _project_logger(project: TrainingProject) -> logging.Logger:
    logger = logging.getLogger(f"nta.project.{project.root.resolve()}")
    logger.setLevel(logging.INFO)
    target = str(project.layout.training_log.resolve())
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == target for h in logger.handlers):
        project.layout.logs_dir.mkdir(exist_ok=True)
        handler = logging.FileHandler(target, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    return logger


@contextlib.contextmanager
def _sigint_cancels(cancel: CancelToken):
    """In the main thread, a first Ctrl-C cancels cooperatively (the run is saved as cancelled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if cancel.cancelled:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        cancel.cancel("interrupted (Ctrl-C)")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fmt(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
