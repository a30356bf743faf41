"""Run one task (training, prediction) in a spawned child process and follow it from a thread.

The GUI process never imports the training stack: the child (started with the ``spawn`` method, a
fresh interpreter) imports it, runs the task and sends `ProgressEvent`s, then the result or a
`TaskFailed`, through a one-way pipe. The reader (`ChildTask.results`, run in a worker thread) waits
on that pipe without holding the GIL; the pipe's end-of-file says the child is gone, so a child that
dies (killed, crashed) is reported as a failure with its exit code, never a hang.

Stop is cooperative: a `multiprocessing.Event` that the child's `CancelToken` reads at each check. If
the child has not ended `hard_stop_s` after Stop, it is terminated, then killed. When the process ends
its memory returns to the system. The child runs at a lower CPU priority (`NICENESS`), so on a busy
machine the viewer gets the CPU first and the run takes what is left. No Qt and no torch here.

Detach ("Keep running in the background" when the viewer closes): the reader stops following, the
child is let go (never joined, stopped or terminated at exit) and, told so through a second event,
drops its events and ignores its parent's end instead of cancelling. It runs in its own session, so a
closed terminal or a Ctrl-C meant for napari never reaches it; what it writes to the project (a run's
progress file, checkpoint and record, a prediction, an export) is how it is followed from then on.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.util  # its exit hook is registered first, so ours (below) runs before it
import os
import signal
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from ..cancel import CancelToken

HARD_STOP_S = 60.0  # after Stop, how long a child may take to end before it is terminated
NICENESS = 10  # the child's CPU priority below the GUI's (POSIX nice): the viewer wins when they compete
EXIT_GRACE_S = 20.0  # at interpreter exit, how long a stopped child may take to save its work
END_GRACE_S = 30.0  # after its result, how long a child may take to exit (torch's teardown on a loaded machine)


@dataclass(frozen=True)
class TaskFailed:
    """A task's failure, delivered to the GUI as a value: one line for the user and the exception's
    type name (`exception` only for tasks run in this process: exceptions need not pickle)."""

    message: str
    kind: str = ""
    exception: BaseException | None = None

    @classmethod
    def of(cls, exc: BaseException, *, keep: bool = False) -> TaskFailed:
        return cls(one_line(exc), type(exc).__name__, exc if keep else None)


@dataclass(frozen=True)
class _Done:
    value: Any


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ChildTask:
    """`function(*args, listener=..., cancel=..., **kwargs)` in a child process.

    `function` must be importable by its module path (the child unpickles it) and must not need Qt;
    `args` and its return value must pickle. `label` names the task in messages ("training").
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *args: Any,
        label: str = "task",
        stop_reason: str = "cancelled by the user",
        hard_stop_s: float = HARD_STOP_S,
        niceness: int = NICENESS,
        poll_s: float = 0.1,
        **kwargs: Any,
    ) -> None:
        self.function, self.args, self.kwargs = function, args, kwargs
        self.label, self.stop_reason = label, stop_reason
        self.hard_stop_s, self.niceness, self.poll_s = hard_stop_s, niceness, poll_s
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._detach = self._context.Event()
        self._stop_at: float | None = None
        self._process = None
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.hard_stopped = False

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def stop(self) -> None:
        """Ask the child to stop at its next check; it is terminated `hard_stop_s` later if still running."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
            self._stop.set()

    @property
    def detached(self) -> bool:
        return self._detach.is_set()

    def detach(self) -> None:
        """Let the child run on without this process: the reader returns a `TaskFailed` of kind `Detached`
        at its next poll, and the child outlives the interpreter."""
        if self._stop_at is None:
            self._detach.set()

    def results(self) -> Generator[Any, None, Any]:
        """Start the child, yield each `ProgressEvent` it sends; return its value or a `TaskFailed`."""
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main,
            args=(sender, self._stop, self._detach, self.stop_reason, self.niceness, self.function, self.args, self.kwargs),
            name=f"nta-{self.label}",
        )
        try:
            with _main_module_hidden():
                process.start()
        except Exception as exc:  # e.g. an argument that does not pickle
            receiver.close()
            sender.close()
            return TaskFailed(f"the {self.label} process could not start: {one_line(exc)}", type(exc).__name__)
        sender.close()  # the child holds the only writing end now: its exit ends the pipe
        self._process, self.pid = process, process.pid
        _running.add(self)
        outcome: Any = None
        try:
            while True:
                if self.detached:
                    outcome = TaskFailed(f"the {self.label} process (pid {self.pid}) was left running in the background", "Detached")
                    break
                item = self._receive(receiver)
                if isinstance(item, _Done | TaskFailed):
                    outcome = item.value if isinstance(item, _Done) else item
                    break
                if item is _ENDED:
                    outcome = self._ended_without_result()
                    break
                if item is not None:
                    yield item
        finally:
            receiver.close()
            self._end(process)
        return outcome

    def _receive(self, receiver) -> Any:
        """The next item from the child, None after a quiet `poll_s`, `_ENDED` once the child is gone."""
        self._enforce_hard_stop()
        try:
            if receiver.poll(self.poll_s):
                return receiver.recv()
        except (EOFError, OSError):
            return _ENDED
        except Exception as exc:  # sent, but it does not unpickle here: the child is stopped
            return TaskFailed(f"what the {self.label} process sent could not be read: {one_line(exc)}", type(exc).__name__)
        if self._process.exitcode is not None and not receiver.poll(0):  # ended, nothing left to read
            return _ENDED
        return None

    def _enforce_hard_stop(self) -> None:
        process = self._process
        if self._stop_at is None or self.hard_stopped or time.monotonic() - self._stop_at < self.hard_stop_s:
            return
        if process.is_alive():
            self.hard_stopped = True
            _terminate(process)

    def _ended_without_result(self) -> TaskFailed:
        self._process.join(5)
        code = self._process.exitcode
        if self.hard_stopped:
            return TaskFailed(
                f"the {self.label} process did not stop within {self.hard_stop_s:g} s after Stop and was terminated", "HardStop"
            )
        return TaskFailed(f"the {self.label} process ended unexpectedly ({describe_exit(code)})", "ChildDied")

    def _end(self, process) -> None:
        """Join the child (terminated if it is still running: the reader was closed early); a detached
        child is only forgotten."""
        _running.discard(self)
        if self.detached and process.is_alive():
            multiprocessing.process._children.discard(process)  # else multiprocessing joins it at exit
            # reaped when it ends while this process lives (no zombie that looks alive to a heartbeat check)
            threading.Thread(target=process.join, name=f"nta-reap-{self.pid}", daemon=True).start()
            return
        if process.is_alive():
            self._stop.set()  # no effect once the task has returned; a reader closed early stops it
            process.join(END_GRACE_S)
        if process.is_alive():
            _terminate(process)
        process.join()
        self.exit_code = process.exitcode
        process.close()


_ENDED = object()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While a child starts, `__main__` is an empty stand-in: spawn would otherwise re-run the parent's
    main script in the child, and a napari script without an `if __name__ == "__main__":` guard would
    open a second viewer there. Tasks live in importable modules; the child needs nothing from it."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _terminate(process, grace_s: float = 5.0) -> None:
    process.terminate()
    process.join(grace_s)
    if process.is_alive():
        process.kill()
        process.join()


# ---------------------------------------------------------------------------------- in the child
def _child_main(sender, stop_event, detach_event, stop_reason: str, niceness: int, function, args, kwargs) -> None:
    """Entry point of the child process: run the task, send its events and then its outcome."""
    if niceness and hasattr(os, "nice"):
        os.nice(niceness)
    if hasattr(os, "setsid"):
        os.setsid()  # its own session: a closed terminal or napari's Ctrl-C does not reach it
    cancel = CancelToken(stop_event, default_reason=stop_reason)
    lock = threading.Lock()

    def send(item: Any) -> None:
        if detach_event.is_set():  # nobody follows: the task's files say what it did
            return
        try:
            with lock:
                sender.send(item)
        except OSError:  # the GUI process is gone: nobody to tell, the work goes on to a clean end
            if not detach_event.is_set():
                cancel.cancel("the napari process ended")

    _cancel_when_parent_ends(cancel, detach_event)
    try:
        outcome: Any = _Done(function(*args, listener=send, cancel=cancel, **kwargs))
    except BaseException as exc:
        outcome = TaskFailed.of(exc)
    try:
        send(outcome)
    except Exception as exc:  # the result does not pickle
        send(TaskFailed(f"the result could not be sent back: {one_line(exc)}", type(exc).__name__))
    sender.close()


def _cancel_when_parent_ends(cancel: CancelToken, detach_event) -> None:
    """The parent's end cancels the task, unless it was detached: then the task runs on, its output to the
    parent's terminal (which may be gone) sent to the null device."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        if not detach_event.is_set():
            cancel.cancel("the napari process ended")
            return
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):
                os.dup2(null, fd)

    threading.Thread(target=watch, name="nta-parent-watch", daemon=True).start()


# ------------------------------------------------------------------------------ at interpreter exit
_running: weakref.WeakSet[ChildTask] = weakref.WeakSet()


def _stop_children_at_exit() -> None:
    """Quitting napari during a run: stop each child, give it `EXIT_GRACE_S` to save, then terminate
    (otherwise multiprocessing would wait for the run to end)."""
    tasks = list(_running)
    for task in tasks:
        task._stop.set()
    deadline = time.monotonic() + EXIT_GRACE_S
    for task in tasks:
        process = task._process
        if process is not None and process.pid != os.getpid():
            process.join(max(deadline - time.monotonic(), 0))
            if process.exitcode is None:
                _terminate(process)


atexit.register(_stop_children_at_exit)
