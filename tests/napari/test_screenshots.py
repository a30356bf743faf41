"""Screenshots of the whole plugin and of each tab after a real loop (add pairs, train, predict). The test
checks the images are non-trivial; a person looks at them. `make screenshots` writes them to docs/images/
for the README (`NTA_SCREENSHOT_DIR`); otherwise (`make test`) they go to a temporary folder, so the tracked
images stay as they are."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.qt, pytest.mark.slow]

FOLDER_VARIABLE = "NTA_SCREENSHOT_DIR"  # set by `make screenshots` to docs/images
LONG = 600_000


@pytest.fixture
def images(tmp_path) -> Path:
    folder = Path(os.environ.get(FOLDER_VARIABLE) or tmp_path / "images")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(widget, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    assert widget.grab().save(str(path))
    return path


def test_screenshots_of_every_tab(make_napari_viewer, qtbot, tmp_path, tiny_sam3_folder, images):
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    widget = TrainingAssistantWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Training Assistant", area="right")
    for seed in range(5):
        image, labels = make_nuclei((96, 96), n_nuclei=6, radius_range=(5.0, 9.0), seed=seed)
        viewer.add_image(image, name=f"nuclei_{seed}")
        viewer.add_labels(labels, name=f"nuclei_{seed} labels")
    assert widget.status_bar.create_project(tmp_path / "nuclei-project", "nuclei", architecture={"preset": "tiny_unet"})

    dataset = widget.page("Dataset")
    widget.tabs.setCurrentWidget(dataset)
    for seed in range(5):
        dataset.image_combo.setCurrentText(f"nuclei_{seed}")
        dataset.mask_combo.setCurrentText(f"nuclei_{seed} labels")
        dataset.add_pair()
    assert len(widget.session.project.dataset) == 5

    train = widget.page("Train")
    widget.tabs.setCurrentWidget(train)
    train.epochs.setValue(12)
    train.samples.setValue(32)
    train.batch.setValue(8)
    train.lr.setValue(0.005)
    train.device.setCurrentText("cpu")
    assert train.start()
    qtbot.waitUntil(lambda: train.monitor.progress.value() >= 4 * 12 // 3 or not train.running, timeout=LONG)
    running = _save(widget, images, "train_running")  # the monitor in view while the run goes
    qtbot.waitUntil(lambda: not train.running, timeout=LONG)
    assert widget.session.project.checkpoints.latest_id == "unet_run_001"
    assert widget.session.project.history.latest_benchmark()["dice"] > 0.5  # a picture worth showing

    predict = widget.page("Predict")
    widget.tabs.setCurrentWidget(predict)
    predict.image_combo.setCurrentText("nuclei_4")
    predict.predict()
    qtbot.waitUntil(lambda: any("prediction" in layer.name for layer in viewer.layers), timeout=LONG)

    sam3 = widget.page("SAM3")  # a box prompt previewed by a tiny random-weight SAM3 (no real weights here)
    widget.tabs.setCurrentWidget(sam3)
    sam3.image_combo.setCurrentText("nuclei_1")
    sam3.image_folder.setText(str(tiny_sam3_folder))
    sam3.device.setCurrentText("cpu")
    sam3.layer_button.click()
    sam3.prompt_layer(create=False).add_rectangles(np.array([[20, 20], [60, 60]]))
    assert sam3.run()
    qtbot.waitUntil(lambda: sam3.worker is None, timeout=LONG)
    assert "object(s)" in sam3.message.text()
    sam3.mode.setCurrentIndex(sam3.mode.findData("2d_text"))  # the tab as it looks for a concept prompt
    sam3.plane.text.setText("nucleus")
    for name in ("SAM3 preview labels", "SAM3 boxes", "SAM3 exemplar boxes"):  # random weights: the preview means nothing
        viewer.layers[name].visible = False
    viewer.layers.selection.active = viewer.layers["nuclei_4"]
    viewer.reset_view()

    shots = {"running": running}
    for title in widget.pages:
        widget.tabs.setCurrentWidget(widget.page(title))
        qtbot.wait(150)
        shots[title] = _save(widget, images, f"tab_{title.lower()}")
    widget.tabs.setCurrentWidget(train)
    qtbot.wait(150)
    shots["viewer"] = _save(viewer.window._qt_window, images, "napari_training_assistant")
    for path in shots.values():
        from PIL import Image

        pixels = np.asarray(Image.open(path).convert("L"))
        assert pixels.shape[0] > 200 and pixels.std() > 5  # a real picture, not a blank window


def test_screenshot_of_a_corrected_prediction(make_napari_viewer, qtbot, tmp_path, images):
    """The predict -> correct -> retrain loop of an instance project: a folder of unlabeled images ranked by
    "Suggest next images", the most uncertain one opened and predicted (object ids), the nuclei the model
    missed or merged painted in with their own ids, and the correction accepted as a training pair."""
    import inspect

    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.napari.widget import TrainingAssistantWidget
    from napari_training_assistant.project import TrainingProject
    from napari_training_assistant.train import TrainOptions, train_project

    touching = {"touching": 0.5} if "touching" in inspect.signature(make_nuclei).parameters else {}

    def nuclei(seed: int):
        return make_nuclei((128, 128), n_nuclei=12, radius_range=(6.0, 10.0), seed=seed, **touching)

    project = TrainingProject.create(
        tmp_path / "nuclei-instances", "nuclei", class_names=["background", "nucleus"], output_mode="instance", architecture={"preset": "tiny_unet"}
    )
    for seed in range(6):
        project.dataset.add(*nuclei(seed), split="train" if seed < 5 else "val")
    options = TrainOptions(epochs=15, samples_per_epoch=48, batch_size=8, learning_rate=0.005, device="cpu", run_benchmark=False)
    assert train_project(project, options).status == "completed"
    unlabeled, truth = tmp_path / "unlabeled", {}
    unlabeled.mkdir()
    for seed in range(100, 104):
        image, truth[f"nuclei_{seed}"] = nuclei(seed)
        np.save(unlabeled / f"nuclei_{seed}.npy", image)

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    widget = TrainingAssistantWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Training Assistant", area="right")
    assert widget.status_bar.open_project(project.root)
    predict = widget.page("Predict")
    widget.tabs.setCurrentWidget(predict)
    predict.suggest_folder.setText(str(unlabeled))
    assert predict.suggest()
    qtbot.waitUntil(lambda: not predict._running, timeout=LONG)
    assert predict.suggestions.rowCount() == 4, predict.message.text()
    layer = predict.open_suggestion(0)
    qtbot.waitUntil(lambda: not predict._running, timeout=LONG)
    labels = viewer.layers[f"{layer.name} prediction (unet_run_001)"]
    assert labels.data.max() > 1, predict.message.text()  # object ids

    # the correction: predicted objects that merge nuclei (or hold none) are erased, then every true nucleus
    # that no predicted object covers by half is painted in with its own new id
    corrected, truth_ids = np.array(labels.data), truth[layer.name]
    sizes = np.bincount(truth_ids.ravel())
    for object_id in np.unique(corrected)[1:]:
        mine = corrected == object_id
        shares = np.bincount(truth_ids[mine].ravel(), minlength=len(sizes)) / np.maximum(sizes, 1)
        if (shares[1:] >= 0.3).sum() != 1:
            corrected[mine] = 0
    for object_id in range(1, len(sizes)):
        inside = truth_ids == object_id
        hits = np.bincount(corrected[inside].ravel())
        if not hits[1:].any() or hits[1:].max() < 0.5 * inside.sum():
            corrected[inside] = corrected.max() + 1
    labels.data = corrected
    labels.opacity = 0.55  # filled: touching nuclei in different colours
    labels.mode = "paint"
    labels.selected_label = int(corrected.max()) + 1
    viewer.layers.selection.active = labels
    pair = predict.accept_correction()
    assert pair is not None and pair.suggestion["rank"] == 1, predict.message.text()
    viewer.reset_view()
    qtbot.wait(300)

    path = _save(viewer.window._qt_window, images, "corrected_prediction")
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("L"))
    assert pixels.shape[0] > 200 and pixels.std() > 5


def test_screenshots_of_the_new_project_dialog_and_the_point_mode(make_napari_viewer, qtbot, tmp_path, images):
    """The New… dialog (an instance project) and the Train tab's point mode on the plugin's own EM sample, its
    layers guessed (image, pre, post, cells, synapses, regions)."""
    from napari_training_assistant.napari.new_project_dialog import NewProjectDialog
    from napari_training_assistant.napari.sample_data import synapse_sample
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    dialog = NewProjectDialog(str(tmp_path / "HeLa nuclei"))
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("HeLa nuclei")
    dialog.mode.setCurrentText("instance")
    dialog.resize(520, dialog.sizeHint().height())
    dialog.show()
    qtbot.waitExposed(dialog)
    paths = [_save(dialog, images, "new_project_dialog")]

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 1000)
    for data, meta, kind in synapse_sample():
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = TrainingAssistantWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Training Assistant", area="right")
    assert widget.status_bar.create_project(tmp_path / "synapses", "synapses")
    train = widget.page("Train")
    widget.tabs.setCurrentWidget(train)
    train.mode.setCurrentIndex(train.mode.findData("point_windows"))
    train.mode.activated.emit(train.mode.currentIndex())  # as a user picks it: the project's mode
    train.points.source.setCurrentIndex(1)
    assert widget.session.status()["state"].startswith("point-windowed")  # the status bar follows the mode
    assert train.points.combos["label0"].currentText() == "pre (label0)"
    qtbot.wait(200)
    paths.append(_save(viewer.window._qt_window, images, "point_mode_em_sample"))
    from PIL import Image

    for path in paths:
        pixels = np.asarray(Image.open(path).convert("L"))
        assert pixels.shape[0] > 150 and pixels.std() > 5


def test_screenshot_of_the_close_question(make_napari_viewer, qtbot, images):
    """The question the viewer's close asks while a run goes: Stop and close / Keep running in the background / Cancel."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QMessageBox, QPushButton

    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    widget = TrainingAssistantWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    saved = []

    def grab_then_cancel() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or not box.isVisible():
            QTimer.singleShot(50, grab_then_cancel)
            return
        saved.append(_save(box, images, "close_question"))
        next(b for b in box.findChildren(QPushButton) if b.text().replace("&", "") == "Cancel").click()

    QTimer.singleShot(100, grab_then_cancel)
    assert widget._ask_close(["a training run"]) == "cancel"
    from PIL import Image

    pixels = np.asarray(Image.open(saved[0]).convert("L"))
    assert pixels.shape[0] > 80 and pixels.std() > 5
