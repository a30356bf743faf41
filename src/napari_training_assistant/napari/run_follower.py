"""Following a training run this viewer did not start: one kept running after its viewer closed, one
started with `nta train` in a terminal, a colleague's on the same folder.

The run's own files say everything (`project.run_control`): its progress file gives the events the
Train tab's monitor shows, and its record in the history says when it has ended (or that its process
is gone). `follow_run` reads them every `poll_s` in a worker thread and yields what is new as
`ProgressEvent`s, so a followed run looks like one the tab started; its Stop writes a stop request.
No Qt and no torch here.
"""

from __future__ import annotations

import threading
from collections.abc import Generator

from ..progress import EventKind, ProgressEvent
from ..project import TrainingProject
from ..project.clock import now
from ..project.run_control import progress_path, read_progress
from ..project.runs import effective_status
from .child_process import TaskFailed
from .child_tasks import RunSummary

FOLLOW_POLL_S = 1.0
DETACHED = "Detached"  # the kind of the `TaskFailed` a run's follower ends with when it lets the run go


def follow_run(project_root: str, run_id: str, *, stop: threading.Event, poll_s: float = FOLLOW_POLL_S) -> Generator[ProgressEvent | None, None, RunSummary | TaskFailed]:
    """Yield the run's new events (None between polls) until it ends; return its summary, or a
    `TaskFailed` of kind `DETACHED` once `stop` is set (the run goes on)."""
    project = TrainingProject.open(project_root)
    path = progress_path(project, run_id)
    started, epochs_sent, last_step = False, 0, None
    while True:
        progress = read_progress(path)
        if progress is not None:
            if progress.started is not None and not started:
                started = True
                yield progress.started
            yield from progress.epochs[epochs_sent:]
            epochs_sent = len(progress.epochs)
            if progress.last is not None and progress.last.kind == EventKind.STEP and progress.last != last_step:
                last_step = progress.last
                yield last_step
        run = next((r for r in project.history.runs if r.run_id == run_id), None)
        status = effective_status(run, now()) if run is not None else "missing"
        if status != "running":
            return _summary(project, run_id, run, status)
        if stop.wait(poll_s):
            return TaskFailed(f"{run_id} goes on in the background; reopen the project to follow it again", DETACHED)
        yield None


def _summary(project: TrainingProject, run_id: str, run, status: str) -> RunSummary:
    """The ended run as the Train tab shows a finished one: status, checkpoint and its validation metrics."""
    checkpoint = next((c for c in project.checkpoints.records if run is not None and c.checkpoint_id == run.checkpoint_id), None)
    return RunSummary(
        run_id=run_id,
        status=status,
        checkpoint_id=checkpoint.checkpoint_id if checkpoint else None,
        checkpoint_path=str(project.layout.absolute(checkpoint.path)) if checkpoint else None,
        metrics=dict(checkpoint.metrics) if checkpoint else {},
        reason=run.reason if run is not None else "its record is gone from the history",
    )
