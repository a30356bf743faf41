"""Background work for the widget, as napari `thread_worker`s started later by the tabs.

`child_worker`: training and prediction run in a child process (`child_process.ChildTask`); the worker
thread follows it, yields each `ProgressEvent` to the GUI thread and returns the task's value (or a
`TaskFailed`). `task_worker`: short tasks that only read or write files (folder import, weights
import, SAM3 previews) run in the worker thread itself. Failures travel as values, never as tracebacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.qt.threading import thread_worker

from .child_process import ChildTask, TaskFailed

__all__ = ["ChildTask", "TaskFailed", "child_worker", "task_worker"]


def _follow(task: ChildTask, then: Callable[[Any], Any] | None):
    outcome = yield from task.results()
    if then is None or isinstance(outcome, TaskFailed):
        return outcome
    return _call(lambda: then(outcome))


def child_worker(task: ChildTask, then: Callable[[Any], Any] | None = None):
    """A started-later napari worker: runs `task` in its child process, yields its events and returns
    its value, passed through `then` in the worker thread when given (e.g. read a saved file), or a
    `TaskFailed`. Connect `yielded`, `returned` and `finished` (in that order of arrival)."""
    return thread_worker(_follow, start_thread=False)(task, then)


def _call(function: Callable[[], Any]):
    try:
        return function()
    except BaseException as exc:
        return TaskFailed.of(exc, keep=True)


def task_worker(function: Callable[[], Any]):
    """A started-later napari worker returning `function()` or a `TaskFailed` (folder and weights imports)."""
    return thread_worker(_call, start_thread=False)(function)
