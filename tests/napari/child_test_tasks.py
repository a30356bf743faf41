"""Tasks for the child-process tests: importable by name in a spawned child once this folder is on
sys.path (`monkeypatch.syspath_prepend`). Not a test module (pytest does not collect it)."""

from __future__ import annotations

import os
import time

from napari_training_assistant.progress import EventKind, ProgressEvent


def count(n: int, *, listener, cancel) -> dict:
    """n STEP events, then this process's pid."""
    for step in range(1, n + 1):
        listener(ProgressEvent(EventKind.STEP, step=step, steps=n))
    return {"pid": os.getpid()}


def until_stopped(*, listener, cancel) -> str:
    """Steps until the cancel token is set (cooperative); returns the token's reason."""
    step = 0
    while not cancel.cancelled:
        step += 1
        listener(ProgressEvent(EventKind.STEP, step=step, steps=10**9))
        time.sleep(0.05)
    return cancel.reason


def deaf(*, listener, cancel) -> None:
    """Says it started, then sleeps without ever looking at the cancel token."""
    listener(ProgressEvent(EventKind.MESSAGE, message="sleeping, deaf to Stop"))
    time.sleep(600)


def fail(*, listener, cancel) -> None:
    raise ValueError("the input is wrong\nsecond line of detail")


def unpicklable(*, listener, cancel):
    return lambda: None


class OnlyInTheChild:
    """Unpickles only where `__reduce__` says so: in the parent it raises."""

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise ImportError("this class needs a module the GUI process never imports")


def unreadable(*, listener, cancel):
    listener(OnlyInTheChild())
    time.sleep(600)


def outlive_parent(marker: str, *, listener, cancel) -> str:
    """Steps (sending events) until its parent process has ended, then a few more, then writes `marker`
    with how it ended: "cancelled: <reason>" or "finished" (a detached task must finish)."""
    import multiprocessing
    from pathlib import Path

    parent = multiprocessing.parent_process()
    while parent is not None and parent.is_alive() and not cancel.cancelled:
        listener(ProgressEvent(EventKind.STEP, step=1, steps=2))
        time.sleep(0.05)
    for _ in range(10):  # events after the parent's end go nowhere, and must not stop the task
        listener(ProgressEvent(EventKind.STEP, step=2, steps=2))
        print("a line to the parent's terminal, which may be gone", flush=True)
        time.sleep(0.05)
    outcome = f"cancelled: {cancel.reason}" if cancel.cancelled else "finished"
    Path(marker).write_text(f"{outcome} {os.getsid(0) == os.getpid()}")
    return outcome
