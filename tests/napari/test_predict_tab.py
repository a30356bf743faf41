"""Predict tab: prediction in a child process into the project and a Labels layer; errors as messages."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.qt


@pytest.fixture
def setup(make_napari_viewer, qtbot, make_project, fast_options):
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.predict_tab import PredictTab
    from napari_training_assistant.train import train_project

    project = make_project()
    train_project(project, fast_options(run_benchmark=False))
    viewer = make_napari_viewer()
    image, _ = make_nuclei((40, 56), n_nuclei=3, radius_range=(4.0, 7.0), seed=9)
    viewer.add_image(image, name="cells", scale=(0.5, 0.5))
    session = ProjectSession()
    tab = PredictTab(viewer, session)
    qtbot.addWidget(tab)
    session.open(project.root)
    return project, viewer, session, tab


def _wait_done(qtbot, tab):
    from napari_training_assistant.napari.layer_insertion import steps_pending

    qtbot.waitUntil(lambda: tab.predict_button.isEnabled() and not steps_pending(), timeout=60_000)


def test_predict_adds_labels_layer_and_saves_into_project(setup, qtbot, fast_options):
    from napari.layers import Labels

    from napari_training_assistant.project.image_io import read_tiff
    from napari_training_assistant.train import train_project

    project, viewer, session, tab = setup
    train_project(project, fast_options(run_benchmark=False))
    session.updated()
    assert [tab.checkpoint_combo.itemData(i) for i in range(tab.checkpoint_combo.count())] == [
        "latest", "unet_run_002", "unet_run_001"]
    session.select_checkpoint("unet_run_001")  # "Use for prediction" in the Checkpoints tab
    assert tab.checkpoint_combo.currentData() == "unet_run_001"
    assert tab.image_combo.currentText() == "cells"
    assert tab.objects.isHidden() and tab.objects_label.isHidden()  # instance settings: not for a binary checkpoint

    tab.predict_button.click()
    assert not tab.predict_button.isEnabled()  # disabled while running, GUI not blocked
    _wait_done(qtbot, tab)

    layer = viewer.layers["cells prediction (unet_run_001)"]
    assert isinstance(layer, Labels)
    assert layer.data.shape == (40, 56) and tuple(layer.scale) == (0.5, 0.5)
    saved = project.layout.predictions_dir / "prediction_001.tif"
    assert saved.is_file()
    np.testing.assert_array_equal(read_tiff(saved), layer.data)
    record = project.predictions.registry.predictions[-1]
    assert record.source == "napari layer cells" and record.checkpoint_id == "unet_run_001"
    assert not any(key.startswith("instance_") for key in record.parameters)
    assert "prediction_001" in tab.message.text()
    assert project.config.ui.selected_layers["predict_image"] == "cells"
    assert tab.last_task.pid != os.getpid() and tab.last_task.exit_code == 0  # predicted in a child process


def test_a_corrected_prediction_is_accepted_as_a_training_pair(setup, qtbot):
    project, viewer, session, tab = setup
    assert not tab.accept_button.isEnabled()
    assert tab.accept_correction() is None and "Predict an image first" in tab.message.text()
    tab.predict_button.click()
    _wait_done(qtbot, tab)
    layer = viewer.layers["cells prediction (unet_run_001)"]
    assert tab.accept_button.isEnabled()
    corrected = np.array(layer.data)
    corrected[:6, :6] = 1 - (corrected[:6, :6] > 0)  # the user repaints a corner
    changed = int(((corrected > 0) != (np.asarray(layer.data) > 0)).sum())
    layer.data = corrected
    before = len(project.dataset.pairs)

    tab.accept_button.click()

    assert len(project.dataset.pairs) == before + 1, tab.message.text()
    pair = project.dataset.pairs[-1]
    assert pair.source == "corrected_prediction" and pair.mask_layer == layer.name and pair.image_layer == "cells"
    assert pair.correction["prediction_id"] == "prediction_001" and pair.correction["checkpoint_id"] == "unet_run_001"
    assert pair.correction["changed_pixels"] == changed and f"{changed} pixels" in tab.message.text()
    image, mask = project.dataset.load(pair.pair_id)
    np.testing.assert_array_equal(image, viewer.layers["cells"].data)
    np.testing.assert_array_equal(mask > 0, corrected > 0)

    viewer.layers.remove("cells")
    assert tab.accept_correction() is None and "no longer in the viewer" in tab.message.text()


def test_wrong_channel_count_is_a_red_message(setup, qtbot):
    project, viewer, session, tab = setup
    viewer.add_image(np.zeros((2, 40, 56), np.uint16), name="two channels")
    tab.image_combo.setCurrentText("two channels")
    tab.channel_axis.setValue(0)
    tab.predict_button.click()
    _wait_done(qtbot, tab)

    text = tab.message.text()
    assert text.startswith("Prediction failed:") and "expects 1 channel(s)" in text and "\n" not in text
    assert "#ff6b6b" in tab.message.styleSheet()
    assert not project.predictions.registry.predictions
    assert not session.busy
    assert [layer.name for layer in viewer.layers] == ["cells", "two channels"]


def test_layer_combo_follows_the_viewer(setup):
    _, viewer, _, tab = setup
    viewer.add_image(np.zeros((8, 8)), name="other")
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="not an image")
    assert [tab.image_combo.itemText(i) for i in range(tab.image_combo.count())] == ["cells", "other"]
    viewer.layers["other"].name = "renamed"
    assert "renamed" in [tab.image_combo.itemText(i) for i in range(tab.image_combo.count())]
    viewer.layers.remove("renamed")
    assert tab.image_combo.count() == 1


def test_the_image_just_added_becomes_the_prediction_input(make_napari_viewer, qtbot, tmp_path):
    import numpy as np

    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.predict_tab import PredictTab

    viewer = make_napari_viewer()
    session = ProjectSession()
    session.create(tmp_path / "proj", "proj")
    tab = PredictTab(viewer, session)
    qtbot.addWidget(tab)
    viewer.add_image(np.zeros((16, 16), np.uint8), name="first")
    viewer.add_image(np.zeros((16, 16), np.uint8), name="second")
    assert tab.image_combo.currentText() == "second"
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="a result")  # a labels layer leaves the choice alone
    assert tab.image_combo.currentText() == "second"


def test_probabilities_come_as_an_optional_image_layer_under_the_labels(setup, qtbot):
    from napari.layers import Image, Labels

    project, viewer, session, tab = setup
    tab.probabilities.setChecked(True)
    tab.predict_button.click()
    _wait_done(qtbot, tab)
    record = project.predictions.registry.predictions[-1]
    assert record.probabilities_path is not None, tab.message.text()
    names = [layer.name for layer in viewer.layers]
    [probability] = [name for name in names if "probability" in name]
    layer = viewer.layers[probability]
    assert isinstance(layer, Image) and layer.data.shape == (40, 56) and tuple(layer.scale) == (0.5, 0.5)
    assert float(layer.data.min()) >= 0.0 and float(layer.data.max()) <= 1.0
    assert isinstance(viewer.layers[-1], Labels) and names.index(probability) < len(names) - 1  # the labels stay on top
    assert tab.image_combo.currentText() == "cells"  # the probabilities are no image to predict next


def test_predicting_again_reuses_the_unedited_layer_and_keeps_an_edited_one(setup, qtbot):
    """A new Labels layer costs napari hundreds of ms of GUI time (its visuals); an unedited prediction layer of
    the same image takes the new labels instead. One someone painted in is never overwritten."""
    project, viewer, session, tab = setup
    tab.predict_button.click()
    _wait_done(qtbot, tab)
    [first] = [layer for layer in viewer.layers if "prediction" in layer.name]
    tab.predict_button.click()
    _wait_done(qtbot, tab)
    layers = [layer for layer in viewer.layers if "prediction" in layer.name]
    assert layers == [first] and first.metadata["nta_prediction"]["prediction_id"] == "prediction_002", tab.message.text()
    first.paint((5, 5), 7)  # the user corrects it
    assert first.metadata["nta_edited"] is True
    tab.predict_button.click()
    _wait_done(qtbot, tab)
    layers = [layer for layer in viewer.layers if "prediction" in layer.name]
    assert len(layers) == 2 and layers[0] is first and first.metadata["nta_prediction"]["prediction_id"] == "prediction_002"
    assert layers[1].metadata["nta_prediction"]["prediction_id"] == "prediction_003"
