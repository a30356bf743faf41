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
    return _open(make_napari_viewer, qtbot, trained)


def _row(tab, row):
    return [tab.table.item(row, c).text() for c in range(tab.table.columnCount())]


def _open(make_napari_viewer, qtbot, project):
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.checkpoints_tab import CheckpointsTab

    page = CheckpointsTab(make_napari_viewer(), ProjectSession())
    qtbot.addWidget(page)
    page.session.open(project.root)
    return page


def _point_checkpoint(project, parent_id=None) -> str:
    """A registered point_windows checkpoint record (its file a stand-in: the tab never loads it)."""
    checkpoint_id, path = project.checkpoints.reserve()
    path.write_bytes(b"point-trained stand-in")
    arch = project.architecture.model_dump(mode="json")
    project.checkpoints.register(
        checkpoint_id, architecture=arch, training_mode="point_windows", image_count=3, parent_id=parent_id
    )
    return checkpoint_id


def _assignment(project, checkpoint_id, both, baseline, *, n=48, mode="max"):
    project.history.append_benchmark(
        {
            "kind": "assignment",
            "checkpoint_id": checkpoint_id,
            "timestamp": "2025-01-01T00:00:00",
            "n_synapses": n,
            "assign_mode": mode,
            "pre_accuracy": 0.95,
            "post_accuracy": 0.96,
            "both_accuracy": both,
            "baseline_both_accuracy": baseline,
        }
    )


def test_history_table_details_and_plot_follow_training(tab, trained, fast_options):
    from napari_training_assistant.train import train_project

    assert tab.isEnabled()
    assert tab.table.rowCount() == 1
    assert _row(tab, 0)[:3] == ["unet_run_001 (latest, best)", "scratch", "completed"]  # the only one benchmarked
    assert tab.plot_points["ids"] == ["unet_run_001"]

    trained.set_starting_weights("latest")
    train_project(trained, fast_options())
    tab.session.updated()  # what the Train tab does after a run

    assert tab.table.rowCount() == 2
    first, second = _row(tab, 0), _row(tab, 1)
    best = trained.checkpoints.best_id
    first_marks = " (best)" if best == "unet_run_001" else ""
    assert first[0] == f"unet_run_001{first_marks}" and second[0] == ("unet_run_002 (latest)" if first_marks else "unet_run_002 (latest, best)")
    assert second[1] == "unet_run_001"  # lineage
    assert second[4] == "4 pairs" and second[7] == "pairs" and second[8] == "-"  # no partner accuracy
    assert second[5] != "-" and second[6] != "-"  # benchmark Dice / IoU
    assert tab.plot_points["ids"] == ["unet_run_001", "unet_run_002"]
    assert tab.plot_points["both"] == tab.plot_points["baseline"] == [None, None]
    lines = tab.axes.get_lines()
    assert [len(line.get_xdata()) for line in lines] == [2, 2, 2]  # Dice, IoU, objects
    assert lines[0].get_ydata()[1] == pytest.approx(trained.history.benchmarks()[-1]["dice"])
    assert tab.plot_points["objects"][1] == pytest.approx(trained.history.benchmarks()[-1]["instance_accuracy_50"])

    assert tab.details.isReadOnly() and not tab.continue_button.isEnabled()
    assert tab.select("unet_run_002")
    text = tab.details.toPlainText()
    for expected in (
        "unet_run_002  (latest)",
        "parent: unet_run_001",
        "starting weights: latest -> unet_run_001",
        "Metrics:",
        "train_loss",
        "2D U-Net",
        "Settings:",
        "Benchmark:",
        "objects: accuracy ",
    ):
        assert expected in text
    assert tab.continue_button.isEnabled() and tab.predict_button.isEnabled()
    assert "partners:" not in text


def test_assignment_accuracy_in_table_plot_and_details(make_napari_viewer, qtbot, trained):
    point_id = _point_checkpoint(trained, parent_id="unet_run_001")
    _assignment(trained, point_id, 0.5, 0.4, n=10)  # an older evaluation, superseded below
    _assignment(trained, point_id, 0.912, 0.52)
    tab = _open(make_napari_viewer, qtbot, trained)

    assert tab.table.horizontalHeaderItem(8).text() == "Partners"
    assert _row(tab, 0)[8] == "-"  # segmentation rows only
    assert _row(tab, 1)[0] == f"{point_id} (latest)" and _row(tab, 1)[8] == "0.912"
    assert _row(tab, 1)[5:8] == ["-", "-", "point_windows"]
    points = tab.plot_points
    assert points["ids"] == ["unet_run_001", point_id]
    assert points["dice"][0] is not None and points["dice"][1] is None
    assert points["both"] == [None, 0.912] and points["baseline"] == [None, 0.52]
    lines = {line.get_label(): line for line in tab.axes.get_lines()}
    assert set(lines) == {"Dice", "IoU", "objects (accuracy at IoU 0.5)", "both-correct", "dilate_nearest baseline"}
    both = lines["both-correct"]
    assert list(both.get_xdata()) == [1] and list(both.get_ydata()) == [0.912]
    assert lines["dilate_nearest baseline"].get_linestyle() == "--"
    assert [t.get_text() for t in tab.axes.get_xticklabels()] == ["#001", "#002"]

    assert tab.select(point_id)
    text = tab.details.toPlainText()
    expected = (
        "  partners: both 0.912, pre 0.950, post 0.960 on 48 synapses (max; dilate_nearest baseline 0.520)"
    )
    assert expected in text
    assert "not benchmarked" not in text
    assert tab.select("unet_run_001") and "partners:" not in tab.details.toPlainText()


def test_assignment_rows_alone_are_plotted(make_napari_viewer, qtbot, make_project):
    project = make_project()
    point_id = _point_checkpoint(project)
    _assignment(project, point_id, 0.8, None)
    tab = _open(make_napari_viewer, qtbot, project)

    assert _row(tab, 0)[5:] == ["-", "-", "point_windows", "0.800"]
    assert tab.plot_points["ids"] == [point_id] and tab.plot_points["both"] == [0.8]
    assert [line.get_label() for line in tab.axes.get_lines()] == ["both-correct"]
    assert not tab.axes.texts  # no "no benchmark yet"
    assert tab.select(point_id)
    assert "  partners: both 0.800, pre 0.950, post 0.960 on 48 synapses (max)" in tab.details.toPlainText()


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


def test_export_runs_in_a_child_process_and_reports(tab, trained, tmp_path, qtbot, monkeypatch):
    from napari_training_assistant.napari.tabs.export_dialog import ExportDialog, ExportRequest

    tab.select("unet_run_001")
    assert tab.export_button.isEnabled()
    dialog = ExportDialog("unet_run_001", tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.output_edit.text() == str(tmp_path / "unet_run_001.zip")  # bioimageio first, suffix follows
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("torchscript"))
    assert dialog.output_edit.text() == str(tmp_path / "unet_run_001.pt")
    dialog.authors_edit.setText("Ada, Grace ")
    assert dialog.request() == ExportRequest("torchscript", str(tmp_path / "unet_run_001.pt"), ["Ada", "Grace"], False)

    monkeypatch.setattr(tab, "ask_export", lambda checkpoint_id, folder: dialog.request())
    tab.export_button.click()
    assert tab.export_task is not None and not tab.export_button.isEnabled()
    qtbot.waitUntil(lambda: tab.export_task is None, timeout=120_000)
    assert "Exported unet_run_001 as torchscript" in tab.message.text(), tab.message.text()
    assert (tmp_path / "unet_run_001.pt").is_file() and tab.export_button.isEnabled()

    tab.export_button.click()  # the file exists now: refused in one red line, the file kept
    qtbot.waitUntil(lambda: tab.export_task is None, timeout=120_000)
    assert tab.message.text().startswith("Export failed: output") and "--overwrite" in tab.message.text()


def test_the_table_shows_six_rows_at_a_1000_px_window(make_napari_viewer, qtbot, trained):
    """The dock below the status bar is about 820 px high in a 1000 px window: the table, not empty space,
    takes it (issue 17 #3)."""
    for _ in range(7):
        _point_checkpoint(trained)
    tab = _open(make_napari_viewer, qtbot, trained)
    tab.resize(480, 820)
    tab.show()
    qtbot.waitExposed(tab)
    rows = tab.table.viewport().height() // tab.table.rowHeight(0)
    assert tab.table.rowCount() == 8 and rows >= 6, rows
    assert tab.details.height() >= 100 and tab.canvas.height() >= 180


def test_the_plot_is_drawn_only_when_the_tab_is_looked_at(tab, qtbot):
    """After a run the Train tab is in view: redrawing the hidden benchmark plot would freeze the viewer."""
    tab.session.updated()  # what the Train tab does after a run
    qtbot.wait(100)
    assert tab.canvas.full_draws == 0 and tab.plot_points["ids"] == ["unet_run_001"]

    tab.show()
    qtbot.waitUntil(lambda: tab.canvas.full_draws == 1, timeout=5000)
