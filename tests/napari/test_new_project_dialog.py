"""The status bar's New… dialog: folder, name, 2D/3D, output mode, classes and input channels in one step
(issue 17); a wrong combination is one red line and creates nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qt


@pytest.fixture
def bar(qtbot):
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.status_bar import StatusBar

    widget = StatusBar(ProjectSession())
    qtbot.addWidget(widget)
    return widget


def _dialog(qtbot, folder, **values):
    from napari_training_assistant.napari.new_project_dialog import NewProjectDialog

    dialog = NewProjectDialog(str(folder))
    qtbot.addWidget(dialog)
    dialog.dims.setCurrentText(values.get("dims", "2d"))
    dialog.mode.setCurrentText(values.get("mode", "binary"))
    if "names" in values:
        dialog.names_edit.setText(values["names"])
    dialog.channels.setValue(values.get("channels", 1))
    if "name" in values:
        dialog.name_edit.setText(values["name"])
    return dialog


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"mode": "instance", "name": "HeLa"}, {"output_mode": "instance", "classes": ["background", "nucleus"], "output_channels": 2}),
        ({"dims": "3d", "mode": "multiclass", "names": "background, membrane, mito, er", "channels": 2},
         {"spatial_dims": "3d", "output_mode": "multiclass", "classes": ["background", "membrane", "mito", "er"], "input_channels": 2, "num_classes": 4}),
        ({"mode": "multilabel", "names": "pre, post, cleft"}, {"output_mode": "multilabel", "classes": ["pre", "post", "cleft"], "output_channels": 3}),
    ],
    ids=["instance", "3d-multiclass", "multilabel"],
)
def test_the_dialog_creates_the_project_it_describes(bar, qtbot, tmp_path, monkeypatch, values, expected):
    dialog = _dialog(qtbot, tmp_path / "new", **values)
    monkeypatch.setattr(bar, "ask_new_project", lambda: dialog.request())
    bar.new_button.click()
    project = bar.session.project
    assert project is not None and bar.error_label.text() == ""
    arch = project.architecture
    assert project.config.class_names == expected.pop("classes")
    assert project.config.project_name == values.get("name", "new")
    for key, value in expected.items():
        assert getattr(arch, key) == value, key


def test_mode_defaults_follow_and_a_wrong_class_count_is_one_line(bar, qtbot, tmp_path, monkeypatch):
    dialog = _dialog(qtbot, tmp_path / "bad", mode="multiclass")
    assert dialog.names_edit.text() == "background, class_1, class_2"
    dialog.mode.setCurrentText("instance")
    assert dialog.names_edit.text() == "background, nucleus"  # an untouched default follows the mode
    dialog.mode.setCurrentText("binary")
    dialog.names_edit.setText("background, cells, debris")
    monkeypatch.setattr(bar, "ask_new_project", lambda: dialog.request())
    bar.new_button.click()
    assert bar.session.project is None and "3 class name(s) given" in bar.error_label.text()
    assert not (tmp_path / "bad" / "project_config.json").exists()
