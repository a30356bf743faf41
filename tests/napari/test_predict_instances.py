"""Predict tab in an instance project: object ids shown and accepted as they are, the Objects row's settings
recorded with the prediction (in memory and block-wise), a corrected layer of the wrong shape refused in one line, and the predict -> correct -> accept loop from "Suggest next images"
(ranking in a child process, the suggested image opened and predicted, its rank recorded on the pair)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.qt


@pytest.fixture
def make_tab(make_napari_viewer, qtbot, make_project, fast_options):
    """make_tab(trained=True, tuned=False): (project, viewer, tab) of an instance project (with a 1-epoch
    checkpoint; `tuned`: a second val pair, of 14 nuclei, so its post-processing is tuned)."""
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.predict_tab import PredictTab
    from napari_training_assistant.train import train_project

    def _make(trained: bool = True, tuned: bool = False):
        project = make_project(output_mode="instance")
        if tuned:  # a val pair with enough objects: the run tunes its post-processing on it
            image, labels = make_nuclei((96, 96), n_nuclei=14, radius_range=(4.0, 7.0), seed=77)
            project.dataset.add(image, labels, split="val")
        if trained:
            train_project(project, fast_options(run_benchmark=False))
        viewer = make_napari_viewer()
        image, _ = make_nuclei((40, 56), n_nuclei=3, radius_range=(4.0, 7.0), seed=9)
        viewer.add_image(image, name="cells")
        session = ProjectSession()
        tab = PredictTab(viewer, session)
        qtbot.addWidget(tab)
        session.open(project.root)
        return project, viewer, tab

    return _make


def wait_idle(qtbot, tab) -> None:
    qtbot.waitUntil(lambda: not tab._running, timeout=120_000)


def is_error(tab) -> bool:
    return "ff6b6b" in tab.message.styleSheet()


def predict(qtbot, tab, viewer):
    tab.predict_button.click()
    wait_idle(qtbot, tab)
    assert not is_error(tab), tab.message.text()
    return viewer.layers["cells prediction (unet_run_001)"]


def test_an_instance_prediction_keeps_its_ids_and_its_correction_is_accepted_with_them(make_tab, qtbot):
    project, viewer, tab = make_tab()
    layer = predict(qtbot, tab, viewer)
    record = project.predictions.registry.predictions[-1]
    assert record.parameters["output_mode"] == "instance"
    assert layer.data.dtype == np.uint32  # object ids, not 0/1
    objects = record.parameters["objects"]
    assert int(layer.data.max()) == objects
    text = tab.message.text()
    assert f"{objects} objects (seeded watershed: foreground > 0.5, boundary < 0.5, min size 12" in text

    corrected = np.zeros_like(layer.data)  # the user paints two touching nuclei with their own ids
    corrected[5:15, 5:15] = 7
    corrected[5:15, 15:25] = 9
    layer.data = corrected
    before = len(project.dataset.pairs)
    tab.accept_button.click()

    assert len(project.dataset.pairs) == before + 1, tab.message.text()
    pair = project.dataset.pairs[-1]
    assert pair.mask_mode == "instance" and pair.source == "corrected_prediction"
    assert pair.correction["objects_corrected"] == 2 and "predicted, 2 now)" in tab.message.text()
    _, mask = project.dataset.load(pair.pair_id)
    assert set(np.unique(mask[5:15, 5:15])) == {1} and set(np.unique(mask[5:15, 15:25])) == {2}  # kept apart


def test_the_objects_row_of_an_instance_checkpoint_sets_its_post_processing(make_tab, qtbot):
    project, viewer, tab = make_tab()
    assert not tab.objects.isHidden() and not tab.objects_label.isHidden()
    assert tab.objects_label.text() == "Objects" and "fewer than 10" in tab.objects_label.toolTip()  # 4 val nuclei: not tuned
    tab.objects.min_size.setValue(30)
    tab.objects.foreground_threshold.setValue(0.6)
    tab.objects.boundary_threshold.setValue(0.4)
    assert tab.objects.split_depth.text() == "auto"
    tab.objects.split_depth.setValue(0)  # never split cores
    layer = predict(qtbot, tab, viewer)
    parameters = project.predictions.registry.predictions[-1].parameters
    assert parameters["instance_min_size"] == 30 and parameters["instance_min_seed_size"] == 7
    assert parameters["instance_foreground_threshold"] == 0.6 and parameters["instance_boundary_threshold"] == 0.4
    assert parameters["instance_split_depth"] == 0.0
    assert int(layer.data.max()) == parameters["objects"]
    assert "foreground > 0.6, boundary < 0.4, min size 30, split 0.0, min seed size 7" in tab.message.text()


def test_the_objects_row_shows_the_checkpoints_tuned_post_processing_and_keeps_the_users_edits(make_tab, qtbot):
    project, viewer, tab = make_tab(tuned=True)
    tuning = project.checkpoints.get("latest").metrics["instance_postprocessing"]
    assert tuning["tuned"]
    tuned = tuning["settings"]
    assert tab.objects_label.text() == "Objects (tuned)"
    assert "tuned on 2 validation image(s), 18 objects: accuracy at IoU 0.5" in tab.objects_label.toolTip()  # 4 + 14 nuclei
    row = tab.objects
    shown = (row.foreground_threshold.value(), row.boundary_threshold.value(), row.min_size.value(), row.split_depth.value())
    assert shown == (tuned["foreground_threshold"], tuned["boundary_threshold"], tuned["min_size"], tuned["split_depth"])
    row.min_size.setValue(tuned["min_size"] + 5)  # the user's edit ...
    layer = predict(qtbot, tab, viewer)
    parameters = project.predictions.registry.predictions[-1].parameters
    assert parameters["instance_min_size"] == tuned["min_size"] + 5 and parameters["instance_tuned"] is True
    assert parameters["instance_foreground_threshold"] == tuned["foreground_threshold"]
    assert row.min_size.value() == tuned["min_size"] + 5  # ... survives the refresh after the prediction
    assert int(layer.data.max()) == parameters["objects"]


def test_a_correction_of_another_shape_is_one_red_line_and_adds_nothing(make_tab, qtbot):
    project, viewer, tab = make_tab()
    layer = predict(qtbot, tab, viewer)
    before = len(project.dataset.pairs)
    layer.data = np.ones((20, 30), np.uint32)
    assert tab.accept_correction() is None
    text = tab.message.text()
    assert is_error(tab) and "shape (20, 30)" in text and "(40, 56)" in text and "\n" not in text
    assert len(project.dataset.pairs) == before


def test_suggest_without_a_checkpoint_says_to_train_first(make_tab, tmp_path):
    project, viewer, tab = make_tab(trained=False)
    np.save(tmp_path / "a.npy", np.zeros((32, 32), np.uint16))
    tab.suggest_folder.setText(str(tmp_path))
    assert not tab.suggest()
    assert is_error(tab) and "train first" in tab.message.text() and "\n" not in tab.message.text()
    assert tab.task is None and tab.suggestions.rowCount() == 0
    tab.suggest_folder.setText(str(tmp_path / "missing"))
    assert not tab.suggest() and "choose a folder" in tab.message.text()


def test_suggest_open_predict_correct_accept_records_the_rank(make_tab, qtbot, tmp_path):
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.project.suggestions import read_suggestions

    project, viewer, tab = make_tab()
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    for seed, noise in ((1, 0.02), (2, 0.3), (3, 0.1)):
        np.save(folder / f"img_{seed}.npy", make_nuclei((40, 40), n_nuclei=3, radius_range=(4.0, 7.0), noise=noise, seed=seed)[0])
    tab.suggest_folder.setText(str(folder))

    tab.suggest_button.click()
    assert tab.suggest_button.text() == "Ranking…" and not tab.predict_button.isEnabled()
    wait_idle(qtbot, tab)
    assert not is_error(tab), tab.message.text()
    assert tab.last_task.pid != os.getpid() and tab.last_task.exit_code == 0  # ranked in a child process
    rows = [[tab.suggestions.item(r, c).text() for c in range(3)] for r in range(tab.suggestions.rowCount())]
    assert [r[0] for r in rows] == ["1", "2", "3"] and sorted(r[1] for r in rows) == ["img_1.npy", "img_2.npy", "img_3.npy"]
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert len(read_suggestions(project)) == 3  # the ranking is recorded

    top = tab.suggest_panel.ranked[0]["path"]
    tab.suggestions.cellDoubleClicked.emit(0, 1)  # opens the image and predicts it
    name = rows[0][1].removesuffix(".npy")
    assert name in viewer.layers and tab.image_combo.currentText() == name
    wait_idle(qtbot, tab)
    record = project.predictions.registry.predictions[-1]
    assert record.source == top, tab.message.text()
    labels = viewer.layers[f"{name} prediction (unet_run_001)"]
    corrected = np.array(labels.data)
    corrected[2:10, 2:10] = corrected.max() + 1
    labels.data = corrected

    pair = tab.accept_correction()
    assert pair is not None, tab.message.text()
    assert pair.suggestion["rank"] == 1 and pair.suggestion["of"] == 3
    assert "suggested #1 of 3" in tab.message.text()


def test_a_block_wise_instance_prediction_says_its_objects(make_tab, qtbot):
    import dask.array as da

    from napari_training_assistant.data.synthetic_nuclei import make_nuclei

    project, viewer, tab = make_tab()
    image, _ = make_nuclei((64, 160), n_nuclei=6, radius_range=(4.0, 7.0), seed=4)
    viewer.add_image(da.from_array(image, chunks=64), name="big")
    tab.image_combo.setCurrentText("big")
    tab.tile_size.setValue(32)
    tab.block_size.setValue(64)
    tab.objects.min_size.setValue(20)  # the Objects row reaches the block-wise child task too
    tab.predict_button.click()
    wait_idle(qtbot, tab)

    assert not is_error(tab), tab.message.text()
    record = project.predictions.registry.predictions[-1]
    assert ".zarr" in record.path and record.parameters["instance_min_size"] == 20
    assert "blocks; " in tab.message.text() and f"{record.parameters['objects']} objects (seeded watershed:" in tab.message.text()
