"""Point-windowed training from layers: the roles are guessed from the layers (on the plugin's own EM sample:
image, pre, post, cells, synapse points, regions), a hand pick is kept, and label0 = label1 is refused (issue 17)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qt

EXPECTED = {
    "image": "synthetic EM",
    "label0": "pre (label0)",
    "label1": "post (label1)",
    "segmentation": "cells",
    "points": "synapses",
    "regions": "regions",
}


@pytest.fixture
def panel(make_napari_viewer, qtbot):
    from napari_training_assistant.napari.sample_data import synapse_sample
    from napari_training_assistant.napari.tabs.train_points_panel import PointsPanel

    viewer = make_napari_viewer()
    for data, meta, kind in synapse_sample():
        getattr(viewer, f"add_{kind}")(data, **meta)
    page = PointsPanel(viewer)
    qtbot.addWidget(page)
    return page


def test_the_em_sample_gets_the_right_roles(panel):
    assert {role: combo.currentText() for role, combo in panel.combos.items()} == EXPECTED


def test_roles_follow_layers_added_later_but_a_hand_pick_stays(make_napari_viewer, qtbot):
    import numpy as np

    from napari_training_assistant.napari.tabs.train_points_panel import NONE, PointsPanel

    viewer = make_napari_viewer()
    page = PointsPanel(viewer)
    qtbot.addWidget(page)
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="cells")
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="label1")
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="label0")
    assert page.combos["label0"].currentText() == "label0" and page.combos["label1"].currentText() == "label1"
    assert page.combos["segmentation"].currentText() == "cells"
    page.combos["segmentation"].setCurrentText(NONE)
    page.combos["segmentation"].activated.emit(page.combos["segmentation"].currentIndex())  # by hand
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="neurons")
    assert page.combos["segmentation"].currentText() == NONE


def test_label0_equal_to_label1_is_refused(panel, tmp_path):
    from napari_training_assistant.project import ProjectError, TrainingProject
    from napari_training_assistant.train import TrainOptions

    project = TrainingProject.create(tmp_path / "synapses", "synapses")
    panel.combos["label1"].setCurrentText("pre (label0)")
    with pytest.raises(ProjectError, match="label0 \\(pre\\) and label1 \\(post\\) are the same layer 'pre \\(label0\\)'"):
        panel.layer_inputs(project, TrainOptions(epochs=1))
    assert not (project.root / "point_data").exists()


def test_a_saved_label0_equal_to_label1_is_not_restored(panel):
    panel.restore({"train.label0": "cells", "train.label1": "cells", "train.image": "synthetic EM"})
    assert panel.combos["label0"].currentText() == "pre (label0)" and panel.combos["label1"].currentText() == "post (label1)"
    assert "image" in panel.picked and "label0" not in panel.picked
