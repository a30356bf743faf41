"""A run that outlives its viewer (issue 17, closing): "Keep running in the background" lets the training
child go on; the run stays visible as running (heartbeat) and the Train tab of a viewer that opens its
project follows it (progress, plot, log) and can stop it; a run started with `nta train` is followed the
same way. The close dialog's three answers are checked by their visible texts."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QMessageBox, QPushButton

pytestmark = pytest.mark.qt

LONG = 600_000  # ms: generous, the CPU may be shared


@pytest.fixture
def make_widget(make_napari_viewer, qtbot):
    """make_widget(project): the plugin's widget on a fresh viewer with `project` open; whatever it still
    follows or runs at teardown is stopped and waited for."""
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    widgets = []

    def _make(project):
        widget = TrainingAssistantWidget(make_napari_viewer())
        qtbot.addWidget(widget)
        widget.ask_close = lambda work: "stop"  # at teardown (qtbot closes the widget): stop what still runs
        widget.session.open(project.root)
        widgets.append(widget)
        return widget

    yield _make
    for widget in widgets:
        tab = widget.page("Train")
        if tab.running:
            tab.stop_and_wait(120)


def _small_run(tab, epochs: int) -> None:
    tab.epochs.setValue(epochs)
    tab.samples.setValue(4)
    tab.batch.setValue(2)
    tab.device.setCurrentText("cpu")


def _training_widget(make_widget, project, qtbot):
    """(widget, its Train tab, the training child's pid): a long run started and past its first step; the
    widget answers "keep" when it closes."""
    widget = make_widget(project)
    tab = widget.page("Train")
    _small_run(tab, epochs=300)
    assert tab.start()
    qtbot.waitUntil(lambda: tab.monitor.progress.value() >= 1, timeout=LONG)
    widget.ask_close = lambda work: "keep"
    return widget, tab, tab.task.pid


def _reap(pid: int, timeout_s: float = 120.0) -> None:
    """Wait until a child this process let go of is gone: it ends and is reaped (no zombie left that would
    look alive to a heartbeat check)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} is still there {timeout_s:.0f} s later")


def test_keep_running_lets_the_run_go_on_and_a_reopened_project_follows_and_stops_it(make_widget, make_project, qtbot):
    project = make_project()
    first, tab, pid = _training_widget(make_widget, project, qtbot)

    assert first.close()  # at once: the run is not stopped and not waited for
    assert not tab.running and not first.session.busy and tab.last_task.detached
    os.kill(pid, 0)  # the training process goes on
    live = project.history.live_runs()
    assert [r.run_id for r in live] == ["run_001"] and live[0].heartbeat.pid == pid

    second = make_widget(project)  # the project opens again, in another viewer
    follower = second.page("Train")
    assert follower.running and follower.followed_run == "run_001" and second.session.busy
    assert "run_001 is running in the background" in follower.message.text() and f"pid {pid}" in follower.message.text()
    assert not follower.start_button.isEnabled() and follower.stop_button.isEnabled()
    qtbot.waitUntil(lambda: follower.monitor.plot.point_count >= 1, timeout=LONG)  # an epoch, from the progress file
    assert follower.monitor.progress.maximum() > 1 and "epoch" in follower.monitor.eta.text()
    assert "following run_001" in follower.monitor.log.toPlainText()

    follower.stop()
    assert "stopping" in follower.monitor.eta.text() and not follower.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not follower.running, timeout=LONG)
    assert follower.last_result.status == "cancelled" and follower.last_result.checkpoint_id
    assert "run_001 cancelled" in follower.message.text() and not second.session.busy
    run = project.history.runs[-1]
    assert run.status == "cancelled" and run.reason == "stopped from the Train tab of a viewer following the run"
    _reap(pid)


def test_a_run_started_in_a_terminal_is_followed_and_stop_and_close_waits_for_it(make_widget, make_project, qtbot):
    project = make_project()
    training = subprocess.Popen(
        [sys.executable, "-m", "napari_training_assistant.cli", "train", str(project.root), "--epochs", "2000",
         "--samples-per-epoch", "4", "--batch-size", "2", "--device", "cpu", "--no-benchmark"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not project.history.live_runs():
            assert training.poll() is None, training.stderr.read()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        widget = make_widget(project)
        tab = widget.page("Train")
        assert tab.followed_run == "run_001"
        qtbot.waitUntil(lambda: tab.monitor.progress.value() >= 1, timeout=LONG)
        widget.ask_close = lambda work: work == ["a training run"] and "stop"
        assert widget.close()  # Stop and close: asks the run to stop and waits until it is saved
        assert not tab.running and tab.last_result.status == "cancelled"
        assert training.wait(timeout=120) == 1  # `nta train` ends with 1 after a cancelled run
    finally:
        if training.poll() is None:
            training.kill()
        training.wait()
        training.stderr.close()
    assert project.history.runs[-1].status == "cancelled"


def test_stop_following_or_keep_running_while_following_leave_the_run_alone(make_widget, make_project, qtbot):
    from napari_training_assistant.project.run_control import stop_run, wait_for_end

    project = make_project()
    first, _, pid = _training_widget(make_widget, project, qtbot)
    assert first.close()
    second = make_widget(project)
    follower = second.page("Train")
    assert follower.followed_run == "run_001" and follower.unfollow_button.isVisibleTo(follower)
    follower.unfollow_button.click()  # "Stop following": this viewer is free again, the run goes on
    qtbot.waitUntil(lambda: not follower.running, timeout=LONG)
    assert not second.session.busy and follower.start_button.isEnabled() and not follower.unfollow_button.isVisibleTo(follower)
    assert "goes on in the background" in follower.message.text() and project.history.live_runs()
    third = make_widget(project)
    third.ask_close = lambda work: "keep"
    assert third.page("Train").followed_run == "run_001"
    assert third.close() and not third.page("Train").running
    assert project.history.live_runs()  # still training, followed by nobody
    stop_run(project)  # `nta stop`
    assert wait_for_end(project, "run_001", 120).status == "cancelled"
    _reap(pid)


@pytest.mark.parametrize(("button", "answer"), [("Stop and close", "stop"), ("Keep running in the background", "keep"), ("Cancel", "cancel")])
def test_the_close_question_offers_stop_keep_and_cancel(make_napari_viewer, qtbot, button, answer):
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    widget = TrainingAssistantWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    seen = {}

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        seen["text"] = f"{box.text()} {box.informativeText()}"
        seen["buttons"] = sorted(b.text().replace("&", "") for b in box.findChildren(QPushButton))
        next(b for b in box.findChildren(QPushButton) if b.text().replace("&", "") == button).click()

    QTimer.singleShot(50, click)
    assert widget._ask_close(["a training run"]) == answer
    assert seen["buttons"] == ["Cancel", "Keep running in the background", "Stop and close"]
    assert seen["text"].startswith("A training run is in progress.") and "nta stop" in seen["text"]


def test_keep_running_lets_a_prediction_go_on_too(make_napari_viewer, qtbot, monkeypatch):
    """A prediction (or export) child is let go the same way: not stopped, not waited for; it saves into the
    project on its own. (Here a stand-in task that runs until its stop event is set.)"""
    from pathlib import Path

    from napari_training_assistant.napari.child_process import ChildTask
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import child_test_tasks

    widget = TrainingAssistantWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    predict = widget.page("Predict")
    outcomes = []
    task = ChildTask(child_test_tasks.until_stopped, label="prediction")
    predict.start_child(task, outcomes.append, busy=predict.predict_button, busy_text="Predicting…", message="Predicting…")
    qtbot.waitUntil(lambda: task.pid is not None, timeout=LONG)
    widget.ask_close = lambda work: work == ["a prediction"] and "keep"
    assert widget.close()
    assert not predict.running and task.detached and outcomes[0].kind == "Detached"
    os.kill(task.pid, 0)  # still predicting
    task._stop.set()  # the test's own clean-up: the stand-in ends when told
    _reap(task.pid)
    sys.modules.pop("child_test_tasks", None)
