"""Checkpoints tab: history table, details, continue-from, use-for-prediction, benchmark plot."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.qt


@pytest.fixture
def trained(make_project, fast_options):
    """A tiny project with one completed, benchmarked checkpoint."""
    from napari_training_assistant.train import train_project

    project = make_project()
    train_project(project, fast_options())
    return project


@pytest.fixture
def tab(make_napari_viewer, qtbot, trained):
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.checkpoints_tab import CheckpointsTab

    session = ProjectSession()
    page = CheckpointsTab(make_napari_viewer(), session)
    qtbot.addWidget(page)
    session.open(trained.root)
    return page


def _row(tab, row):
    return [tab.table.item(row, c).text() for c in range(tab.table.columnCount())]


def test_history_table_details_and_plot_follow_training(tab, trained, fast_options):
    from napari_training_assistant.train import train_project

    assert tab.isEnabled()
    assert tab.table.rowCount() == 1
    assert _row(tab, 0)[:3] == ["unet_run_001 (latest)", "scratch", "completed"]
    assert tab.plot_points["ids"] == ["unet_run_001"]

    trained.set_starting_weights("latest")
    train_project(trained, fast_options())
    tab.session.updated()  # what the Train tab does after a run

    assert tab.table.rowCount() == 2
    first, second = _row(tab, 0), _row(tab, 1)
    assert first[0] == "unet_run_001" and second[0] == "unet_run_002 (latest)"
    assert second[1] == "unet_run_001"  # lineage
    assert second[4] == "4 pairs" and second[7] == "pairs"
    assert second[5] != "-" and second[6] != "-"  # benchmark Dice / IoU
    assert tab.plot_points["ids"] == ["unet_run_001", "unet_run_002"]
    lines = tab.axes.get_lines()
    assert [len(line.get_xdata()) for line in lines] == [2, 2]
    assert lines[0].get_ydata()[1] == pytest.approx(trained.history.benchmarks()[-1]["dice"])

    assert tab.details.isReadOnly() and not tab.continue_button.isEnabled()
    assert tab.select("unet_run_002")
    text = tab.details.toPlainText()
    for expected in ("unet_run_002  (latest)", "parent: unet_run_001", "starting weights: latest -> unet_run_001",
                     "Metrics:", "train_loss", "2D U-Net", "Settings:", "Benchmark:"):
        assert expected in text
    assert tab.continue_button.isEnabled() and tab.predict_button.isEnabled()


def test_continue_training_from_selected_checkpoint(tab, trained):
    tab.select("unet_run_001")
    tab.continue_button.click()
    saved = json.loads(trained.layout.starting_weights.read_text())
    assert saved["choice"] == "checkpoint" and saved["checkpoint_id"] == "unet_run_001"
    assert trained.starting_weights.describe() == "checkpoint:unet_run_001"
    assert "unet_run_001" in tab.message.text()
    assert tab.selected_checkpoint() == "unet_run_001"  # selection survives the refresh


def test_use_for_prediction_tells_the_session(tab, qtbot):
    tab.select("unet_run_001")
    with qtbot.waitSignal(tab.session.checkpoint_selected, timeout=1000) as blocker:
        tab.predict_button.click()
    assert blocker.args == ["unet_run_001"]
    assert tab.session.selected_checkpoint == "unet_run_001"


def test_without_project_the_tab_is_disabled(make_napari_viewer, qtbot):
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.checkpoints_tab import CheckpointsTab

    page = CheckpointsTab(make_napari_viewer(), ProjectSession())
    qtbot.addWidget(page)
    assert not page.isEnabled()
    assert page.table.rowCount() == 0
