"""Assign partners in the Train tab's point mode: the viewer's layers written as point_data (with the
segmentation), `nta assign-synapses` in a child process, the table shown as a Shapes layer of lines."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.qt

LONG = 600_000  # ms: the CPU may be shared


@pytest.fixture(scope="module")
def em():
    from napari_training_assistant.data.synthetic_em import make_em_volume

    return make_em_volume((16, 64, 64), seed=1)


def test_assign_partners_adds_one_line_per_assigned_synapse(make_napari_viewer, qtbot, em, tmp_path, add_synapse_layers):
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.train_tab import TrainTab
    from napari_training_assistant.project import TrainingProject
    from napari_training_assistant.project.run_options import TrainOptions

    project = TrainingProject.create(tmp_path / "synapse-layers", "synapses")
    session = ProjectSession()
    session.open(project.root)
    viewer = make_napari_viewer()
    tab = TrainTab(viewer, session)
    qtbot.addWidget(tab)
    add_synapse_layers(viewer, em, cells=True)
    tab.mode.setCurrentIndex(1)
    panel = tab.points
    panel.source.setCurrentIndex(1)
    assert panel.combos["segmentation"].currentText() == "cells"  # guessed by name (optional for training, used to assign)
    for role, name in {"image": "em", "label0": "pre", "label1": "post", "points": "synapses", "regions": "regions"}.items():
        panel.combos[role].setCurrentText(name)
    for box, value in zip(panel.window, (8, 32, 32), strict=True):
        box.setValue(value)
    panel.depth.setValue(2)
    panel.base.setValue(8)
    assign = panel.assign

    assert not assign.start() and "checkpoint" in assign.info.text()  # nothing trained yet
    # a tiny checkpoint, trained in this process on the same layers (what Start would run in the child)
    (train, *args), _ = panel.prepare(project, TrainOptions(epochs=1, batch_size=2, samples_per_epoch=4, device="cpu"))
    train(*args, listener=lambda event: None, cancel=None)
    session.open(project.root)
    panel.combos["segmentation"].setCurrentText("(none)")  # the user leaves it out
    assert not assign.start() and "Segmentation" in assign.info.text()  # no segmentation chosen
    panel.combos["segmentation"].setCurrentText("cells")

    assign.button.click()
    assert assign.running
    qtbot.waitUntil(lambda: not assign.running, timeout=LONG)

    result = assign.result
    assert result is not None and result.status == "completed", assign.info.text()
    spec = yaml.safe_load((project.root / "point_data" / "spec.yaml").read_text())
    assert spec["layers"]["segmentation"] == {"path": "segmentation.zarr"}
    with open(f"{result.output}/assignments.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(em.synapses)
    kept = [r for r in rows if r["pre_segment"] not in ("", "0") and r["post_segment"] not in ("", "0") and r["pre_site_z"] != ""]
    layer = viewer.layers["synapse partners"]
    assert type(layer).__name__ == "Shapes" and set(layer.shape_type) <= {"line"}
    assert len(layer.data) == len(kept) > 0
    assert list(layer.scale) == list(viewer.layers["em"].scale)
    features = layer.features
    for i, row in enumerate(kept):
        assert int(features["row"].iloc[i]) == int(row["row"])
        assert int(features["pre_segment"].iloc[i]) == int(row["pre_segment"])
        assert int(features["post_segment"].iloc[i]) == int(row["post_segment"])
        assert math.isclose(float(features["pre_score"].iloc[i]), float(row["pre_score"]), rel_tol=1e-6)
        pre = [float(row[k]) for k in ("pre_site_z", "pre_site_y", "pre_site_x")]
        post = [float(row[k]) for k in ("post_site_z", "post_site_y", "post_site_x")]
        np.testing.assert_allclose(layer.data[i], [pre, post])
    # evaluation: label0/label1 give ground truth, each line says right or wrong
    assert set(features["correct"]) <= {"yes", "no", "unknown"} and set(features["correct"]) & {"yes", "no"}
    assert "assigned" in assign.info.text()

    layer.selected_data = {len(kept) - 1}
    text = assign.info.text()
    last = kept[-1]
    assert f"row {last['row']}" in text and f"pre {last['pre_segment']}" in text and f"post {last['post_segment']}" in text
    assert "correct:" in text


def test_rows_without_partners_are_skipped_and_colours_follow_the_margin(make_napari_viewer):
    from napari_training_assistant.napari.tabs.assign_partners import show_assignments

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((4, 8, 8)), scale=(40, 4, 4))
    base = {"id": 1, "z": 1.0, "y": 2.0, "x": 2.0, "pre_score": 0.9, "post_score": 0.8, "flags": math.nan}
    sites = {"pre_site_z": 1, "pre_site_y": 1, "pre_site_x": 1, "post_site_z": 1, "post_site_y": 3, "post_site_x": 3}
    rows = [
        {**base, "row": 0, "pre_segment": 2, "post_segment": 3, "pre_margin": 0.1, **sites},
        {**base, "row": 1, "pre_segment": 0, "post_segment": 3, "pre_margin": math.nan, **{k: math.nan for k in sites}},
        {**base, "row": 2, "pre_segment": 4, "post_segment": 5, "pre_margin": 0.9, **sites},
    ]
    layer = show_assignments(viewer, rows, image)
    assert list(layer.features["row"]) == [0, 2] and "correct" not in layer.features
    assert not np.allclose(layer.edge_color[0], layer.edge_color[1])  # low and high margin differ
    layer = show_assignments(viewer, rows, image, {0: (2, 3), 2: (4, 6)})
    assert list(layer.features["correct"]) == ["yes", "no"] and len(viewer.layers) == 2  # replaced, not added
