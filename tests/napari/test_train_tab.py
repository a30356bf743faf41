"""Train tab: refusals, a run from the tab (progress, plot, log, status bar), Stop, the run in a child
process (no freeze, no training stack in the GUI process, hard stop, a killed child), closing during a
run, point-windowed training from a spec file and from viewer layers. The latency goal (< 100 ms) is
measured by benchmarks/bench_gui_latency.py."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.qt

LONG = 600_000  # ms: generous, the CPU may be shared


@pytest.fixture
def session():
    from napari_training_assistant.napari.session import ProjectSession

    return ProjectSession()


@pytest.fixture
def make_tab(make_napari_viewer, qtbot, session):
    """make_tab(show=False): a TrainTab on a fresh viewer (shown: docked in the viewer's window, as the
    plugin's widget is); a run still going at teardown is stopped."""
    from napari_training_assistant.napari.tabs.train_tab import TrainTab

    tabs = []

    def _make(show: bool = False):
        viewer = make_napari_viewer(show=show)
        tab = TrainTab(viewer, session)
        if show:
            viewer.window.add_dock_widget(tab, name="Train")  # the viewer owns and closes it
        else:
            qtbot.addWidget(tab)
        tabs.append(tab)
        return tab

    yield _make
    for tab in tabs:
        if tab.running:
            tab.stop()
            tab.wait(120)


def small_run(tab, epochs: int = 1, samples: int = 4) -> None:
    tab.epochs.setValue(epochs)
    tab.samples.setValue(samples)
    tab.batch.setValue(2)
    tab.device.setCurrentText("cpu")


def wait_done(qtbot, tab) -> None:
    qtbot.waitUntil(lambda: not tab.running, timeout=LONG)


def is_error(tab) -> bool:
    return "ff6b6b" in tab.message.styleSheet()


# --------------------------------------------------------------------------------------- refusals
def test_start_is_refused_without_project_or_train_pairs(make_tab, session, make_project):
    tab = make_tab()
    assert not tab.start()
    assert is_error(tab) and "project" in tab.message.text().lower()
    assert tab.worker is None and not session.busy

    project = make_project(splits=("val", "benchmark"))
    session.open(project.root)
    assert tab.isEnabled()
    assert "0 train, 1 val" in tab.source_info.text()
    assert not tab.start()
    assert is_error(tab) and "no training pairs" in tab.message.text()
    assert tab.worker is None and not session.busy and tab.start_button.isEnabled()
    assert project.history.runs == []

    tab.start_choice.setCurrentText("checkpoint")  # no completed checkpoint to choose
    assert not tab.start() and "checkpoint" in tab.message.text()

    session.set_busy(True)  # another tab's task (a prediction) is running
    assert not tab.start_button.isEnabled()
    assert not tab.start() and "Another task" in tab.message.text()
    session.set_busy(False)
    assert tab.start_button.isEnabled()


def test_an_invalid_option_is_refused_before_any_process_starts(make_tab, session, make_project):
    project = make_project()
    session.open(project.root)
    tab = make_tab()
    tab.device.setCurrentText("tpu")
    assert not tab.start()
    assert is_error(tab) and tab.message.text().startswith("device") and "\n" not in tab.message.text()
    assert tab.worker is None and tab.task is None and not session.busy and project.history.runs == []


def test_a_failing_run_shows_a_red_message_and_is_recorded(make_tab, session, make_project, qtbot):
    project = make_project()
    session.open(project.root)
    tab = make_tab()
    small_run(tab)
    tab.patch.setText("16,16,16")  # three axes for a 2D project: the run fails while planning

    assert tab.start()
    wait_done(qtbot, tab)

    assert is_error(tab) and "patch" in tab.message.text()
    assert tab.last_result is None and tab.start_button.isEnabled() and not session.busy
    assert "failed" in tab.monitor.log.toPlainText()
    assert project.checkpoints.latest_id is None


# ------------------------------------------------------------------------------------ a short run
def test_a_short_run_from_the_tab_registers_a_checkpoint(make_tab, session, make_project, qtbot):
    from napari_training_assistant.napari.status_bar import StatusBar

    project = make_project()
    bar = StatusBar(session)
    qtbot.addWidget(bar)
    tab = make_tab()
    session.open(project.root)
    assert bar.checkpoint_label.text() == "none"
    small_run(tab, epochs=2, samples=4)
    busy = []
    session.busy_changed.connect(busy.append)

    assert tab.start()
    assert not tab.start_button.isEnabled() and tab.stop_button.isEnabled() and session.busy
    assert not tab.parameters.isEnabled() and not tab.mode.isEnabled()
    wait_done(qtbot, tab)

    assert busy == [True, False]
    assert tab.last_result.status == "completed"
    assert project.checkpoints.latest_id == "unet_run_001"
    assert "unet_run_001" in tab.message.text() and "Dice" in tab.message.text() and not is_error(tab)
    assert tab.monitor.plot.point_count == 2
    assert not math.isnan(tab.monitor.plot.series["val_loss"][-1])
    log = tab.monitor.log.toPlainText().splitlines()
    assert len(log) >= 4 and log[-1].startswith("completed")
    assert tab.monitor.progress.maximum() > 0 and tab.monitor.progress.value() == tab.monitor.progress.maximum()
    assert bar.checkpoint_label.text() == "unet_run_001"
    assert tab.start_button.isEnabled() and not tab.stop_button.isEnabled()
    assert tab.decisions.rowCount() > 0  # auto-configuration decisions, re-read after the run

    # the tab's settings are kept in the project and restored on reopen
    saved = project.config.ui.train_tab
    assert saved["train.epochs"] == "2" and saved["train.mode"] == "pairs" and saved["train.device"] == "cpu"
    assert project.config.training.training_mode == "pairs" and "train.epochs" not in project.config.ui.selected_layers
    tab.epochs.setValue(7)
    session.open(project.root)
    assert tab.epochs.value() == 2 and tab.samples.value() == 4


def test_stop_cancels_the_run_and_keeps_the_latest_checkpoint(make_tab, session, make_project, fast_options, qtbot):
    from napari_training_assistant.project.checkpoints import file_sha256
    from napari_training_assistant.train import train_project

    project = make_project()
    train_project(project, fast_options())
    latest = project.layout.checkpoints_dir / "latest.pt"
    before = file_sha256(latest)
    tab = make_tab()
    session.open(project.root)
    small_run(tab, epochs=200, samples=4)
    tab.start_choice.setCurrentText("scratch")

    assert tab.start()
    qtbot.waitUntil(lambda: tab.monitor.progress.value() >= 1, timeout=LONG)  # after the first STEP
    tab.stop_button.click()
    assert not tab.stop_button.isEnabled()
    wait_done(qtbot, tab)

    result = tab.last_result
    assert result.status == "cancelled" and result.metrics["steps"] < 200 * 2
    assert "cancelled" in tab.message.text() and not is_error(tab)
    assert project.checkpoints.latest_id == "unet_run_001" and file_sha256(latest) == before
    assert project.checkpoints.get(result.checkpoint_id).status == "cancelled"
    assert [r.status for r in project.history.runs] == ["completed", "cancelled"]
    assert tab.start_button.isEnabled() and not session.busy


# ---------------------------------------------------------------------------- the starting point
def test_the_start_continues_from_latest_once_there_is_a_checkpoint(make_tab, session, make_project, fast_options, qtbot):
    from napari_training_assistant.train import train_project

    project = make_project()
    tab = make_tab()
    session.open(project.root)
    items = [tab.start_choice.itemText(i) for i in range(tab.start_choice.count())]
    assert items == ["scratch", "latest", "best", "checkpoint", "imported"]
    assert tab.start_choice.currentText() == "scratch"  # no checkpoint yet
    assert "scratch" in tab.start_info.text() and not tab.start_id.isVisibleTo(tab)

    train_project(project, fast_options(run_benchmark=False))
    session.updated()  # as after a run from the tab
    assert tab.start_choice.currentText() == "latest" and tab.options().start == "latest"
    assert "unet_run_001" in tab.start_info.text() and "latest" in tab.start_info.text()
    assert "ff6b6b" not in tab.start_info.styleSheet()

    tab.start_choice.setCurrentText("best")  # nothing benchmarked: said at once, and refused
    assert "benchmark" in tab.start_info.text() and "ff6b6b" in tab.start_info.styleSheet()
    assert not tab.start() and is_error(tab) and "benchmark" in tab.message.text() and tab.worker is None

    session.open(project.root)  # not picked by the user: latest again on reopen
    assert tab.start_choice.currentText() == "latest"

    # the run from the tab continues unet_run_001, recorded as its parent
    small_run(tab)
    assert tab.start()
    assert "continues from the latest checkpoint unet_run_001" in tab.monitor.log.toPlainText()
    wait_done(qtbot, tab)
    assert tab.last_result.status == "completed", tab.message.text()
    assert project.checkpoints.get(tab.last_result.checkpoint_id).parent_id == "unet_run_001"
    assert "unet_run_002" in tab.start_info.text()

    # a choice the user makes is kept, scratch included
    tab.start_choice.setCurrentText("scratch")
    tab.start_choice.activated.emit(tab.start_choice.currentIndex())
    session.remember(train_tab=tab._settings())
    session.open(project.root)
    assert tab.start_choice.currentText() == "scratch" and tab.options().start == "scratch"


def test_one_source_of_truth_for_the_start(make_tab, session, make_project, fast_options, make_napari_viewer, qtbot):
    """The project's starting-weights setting is what the tab shows and runs: set by the tab's own pick, by the
    Checkpoints tab's "Continue training from this" and by `nta start`, whichever came last (issue 17)."""
    from napari_training_assistant.cli.main import main
    from napari_training_assistant.napari.tabs.checkpoints_tab import CheckpointsTab
    from napari_training_assistant.train import train_project

    project = make_project()
    for _ in range(2):
        train_project(project, fast_options(run_benchmark=False))
    tab = make_tab()
    checkpoints = CheckpointsTab(make_napari_viewer(), session)
    qtbot.addWidget(checkpoints)
    session.open(project.root)
    assert tab.options().start == "latest"  # never chosen: continue from the latest

    tab.start_choice.setCurrentText("scratch")  # the user's pick is the project's setting
    tab.start_choice.activated.emit(tab.start_choice.currentIndex())
    assert project.starting_weights.describe() == "scratch" and project.starting_weights.chosen_at is not None

    checkpoints.select("unet_run_001")
    checkpoints.continue_button.click()  # said to be the next run's start: the Train tab shows and runs it
    assert tab.start_choice.currentText() == "checkpoint" and tab.start_id.currentText() == "unet_run_001"
    assert tab.options().start == "checkpoint:unet_run_001" and "unet_run_001" in tab.start_info.text()

    assert main(["start", str(project.root), "scratch"]) == 0  # the CLI sets it too
    session.updated()
    assert tab.options().start == "scratch"  # chosen, so not replaced by latest
    session.open(project.root)
    assert tab.options().start == "scratch"


# ------------------------------------------------------------------------- the run's child process
def test_training_runs_in_a_child_process_and_the_gui_never_freezes(make_tab, session, make_project, qtbot):
    """A 10 ms timer in the GUI thread pans the camera from Start until the run's end has been handled
    (plot, log, status bar included); no gap between its ticks may reach 1 s (a real freeze). The
    < 100 ms goal is the benchmark's: a loaded test machine cannot promise it."""
    from qtpy.QtCore import QTimer

    from napari_training_assistant.napari.status_bar import StatusBar

    project = make_project()
    bar = StatusBar(session)
    qtbot.addWidget(bar)
    bar.show()
    tab = make_tab(show=True)
    viewer = tab.viewer
    viewer.add_image(np.random.default_rng(0).random((512, 512), dtype=np.float32))
    session.open(project.root)
    small_run(tab, epochs=2, samples=8)
    qtbot.waitUntil(tab.monitor.plot.canvas.isVisible, timeout=10_000)

    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.perf_counter())
        angle = len(ticks) / 10
        viewer.scene.camera.center = (256 + 40 * math.sin(angle), 256 + 40 * math.cos(angle))

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    qtbot.wait(300)  # warm up: the first frames of a shown viewer
    ticks.clear()
    assert tab.start()
    wait_done(qtbot, tab)
    qtbot.wait(100)
    timer.stop()

    assert tab.last_result.status == "completed"
    assert tab.last_task.pid != os.getpid() and tab.last_task.exit_code == 0  # trained in a child process
    assert tab.monitor.plot.full_draws >= 1 and tab.monitor.plot.point_count == 2  # the plot did draw
    assert bar.checkpoint_label.text() == "unet_run_001"
    gaps = np.diff(ticks)
    longest = float(gaps.max())
    print(f"GUI ticks {len(ticks)}, longest gap {longest * 1000:.1f} ms, p99 {np.percentile(gaps, 99) * 1000:.1f} ms")
    assert longest < 1.0


def test_the_gui_process_never_imports_the_training_stack(make_project, tmp_path):
    """A whole training from the widget's Train tab in a fresh process (this one has imported Lightning
    for other tests): the run completes in a child and the GUI process has not loaded Lightning."""
    project = make_project()
    script = Path(__file__).with_name("train_from_the_widget.py")
    done = subprocess.run([sys.executable, str(script), str(project.root)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "completed", report
    assert report["child_pid"] != report["pid"] and report["exit_code"] == 0
    assert report["imported"] == [], f"the GUI process imported {report['imported']}"


@pytest.fixture
def child_tasks(monkeypatch):
    """Helper tasks for the child process (tests/napari/child_test_tasks.py), importable in it."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import child_test_tasks

    yield child_test_tasks
    sys.modules.pop("child_test_tasks", None)


def test_a_run_that_ignores_stop_is_terminated_and_the_tab_says_so(make_tab, session, make_project, child_tasks, qtbot, monkeypatch):
    session.open(make_project().root)
    tab = make_tab()
    tab.hard_stop_s = 1.0
    monkeypatch.setattr(tab, "_prepare", lambda project: ((child_tasks.deaf,), "a run deaf to Stop"))

    assert tab.start()
    qtbot.waitUntil(lambda: "deaf to Stop" in tab.monitor.log.toPlainText(), timeout=LONG)
    tab.stop_button.click()
    assert "stopping" in tab.monitor.eta.text()
    qtbot.waitUntil(lambda: not tab.running, timeout=60_000)  # 1 s, then terminate: not the task's 600 s

    assert is_error(tab) and tab.message.text() == "the training process did not stop within 1 s after Stop and was terminated"
    assert tab.last_task.hard_stopped and tab.last_task.exit_code == -signal.SIGTERM
    assert tab.start_button.isEnabled() and not session.busy


def test_a_killed_training_process_is_reported_and_the_tab_is_usable_again(make_tab, session, make_project, qtbot):
    project = make_project()
    session.open(project.root)
    tab = make_tab()
    small_run(tab, epochs=200, samples=4)
    assert tab.start()
    qtbot.waitUntil(lambda: tab.monitor.progress.value() >= 1, timeout=LONG)
    os.kill(tab.task.pid, signal.SIGKILL)
    wait_done(qtbot, tab)

    assert is_error(tab) and tab.message.text() == "the training process ended unexpectedly (killed by SIGKILL)"
    assert "failed: the training process ended unexpectedly" in tab.monitor.log.toPlainText()
    assert tab.last_result is None and tab.start_button.isEnabled() and not session.busy

    small_run(tab, epochs=1, samples=4)
    assert tab.start()
    wait_done(qtbot, tab)
    assert tab.last_result.status == "completed" and not is_error(tab)
    assert project.checkpoints.latest_id == tab.last_result.checkpoint_id


# ---------------------------------------------------------------------------------------- closing
def test_closing_the_widget_during_a_run_asks_then_stops_cleanly(make_napari_viewer, make_project, qtbot):
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    project = make_project()
    widget = TrainingAssistantWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    widget.session.open(project.root)
    tab = widget.page("Train")
    small_run(tab, epochs=200, samples=4)
    asked = []
    widget.ask_close = lambda work: asked.append(("no", work)) or "cancel"
    assert tab.start()
    qtbot.waitUntil(lambda: tab.monitor.progress.value() >= 1, timeout=LONG)

    assert not widget.close()  # "No": stays open, the run goes on
    assert asked == [("no", ["a training run"])] and tab.running and not tab.task.stopping

    widget.ask_close = lambda work: asked.append(("yes", work)) or "stop"
    assert widget.close()  # "Yes": stops the run and waits for it to be saved
    assert asked[-1] == ("yes", ["a training run"]) and not tab.running
    assert tab.last_result.status == "cancelled"
    assert project.history.runs[-1].status == "cancelled"
    assert not widget.session.busy


def test_closing_the_viewer_window_or_the_dock_asks_the_plugin_first(make_napari_viewer, make_project, qtbot):
    """The viewer's window and the dock's (x) go through the plugin's own question (issue 17 #1): No keeps both
    open and the run going; Yes stops the run (saved as cancelled) before the window closes."""
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    project = make_project()
    viewer = make_napari_viewer(show=True)
    widget = TrainingAssistantWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Training Assistant")
    qtbot.waitExposed(widget)
    widget.session.open(project.root)
    tab = widget.page("Train")
    small_run(tab, epochs=200, samples=4)
    asked = []
    widget.ask_close = lambda work: asked.append(work) or "cancel"
    assert tab.start()
    qtbot.waitUntil(lambda: tab.monitor.progress.value() >= 1, timeout=LONG)
    window = viewer.window._qt_window

    assert not dock.close() and not window.close()
    assert asked == [["a training run"], ["a training run"]] and tab.running and dock.isVisible()

    widget.ask_close = lambda work: asked.append(work) or "stop"
    assert dock.close()
    assert not tab.running and tab.last_result.status == "cancelled"
    assert project.history.runs[-1].status == "cancelled" and not tab.task


def test_confirm_close_without_a_run_does_not_ask(make_napari_viewer, qtbot):
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    widget = TrainingAssistantWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    widget.ask_close = lambda work: pytest.fail("asked without a run")
    assert widget.confirm_close()


# ------------------------------------------------------------------------------- point-windowed
@pytest.fixture(scope="module")
def synapse_volume():
    from napari_training_assistant.data.synthetic_em import make_em_volume

    return make_em_volume((16, 128, 128), seed=0)  # 18 train / 6 val synapses in 4 quadrant regions


def test_point_windowed_training_from_a_spec_file(make_tab, session, make_project, synapse_volume, tmp_path, qtbot):
    from napari_training_assistant.data.synthetic_em import write_synapse_dataset
    from napari_training_assistant.project import TrainingProject

    paths = write_synapse_dataset(tmp_path / "synapses", volume=synapse_volume)
    spec = yaml.safe_load(paths["spec"].read_text())
    spec["window_size"] = [8, 32, 32]
    spec["model"].update(depth=2, base_channels=8)
    spec["training"].update(epochs=1, batch_size=4, device="cpu")
    paths["spec"].write_text(yaml.safe_dump(spec, sort_keys=False))
    session.open(make_project().root)
    tab = make_tab()
    tab.mode.setCurrentIndex(1)
    tab.points.source.setCurrentIndex(0)
    tab.points.spec_path.setText(str(paths["spec"]))
    tab.points.describe_spec()
    assert "window 8x32x32" in tab.points.spec_info.text() and "synapse-project" in tab.points.spec_info.text()
    assert not tab.epochs.isEnabled()  # epochs come from the spec
    tab.device.setCurrentText("cpu")

    assert tab.start()
    wait_done(qtbot, tab)

    result = tab.last_result
    assert result is not None and result.status == "completed", tab.message.text()
    trained = TrainingProject.open(tmp_path / "synapses" / "synapse-project")
    assert trained.checkpoints.latest_id == result.checkpoint_id
    assert trained.checkpoints.get(result.checkpoint_id).training_mode == "point_windows"
    assert "synapse-project" in tab.message.text()
    assert tab.monitor.plot.point_count == 1
    assert session.project.config.ui.train_tab["train.spec"] == str(paths["spec"])


def test_layers_are_refused_in_a_pair_project(make_tab, session, make_project, synapse_volume, add_synapse_layers):
    project = make_project()
    session.open(project.root)
    tab = make_tab()
    add_synapse_layers(tab.viewer, synapse_volume)
    tab.mode.setCurrentIndex(1)
    tab.points.source.setCurrentIndex(1)
    assert not tab.start()
    assert is_error(tab) and "pairs" in tab.message.text()
    assert not (project.root / "point_data").exists()


def test_point_windowed_training_from_viewer_layers(make_tab, session, synapse_volume, tmp_path, qtbot, add_synapse_layers):
    from napari_training_assistant.project import TrainingProject

    project = TrainingProject.create(tmp_path / "synapse-layers", "synapses")
    session.open(project.root)
    tab = make_tab()
    add_synapse_layers(tab.viewer, synapse_volume)
    tab.mode.setCurrentIndex(1)
    tab.points.source.setCurrentIndex(1)
    for role, name in {"image": "em", "label0": "pre", "label1": "post", "points": "synapses", "regions": "regions"}.items():
        tab.points.combos[role].setCurrentText(name)
    for box, value in zip(tab.points.window, (8, 32, 32), strict=True):
        box.setValue(value)
    tab.points.depth.setValue(2)
    tab.points.base.setValue(8)
    small_run(tab, epochs=1, samples=8)
    tab.batch.setValue(4)

    assert tab.start(), tab.message.text()
    wait_done(qtbot, tab)

    result = tab.last_result
    assert result is not None and result.status == "completed", tab.message.text()
    assert result.points["train"] == 18 and result.points["val"] == 6
    assert project.checkpoints.latest_id == result.checkpoint_id
    spec = yaml.safe_load((project.root / "point_data" / "spec.yaml").read_text())
    assert spec["window_size"] == [8, 32, 32] and spec["resolution"] == [40.0, 4.0, 4.0]
    assert project.architecture.spatial_dims == "3d"
    assert project.config.training.training_mode == "point_windows"
    saved = project.config.ui.train_tab
    assert saved["train.points"] == "synapses" and saved["train.regions"] == "regions" and saved["train.image"] == "em"


def test_the_run_monitor_stays_in_view_at_a_1000_px_window(make_tab, session, make_project, qtbot):
    """Start/Stop, progress, plot and log sit below the scrolling settings, never under the fold (issue 17 #3)."""
    project = make_project()
    tab = make_tab()
    session.open(project.root)
    tab.resize(480, 820)
    tab.show()
    qtbot.waitExposed(tab)
    for widget in (tab.start_button, tab.monitor.progress, tab.monitor.plot, tab.monitor.log):
        top = widget.mapTo(tab, widget.rect().topLeft()).y()
        assert widget.isVisible() and top >= 0 and top + widget.height() <= tab.height(), widget
    assert tab.monitor.plot.height() >= 150


def test_the_mode_picked_is_the_projects_and_the_status_follows(make_tab, session, tmp_path):
    """Point mode picked in the tab is remembered by the project (reopened in it), and the status bar stops
    saying 'empty: add image/mask pairs' (issue 17 #6)."""
    from napari_training_assistant.project import TrainingProject

    project = TrainingProject.create(tmp_path / "synapses", "synapses")
    tab = make_tab()
    session.open(project.root)
    assert session.status()["state"].startswith("empty")
    tab.mode.setCurrentIndex(tab.mode.findData("point_windows"))
    tab.mode.activated.emit(tab.mode.currentIndex())
    assert project.config.training.training_mode == "point_windows"
    assert session.status()["state"] == "point-windowed: train from a spec or from layers"
    session.open(project.root)
    assert tab.mode.currentData() == "point_windows"


def test_the_decisions_table_fills_when_the_run_starts(make_tab, session, make_project):
    """The run writes its decisions before its first step; the STARTED event shows them (not only the run's end)."""
    from napari_training_assistant.progress import EventKind, ProgressEvent
    from napari_training_assistant.project.schemas.project_config import AutoConfigDecision

    project = make_project()
    session.open(project.root)
    tab = make_tab()
    assert tab.decisions.rowCount() == 0

    def change(config) -> None:  # what the child process writes as the run starts
        config.auto_configuration_decisions = [AutoConfigDecision(setting="patch_size", value=[64, 64], reason="a long reason " * 12)]

    project.update_config(change)
    tab._on_item(ProgressEvent(EventKind.STARTED, epochs=3, message="run started"))
    assert tab.decisions.rowCount() == 1 and tab.decisions.item(0, 0).text() == "patch_size"
    assert tab.decisions.item(0, 3).toolTip().startswith("a long reason")
