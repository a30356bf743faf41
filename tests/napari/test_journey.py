"""The whole loop in the plugin, walked as a user does it (issue 17): only through visible controls, found by
their texts, asserting what the user reads at each step; from no project to a corrected prediction accepted
and a continued run. Screenshots of each step go to a temporary folder (the README's come from `make
screenshots`, never from `make test`)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QPushButton

pytestmark = [pytest.mark.qt, pytest.mark.slow]

LONG = 600_000


def button(widget, text: str) -> QPushButton:
    """The one visible-text button of `widget` a user would click."""
    found = [b for b in widget.findChildren(QPushButton) if b.text() == text]
    assert len(found) == 1, f"{len(found)} buttons read {text!r}"
    return found[0]


def click(widget, text: str) -> None:
    target = button(widget, text)
    assert target.isEnabled(), f"{text!r} is disabled"
    target.click()


def test_the_loop_from_no_project_to_a_continued_run(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.napari.new_project_dialog import NewProject
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    shots = tmp_path / "journey"
    shots.mkdir()
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 1000)
    widget = TrainingAssistantWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Training Assistant", area="right")
    tabs = {title: widget.page(title) for title in ("Dataset", "Train", "Checkpoints", "Predict")}

    def show(title: str, step: str) -> None:
        widget.tabs.setCurrentWidget(tabs[title])
        qtbot.wait(100)
        assert widget.grab().save(str(shots / f"{len(list(shots.iterdir())):02d}_{step}.png"))

    # 1. no project: every tab says what to do first
    assert not tabs["Dataset"].isEnabled()
    assert tabs["Dataset"].message.text() == "Open or create a Training Project Folder first."

    # 2. New…: one dialog (stood in for by its answer) creates the project
    answer = NewProject(str(tmp_path / "nuclei"), "nuclei", {"spatial_dims": "2d", "output_mode": "binary", "class_names": ["background", "nucleus"], "architecture": {"preset": "tiny_unet"}})
    monkeypatch.setattr(widget.status_bar, "ask_new_project", lambda: answer)
    click(widget.status_bar, "New…")
    assert widget.session.project is not None and widget.status_bar.error_label.text() == ""
    assert tabs["Dataset"].isEnabled()

    # 3. images and their labels arrive as layers; the choices follow; Add pair for each
    for seed in range(5):
        image, labels = make_nuclei((96, 96), n_nuclei=6, radius_range=(5.0, 9.0), seed=seed)
        viewer.add_image(image, name=f"cells_{seed}")
        viewer.add_labels(labels, name=f"cells_{seed} labels")
        assert (tabs["Dataset"].image_combo.currentText(), tabs["Dataset"].mask_combo.currentText()) == (f"cells_{seed}", f"cells_{seed} labels")
        click(tabs["Dataset"], "Add pair")
        assert tabs["Dataset"].message.text().startswith("Added pair_"), tabs["Dataset"].message.text()
    assert tabs["Dataset"].table.rowCount() == 5
    show("Dataset", "pairs")

    # 4. a first run from scratch; the monitor shows it; the Checkpoints tab lists it
    train = tabs["Train"]
    widget.tabs.setCurrentWidget(train)
    assert train.start_choice.currentText() == "scratch" and "scratch" in train.start_info.text()
    train.epochs.setValue(6)
    train.samples.setValue(16)
    train.batch.setValue(4)
    train.lr.setValue(0.005)
    train.device.setCurrentText("cpu")
    click(train, "Start training")
    qtbot.waitUntil(lambda: train.monitor.progress.value() >= 1, timeout=LONG)
    show("Train", "training")
    qtbot.waitUntil(lambda: not train.running, timeout=LONG)
    assert "unet_run_001" in train.message.text() and "ff6b6b" not in train.message.styleSheet(), train.message.text()
    checkpoints = tabs["Checkpoints"]
    assert checkpoints.table.rowCount() == 1 and checkpoints.table.item(0, 0).text().startswith("unet_run_001 (latest")

    # 5. predict an image the model never saw: it becomes the choice when it arrives
    unseen, truth = make_nuclei((96, 96), n_nuclei=6, radius_range=(5.0, 9.0), seed=50)
    viewer.add_image(unseen, name="unseen")
    predict = tabs["Predict"]
    assert predict.image_combo.currentText() == "unseen"
    widget.tabs.setCurrentWidget(predict)
    click(predict, "Predict")
    qtbot.waitUntil(lambda: not predict.running, timeout=LONG)
    result = next(layer for layer in viewer.layers if layer.name.startswith("unseen prediction"))
    show("Predict", "prediction")

    # 6. correct it (here: the true labels painted over it) and accept it as a training pair
    result.data = (truth > 0).astype(result.data.dtype)
    viewer.layers.selection.active = result
    click(predict, "Accept as training pair")
    assert predict.message.text().startswith("Added pair_0006 (train) from prediction_001"), predict.message.text()
    assert tabs["Dataset"].table.rowCount() == 6

    # 7. continue training from the checkpoint: chosen in the Checkpoints tab, shown and used by the Train tab
    widget.tabs.setCurrentWidget(checkpoints)
    assert checkpoints.select("unet_run_001")
    click(checkpoints, "Continue training from this")
    assert "unet_run_001" in checkpoints.message.text()
    assert train.start_choice.currentText() == "checkpoint" and "unet_run_001" in train.start_info.text()
    widget.tabs.setCurrentWidget(train)
    click(train, "Start training")
    qtbot.waitUntil(lambda: not train.running, timeout=LONG)
    record = widget.session.project.checkpoints.get("latest")
    assert record.checkpoint_id == "unet_run_002" and record.parent_id == "unet_run_001"
    assert "pair_0006" in record.dataset_pair_ids
    assert checkpoints.table.rowCount() == 2
    show("Checkpoints", "continued")
    from PIL import Image

    pictures = sorted(shots.iterdir())
    assert [p.stem[3:] for p in pictures] == ["pairs", "training", "prediction", "continued"]
    for path in pictures:  # real pictures, not blank docks
        pixels = np.asarray(Image.open(path).convert("L"))
        assert pixels.shape[0] > 200 and pixels.std() > 5, path.name
