"""One training run of a project, end to end: plan -> data -> Lightning fit -> checkpoint -> benchmark -> history."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..project import TrainingProject, run_control
from ..project.clock import now
from ..project.errors import ProjectError
from ..project.runs import describe_process, is_alive, this_process
from ..project.schemas import TrainingRun
from .events import CancelToken, EventKind, Listener, ProgressEvent
from .finish import finish_run
from .options import TrainOptions, is_rank_zero
from .records import TrainingFailed, TrainResult, record_end

RUN_ID_VARIABLE = "NTA_RUN_ID"  # DDP worker processes re-run the command: they join the launcher's run


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
    write, run record with heartbeat and held pairs, fit with events and cancel, then (rank 0) checkpoint,
    benchmark and history."""
    cancel = cancel or CancelToken()
    emit = listener or (lambda event: None)
    started = time.perf_counter()
    rank_zero = is_rank_zero()
    run_id, resume_ckpt = _run_identity(project, options, rank_zero, training_mode)
    if resume_ckpt:
        options = resumed_options(project, run_id, resume_ckpt, options)
    prepared = prepare(project, options, run_id)  # validation, plan, data, starting weights: errors before any write
    logger = _project_logger(project) if rank_zero else logging.getLogger("nta.worker")
    if rank_zero:
        run_dir = project.layout.run_dir(run_id)
        run_control.clear_stop_request(run_dir)  # a request left from before a resume must not stop this run
        emit = run_control.ProgressRecorder(run_dir / run_control.PROGRESS_FILE, emit, keep_earlier=bool(resume_ckpt))
        _record_start(project, run_id, prepared, training_mode)
        prepared.record_decisions(project)
        logger.info("%s started: %s", run_id, prepared.summary())
        emit(ProgressEvent(EventKind.STARTED, epochs=prepared.epochs, message=prepared.summary()))
    os.environ[RUN_ID_VARIABLE] = run_id
    trainer = prepared.build_trainer(listener=emit, cancel=cancel, launcher=launcher)
    try:
        with _sigint_cancels(cancel), Heartbeat(project, run_id, enabled=rank_zero, cancel=cancel):
            trainer.fit(
                prepared.module,
                train_dataloaders=prepared.train_loader,
                val_dataloaders=prepared.val_loader,
                ckpt_path=resume_ckpt,
                weights_only=True,  # the resume state is tensors and plain types: nothing in it can run
            )
    except Exception as exc:  # the run failed: record it, keep the project consistent, re-raise as one line
        if rank_zero:
            record_end(project, run_id, "failed", started, prepared.start.parent_id, reason=f"{type(exc).__name__}: {exc}")
            logger.exception("%s failed", run_id)
            emit(ProgressEvent(EventKind.FINISHED, message=f"failed: {exc}"))
        raise TrainingFailed(f"training run {run_id} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        os.environ.pop(RUN_ID_VARIABLE, None)
    if not (rank_zero and trainer.is_global_zero):
        return None
    status = "cancelled" if cancel.cancelled else "completed"
    try:
        result = finish_run(
            project, prepared, trainer, run_id, status, started, reason=cancel.reason if cancel.cancelled else "",
            log=lambda line: _log_line(logger, emit, run_id, line),
        )
    except TrainingFailed as exc:
        emit(ProgressEvent(EventKind.FINISHED, message=f"failed: {exc}"))
        raise
    logger.info("%s %s: checkpoint %s, %s", run_id, status, result.checkpoint_id, _fmt(result.metrics))
    emit(ProgressEvent(EventKind.FINISHED, metrics=result.metrics, message=f"{status}: {result.checkpoint_id}"))
    return result


def _log_line(logger: logging.Logger, emit: Listener, run_id: str, line: str) -> None:
    """A line about the run's end (after the last epoch) for the project log and the listener's log view."""
    logger.info("%s %s", run_id, line)
    emit(ProgressEvent(EventKind.MESSAGE, message=line))


RESUMABLE = ("running", "interrupted", "cancelled", "failed")


def _run_identity(project: TrainingProject, options: TrainOptions, rank_zero: bool, training_mode: str) -> tuple[str, str | None]:
    """(run id, Lightning checkpoint to resume from or None)."""
    if not rank_zero and os.environ.get(RUN_ID_VARIABLE):
        run_id = os.environ[RUN_ID_VARIABLE]
        last = project.layout.run_dir(run_id) / "last.ckpt"
        return run_id, str(last) if options.resume and last.exists() else None
    runs = project.history.runs
    if options.resume:
        closed = []
        for run in reversed(runs):
            if run.settings.get("training_mode", "pairs") != training_mode or run.status not in RESUMABLE:
                continue
            if run.status == "running" and is_alive(run, now()):
                raise ProjectError(
                    f"{run.run_id} is still running ({describe_process(run)}): stop it or wait for it to end; "
                    "a run is resumed only once its process is gone"
                )
            done = project.checkpoints.completed_by_run(run.run_id)
            if done is not None:  # killed after registering: the run is over, only its record was not
                _close_finished(project, run, done.checkpoint_id)
                closed.append(f"{run.run_id} had already finished as {done.checkpoint_id}")
                continue
            last = project.layout.run_dir(run.run_id) / "last.ckpt"
            if last.exists():
                return run.run_id, str(last)
        already = f" ({'; '.join(closed)}; its record now says completed)" if closed else ""
        raise ProjectError(
            f"nothing to resume in {project.root}: no interrupted, cancelled or failed run with a saved state{already}; train without --resume"
        )
    numbers = [int(r.run_id.rpartition("_")[2]) for r in runs if r.run_id.rpartition("_")[2].isdigit()]
    return f"run_{max(numbers, default=0) + 1:03d}", None


def resumed_options(project: TrainingProject, run_id: str, last_ckpt: str, options: TrainOptions) -> TrainOptions:
    """The options of a resumed run: its own planned epochs unless `--epochs` is given, which is the
    run's new total and must be more than the epochs already done (read weights-only from the state)."""
    import torch

    try:
        state = torch.load(last_ckpt, map_location="cpu", weights_only=True)
        done = int(state["epoch"])
    except Exception as exc:  # a refused pickle, a damaged file, a foreign format
        raise ProjectError(
            f"the saved state of {run_id} ({project.layout.relative(Path(last_ckpt))}) cannot be read as plain tensors "
            f"({type(exc).__name__}); it was not loaded: train without --resume"
        ) from None
    record = next(r for r in project.history.runs if r.run_id == run_id)
    planned = record.settings.get("epochs")
    options = copy.copy(options)
    if options.epochs is None and isinstance(planned, int):
        options.epochs = planned
    if options.epochs is not None and options.epochs < done:
        raise ProjectError(
            f"{run_id} has already trained {done} epoch(s); with --resume, --epochs is the run's total, "
            f"so give {done} or more (or leave it out to finish the {planned or 'planned'} epochs it was started with)"
        )
    return options


def _record_start(project: TrainingProject, run_id: str, prepared, training_mode: str) -> None:
    """The run record, `running`, with this process's heartbeat and the pairs it holds. Under the lock,
    the held pairs are checked to be exactly as prepared (none removed, changed or moved meanwhile)."""
    snapshot, held = prepared.dataset_hold()
    with project.locked():
        if held:
            _check_held_pairs(project, prepared, held)
        project.set_training_mode(training_mode)  # the project remembers the kind of its latest run
        earlier = next((r for r in project.history.runs if r.run_id == run_id), None)  # a resumed run keeps its start
        project.history.record_run(
            TrainingRun(
                run_id=run_id,
                status="running",
                started_at=earlier.started_at if earlier else now(),
                parent_id=prepared.start.parent_id,
                settings={"training_mode": training_mode, "epochs": prepared.epochs, **prepared.settings_record()},
                heartbeat=this_process(now()),
                manifest_sha256=snapshot,
                held_pairs=held,
            )
        )


def _check_held_pairs(project: TrainingProject, prepared, held: list[str]) -> None:
    seen = prepared.pair_versions()
    current = {p.pair_id: (p.image_sha256, p.mask_sha256, p.split) for p in project.dataset.pairs}
    changed = [pair_id for pair_id in held if current.get(pair_id) != seen.get(pair_id)]
    if changed:
        raise ProjectError(
            f"pairs {', '.join(changed[:5])} were removed, replaced or moved while the run was being prepared "
            "(another process edits the dataset): start the run again"
        )


def _close_finished(project: TrainingProject, run, checkpoint_id: str) -> None:
    run = run.model_copy(update={"status": "completed", "checkpoint_id": checkpoint_id, "ended_at": run.ended_at or now()})
    project.history.record_run(run)


class Heartbeat:
    """While the run trains, a daemon thread renews the run record's heartbeat every
    `runs.HEARTBEAT_EVERY_S` (a thread, so long steps or validation do not delay it) and, every
    `run_control.STOP_CHECK_S`, turns a stop request from another process (`nta stop`, a viewer
    following the run) into a cooperative cancel."""

    def __init__(self, project: TrainingProject, run_id: str, *, enabled: bool = True, cancel: CancelToken | None = None):
        from ..project import runs

        self.project, self.run_id, self.enabled, self.cancel = project, run_id, enabled, cancel
        self.every, self.check_every = runs.HEARTBEAT_EVERY_S, run_control.STOP_CHECK_S
        self.run_dir = project.layout.run_dir(run_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self.enabled:
            self._thread = threading.Thread(target=self._beat, name=f"nta-heartbeat-{self.run_id}", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(min(self.every, self.check_every)):
            reason = run_control.requested_stop(self.run_dir) if self.cancel is not None and not self.cancel.cancelled else None
            if reason is not None:
                logging.getLogger("nta").info("%s: stop requested (%s)", self.run_id, reason)
                self.cancel.cancel(reason)
            if time.monotonic() - last_beat < self.every:
                continue
            last_beat = time.monotonic()
            try:
                self.project.history.beat(self.run_id, this_process(now()))
            except Exception:  # a busy lock or a full disk must not end the run; the next beat retries
                logging.getLogger("nta").warning("heartbeat of %s not written", self.run_id, exc_info=True)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


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
