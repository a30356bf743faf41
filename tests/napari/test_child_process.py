"""ChildTask: a task runs in a spawned child process; its events, result, failure, cooperative stop,
hard stop and death reach the reader as values (no Qt here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_training_assistant.napari.child_process import ChildTask, TaskFailed
from napari_training_assistant.progress import EventKind, ProgressEvent


@pytest.fixture
def tasks(monkeypatch):
    """The helper tasks, importable in the child (their folder is on sys.path, which spawn passes on)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import child_test_tasks

    yield child_test_tasks
    sys.modules.pop("child_test_tasks", None)


def run(task: ChildTask, on_event=None) -> tuple[list, object]:
    """(events, outcome) of a task, followed to its end in this thread."""
    events, results = [], task.results()
    try:
        while True:
            event = next(results)
            events.append(event)
            if on_event is not None:
                on_event(event)
    except StopIteration as end:
        return events, end.value


def test_events_and_the_value_come_back_from_another_process(tasks):
    task = ChildTask(tasks.count, 3, label="counting")
    events, value = run(task)
    assert [e.step for e in events] == [1, 2, 3] and all(isinstance(e, ProgressEvent) for e in events)
    assert value["pid"] == task.pid != os.getpid()
    assert task.exit_code == 0


def test_an_exception_becomes_one_line_with_its_type(tasks):
    task = ChildTask(tasks.fail)
    _, outcome = run(task)
    assert outcome == TaskFailed("the input is wrong", "ValueError")
    assert task.exit_code == 0


def test_a_result_that_does_not_pickle_is_a_failure(tasks):
    _, outcome = run(ChildTask(tasks.unpicklable))
    assert isinstance(outcome, TaskFailed) and "could not be sent back" in outcome.message


def test_something_that_does_not_unpickle_here_is_a_failure_and_the_child_is_ended(tasks):
    task = ChildTask(tasks.unreadable, label="odd")
    _, outcome = run(task)
    assert outcome.kind == "ImportError" and outcome.message.startswith("what the odd process sent could not be read")
    assert task.exit_code is not None


def test_stop_is_cooperative_and_carries_the_reason(tasks):
    task = ChildTask(tasks.until_stopped, stop_reason="stopped by the test")
    events, value = run(task, on_event=lambda event: event.step >= 3 and task.stop())
    assert value == "stopped by the test" and len(events) >= 3
    assert task.exit_code == 0 and not task.hard_stopped


def test_a_child_that_ignores_stop_is_terminated(tasks):
    task = ChildTask(tasks.deaf, label="sleeping", hard_stop_s=0.5)
    started = time.monotonic()
    events, outcome = run(task, on_event=lambda event: task.stop())
    assert events[0].kind == EventKind.MESSAGE
    assert isinstance(outcome, TaskFailed) and outcome.kind == "HardStop"
    assert outcome.message == "the sleeping process did not stop within 0.5 s after Stop and was terminated"
    assert task.hard_stopped and task.exit_code == -signal.SIGTERM
    assert time.monotonic() - started < 60  # not the task's 600 s sleep


def test_a_killed_child_is_a_failure_with_its_exit_code_not_a_hang(tasks):
    task = ChildTask(tasks.deaf, label="sleeping")
    events, outcome = run(task, on_event=lambda event: os.kill(task.pid, signal.SIGKILL))
    assert len(events) == 1
    assert outcome == TaskFailed("the sleeping process ended unexpectedly (killed by SIGKILL)", "ChildDied")
    assert task.exit_code == -signal.SIGKILL


def test_closing_the_reader_early_ends_the_child(tasks):
    task = ChildTask(tasks.deaf)
    results = task.results()
    next(results)  # the child is running
    results.close()
    assert task.exit_code is not None  # terminated and joined, not left behind


def test_a_main_script_without_guard_is_not_run_again_in_the_child(tmp_path):
    """spawn re-runs the parent's main script in the child unless it is hidden: a napari script without
    `if __name__ == "__main__":` would open a second viewer there."""
    marker = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"open({str(marker)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "import child_test_tasks\n"
        "from napari_training_assistant.napari.child_process import ChildTask\n"
        "results = ChildTask(child_test_tasks.count, 2).results()\n"
        "try:\n    while True: next(results)\n"
        "except StopIteration as end:\n    print(end.value['pid'])\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = marker.read_text().split()
    assert len(runs) == 1  # in the parent only
    assert int(done.stdout.split()[-1]) != int(runs[0])  # the task did run, in a child


def test_quitting_the_parent_during_a_run_stops_the_child_without_waiting_for_the_run(tmp_path):
    """At interpreter exit (napari quits during a run) the child is asked to stop; the parent does not
    wait for the run to finish, and no child is left behind."""
    script = tmp_path / "quit_during_run.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import child_test_tasks\n"
        "from napari_training_assistant.napari.child_process import ChildTask\n"
        "task = ChildTask(child_test_tasks.until_stopped)\n"
        "results = task.results()\n"
        "next(results)\n"
        "print(task.pid, flush=True)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.monotonic() - started < 60
    child = int(done.stdout.split()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def _wait_for(path: Path, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.read_text() if path.exists() else ""


def _parent_script(tmp_path: Path, marker: Path, detach: bool) -> Path:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import child_test_tasks\n"
        "from napari_training_assistant.napari.child_process import ChildTask\n"
        f"task = ChildTask(child_test_tasks.outlive_parent, {str(marker)!r}, label='training')\n"
        "results = task.results()\n"
        "next(results)\n"
        + ("task.detach()\ntry:\n    while True: next(results)\nexcept StopIteration as end:\n    print(end.value.kind, end.value.message)\n" if detach else "")
        + "print(task.pid, flush=True)\n"
    )
    return script


def test_a_detached_child_outlives_its_parent_and_finishes(tmp_path):
    """"Keep running in the background": the parent exits at once (it does not join the child), the child
    finishes its work in its own session, its events and prints after the parent's end harm nothing."""
    marker = tmp_path / "outcome.txt"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(_parent_script(tmp_path, marker, detach=True))], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.monotonic() - started < 60
    lines = done.stdout.split("\n")
    assert lines[0].startswith("Detached the training process (pid") and "left running in the background" in lines[0]
    assert _wait_for(marker) == "finished True"  # not cancelled; its own session leader


def test_without_detach_the_parents_end_cancels_the_child(tmp_path):
    marker = tmp_path / "outcome.txt"
    done = subprocess.run([sys.executable, str(_parent_script(tmp_path, marker, detach=False))], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _wait_for(marker).startswith("cancelled: ")
