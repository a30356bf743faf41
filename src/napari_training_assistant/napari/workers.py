"""Background work for the widget: training streams typed progress events; other tasks just run.

Pattern (as careamics-napari): the engine runs in a plain thread and puts `ProgressEvent`s on a
`queue.Queue`; a napari `thread_worker` generator yields them to the GUI thread, where one handler
dispatches them. Errors travel as values, the Stop button sets a `CancelToken`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from napari.qt.threading import thread_worker

from ..train.events import CancelToken, EventKind, ProgressEvent


@dataclass(frozen=True)
class TaskFailed:
    """A task's exception, delivered to the GUI as a value (one line for the user)."""

    message: str
    exception: BaseException


def run_training(start: Callable[..., Any], cancel: CancelToken, poll_s: float = 0.05):
    """Generator for `thread_worker`: runs `start(listener=..., cancel=...)` in a thread, yields each
    `ProgressEvent`, and finally the run's result or a `TaskFailed`."""
    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = start(listener=events.put, cancel=cancel)
        except BaseException as exc:  # delivered to the GUI, never lost in a thread
            outcome["error"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=target, name="nta-training", daemon=True)
    thread.start()
    while True:
        try:
            event = events.get(timeout=poll_s)
        except queue.Empty:
            continue
        if event is None:
            break
        yield event
    thread.join()
    if "error" in outcome:
        error = outcome["error"]
        yield TaskFailed(str(error).splitlines()[0] if str(error) else type(error).__name__, error)
    else:
        yield outcome.get("result")


def training_worker(start: Callable[..., Any], cancel: CancelToken):
    """A started-later napari worker yielding progress events, then the result (or TaskFailed)."""
    return thread_worker(run_training, start_thread=False)(start, cancel)


def _call(function: Callable[[], Any]):
    try:
        return function()
    except BaseException as exc:
        return TaskFailed(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc)


def task_worker(function: Callable[[], Any]):
    """A started-later napari worker returning `function()` or a `TaskFailed` (prediction, imports)."""
    return thread_worker(_call, start_thread=False)(function)


def is_final(item: Any) -> bool:
    return not isinstance(item, ProgressEvent) or item.kind == EventKind.FINISHED
