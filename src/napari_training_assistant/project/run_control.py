"""Following and stopping a training run from another process: its progress file and its stop request.

A run (rank 0) keeps `history/runs/<run_id>/progress.json` current: its STARTED event, one entry per
epoch and its latest step (rewritten at most once every `WRITE_EVERY_S`). Whoever did not start the
run (a viewer reopened after "Keep running in the background", a colleague's viewer, `nta status`)
reads it to show where the run is. `nta stop` or such a viewer's Stop writes `stop_request.json`
beside it; the run's watch thread (`train.run.Heartbeat`) sees it within `STOP_CHECK_S` and cancels
cooperatively: the run ends after its current step and is saved as cancelled, like a Stop in the
viewer that started it. Both files are plain JSON read with a size cap; nothing in them runs, and a
damaged one reads as absent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..progress import EventKind, Listener, ProgressEvent
from .clock import now
from .errors import ProjectError
from .runs import effective_status
from .schemas import TrainingRun

PROGRESS_FILE = "progress.json"
STOP_FILE = "stop_request.json"
WRITE_EVERY_S = 1.0  # step progress is rewritten at most this often; epochs and the start at once
STOP_CHECK_S = 1.0  # how often a run looks for a stop request
MAX_FILE_BYTES = 1 << 20  # a larger progress or stop file is not a run's: it reads as absent
MAX_REASON_CHARS = 200


@dataclass
class RunProgress:
    """What a run's progress file says: its start, its epochs so far, its latest event."""

    started: ProgressEvent | None = None
    epochs: list[ProgressEvent] = field(default_factory=list)
    last: ProgressEvent | None = None

    def as_json(self) -> dict[str, Any]:
        encode = _event_json
        return {"started": encode(self.started), "epochs": [encode(e) for e in self.epochs], "last": encode(self.last)}


class ProgressRecorder:
    """A listener that passes each event on and keeps the run's progress file current."""

    def __init__(self, path: Path, listener: Listener, *, keep_earlier: bool = False, every_s: float = WRITE_EVERY_S):
        self.path, self.listener, self.every_s = Path(path), listener, every_s
        earlier = read_progress(self.path) if keep_earlier else None  # a resumed run keeps its earlier epochs
        self.progress = RunProgress(epochs=earlier.epochs if earlier else [])
        self._step_written_at = float("-inf")  # steps are throttled among themselves: the first one is written

    def __call__(self, event: ProgressEvent) -> None:
        self.listener(event)
        if event.kind == EventKind.STARTED:
            self.progress.started = event
        elif event.kind == EventKind.EPOCH:
            self.progress.epochs = [e for e in self.progress.epochs if e.epoch < event.epoch] + [event]
        elif event.kind == EventKind.MESSAGE:
            return
        self.progress.last = event
        if event.kind == EventKind.STEP:
            if time.monotonic() - self._step_written_at < self.every_s:
                return
            self._step_written_at = time.monotonic()
        self._write()

    def _write(self) -> None:
        with contextlib.suppress(OSError):  # a full disk or a read-only folder must not end the run; the next event retries
            _replace_text(self.path, json.dumps(self.progress.as_json(), default=str))


def read_progress(path: Path) -> RunProgress | None:
    """The progress file at `path`, or None when it is missing, too large or not a run's."""
    data = _read_json(path)
    try:
        return RunProgress(
            started=_event(data["started"]), epochs=[_event(e) for e in data["epochs"] if e], last=_event(data["last"])
        )
    except (TypeError, KeyError, ValueError):
        return None


def progress_path(project, run_id: str) -> Path:
    return project.layout.run_dir(run_id) / PROGRESS_FILE


def progress_summary(project, run_id: str) -> dict[str, Any] | None:
    """Where a run is, as plain values (`nta status`): its latest event's kind, epoch, epochs, step, steps,
    eta_s, loss and the last epoch's metrics; None before its first event."""
    progress = read_progress(progress_path(project, run_id))
    if progress is None or progress.last is None:
        return None
    last = progress.last
    metrics = progress.epochs[-1].metrics if progress.epochs else {}
    return {"event": str(last.kind), "epoch": last.epoch, "epochs": last.epochs, "step": last.step, "steps": last.steps, "eta_s": last.eta_s, "loss": last.loss, "metrics": metrics}


# ----------------------------------------------------------------------------------- stop requests
def stop_run(project, run_id: str | None = None, reason: str = "stopped with nta stop") -> TrainingRun:
    """Ask the live run `run_id` (default: the only live one) to stop; ProjectError when there is none."""
    live = project.history.live_runs()
    if run_id is None and len(live) > 1:
        raise ProjectError(f"{len(live)} runs are running ({', '.join(r.run_id for r in live)}): say which with --run RUN_ID")
    run = next((r for r in live if run_id in (None, r.run_id)), None)
    if run is None:
        known = {r.run_id: r for r in project.history.runs}
        if run_id is not None and run_id not in known:
            raise ProjectError(f"no run {run_id} in {project.root}: `nta status {project.root}` lists its runs")
        ended = known.get(run_id) if run_id else (project.history.runs[-1] if project.history.runs else None)
        state = f" ({ended.run_id} is {effective_status(ended, now())})" if ended else ""
        raise ProjectError(f"nothing to stop: no training run of {project.root} is running{state}")
    request_stop(project, run.run_id, reason)
    return run


def wait_for_end(project, run_id: str, timeout_s: float, poll_s: float = 1.0) -> TrainingRun | None:
    """The run's record once its process has ended it (or is gone), None after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = next((r for r in project.history.runs if r.run_id == run_id), None)
        if run is None or effective_status(run, now()) != "running":
            return run
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.01)))


def request_stop(project, run_id: str, reason: str) -> Path:
    """Ask `run_id` to stop (from any process or machine sharing the folder); returns the request's path."""
    reason = " ".join(str(reason).split())[:MAX_REASON_CHARS] or "stop requested"
    where = f"{socket.gethostname()} pid {os.getpid()}"
    path = project.layout.run_dir(run_id) / STOP_FILE
    _replace_text(path, json.dumps({"reason": reason, "from": where, "at": now().isoformat(timespec="seconds")}))
    return path


def requested_stop(run_dir: Path) -> str | None:
    """The reason of a stop request in `run_dir` ("stop requested" when it cannot be read), else None."""
    path = Path(run_dir) / STOP_FILE
    if not path.exists():
        return None
    data = _read_json(path)
    reason = data.get("reason") if isinstance(data, dict) else None
    return " ".join(reason.split())[:MAX_REASON_CHARS] if isinstance(reason, str) and reason.strip() else "stop requested"


def clear_stop_request(run_dir: Path) -> None:
    """At a run's (re)start: an old request (a resumed run's, a stale copy) must not stop it."""
    with contextlib.suppress(FileNotFoundError):
        (Path(run_dir) / STOP_FILE).unlink()


# ----------------------------------------------------------------------------------------- files
def _replace_text(path: Path, text: str) -> None:
    """Readers see the old or the new file, never a mix (no fsync: losing this file loses nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _read_json(path: Path) -> Any:
    try:
        if path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


_FIELDS = {f.name for f in dataclasses.fields(ProgressEvent)}
_NUMBERS = ("epoch", "epochs", "step", "steps")


def _event_json(event: ProgressEvent | None) -> dict[str, Any] | None:
    return None if event is None else {**dataclasses.asdict(event), "kind": str(event.kind)}


def _event(data: Any) -> ProgressEvent | None:
    """A `ProgressEvent` from its JSON; ValueError/TypeError when it is not one."""
    if data is None:
        return None
    values = {key: value for key, value in dict(data).items() if key in _FIELDS}
    values["kind"] = EventKind(values["kind"])
    for key in _NUMBERS:
        values[key] = int(values.get(key) or 0)
    for key in ("loss", "eta_s"):
        values[key] = None if values.get(key) is None else float(values[key])
    values["metrics"] = {str(k): v for k, v in dict(values.get("metrics") or {}).items()}
    values["message"] = str(values.get("message") or "")
    return ProgressEvent(**values)
