"""Predict tab, layers of any size: a dask-backed (or multiscale, or big) layer is predicted block-wise in
the child process into predictions/*.zarr, shown meanwhile as a lazy multiscale Labels layer; Stop keeps
the finished blocks and records nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.qt

SHAPE = (96, 320)  # with blocks of 64: 2 x 5 blocks and 2 pyramid levels (the largest axis exceeds 256)
NAME = "big prediction (unet_run_001)"


@pytest.fixture
def setup(make_napari_viewer, qtbot, make_project, fast_options):
    import dask.array as da

    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.predict_tab import PredictTab
    from napari_training_assistant.train import train_project

    project = make_project()
    train_project(project, fast_options(run_benchmark=False))
    viewer = make_napari_viewer()
    image, _ = make_nuclei(SHAPE, n_nuclei=8, radius_range=(4.0, 7.0), seed=9)
    viewer.add_image(da.from_array(image, chunks=64), name="big", scale=(0.5, 0.5))
    session = ProjectSession()
    tab = PredictTab(viewer, session)
    qtbot.addWidget(tab)
    session.open(project.root)
    tab.tile_size.setValue(32)
    tab.block_size.setValue(64)
    return project, viewer, tab


def _wait_done(qtbot, tab):
    qtbot.waitUntil(lambda: tab.predict_button.isEnabled(), timeout=120_000)


def _output(project, name: str = "prediction_001.zarr"):
    import zarr

    return zarr.open_group(str(project.layout.predictions_dir / name), mode="r")


def test_dask_layer_is_predicted_block_wise_into_ome_zarr_shown_while_running(setup, qtbot, monkeypatch):
    import dask.array as da
    from napari.layers import Labels

    from napari_training_assistant.napari.reader import read_project

    project, viewer, tab = setup
    refreshed, refresh = [], Labels.refresh

    def counted(layer, *args, **kwargs):
        refreshed.append(layer.name)
        return refresh(layer, *args, **kwargs)

    monkeypatch.setattr(Labels, "refresh", counted)
    added = []
    viewer.layers.events.inserted.connect(lambda event: added.append((event.value.name, tab.stop_button.isEnabled())))
    tab.predict_button.click()
    assert not tab.predict_button.isEnabled() and tab.stop_button.isEnabled()
    _wait_done(qtbot, tab)

    assert added == [(NAME, True)], tab.message.text()  # shown while the blocks were being predicted
    layer = viewer.layers[NAME]
    assert isinstance(layer, Labels) and layer.multiscale and len(layer.data) == 2
    assert layer.data[0].shape == SHAPE and tuple(layer.scale) == (0.5, 0.5)
    assert all(isinstance(level, da.Array) for level in layer.data)  # read lazily
    stored = _output(project)
    for level, data in zip(("0", "1"), layer.data, strict=True):
        np.testing.assert_array_equal(np.asarray(data), stored["labels"][level][:])
    assert (stored["nta_blocks"][:] == 1).all()
    shown = np.asarray(layer._slice.image.raw)  # what napari draws: re-read as blocks completed
    np.testing.assert_array_equal(shown, stored["labels"][str(layer.data_level)][:])
    assert 1 <= len(refreshed) <= 10 + 1  # at most one redraw per block, and one at the end
    assert tab.progress.maximum() == tab.progress.value() == 10
    [record] = project.predictions.registry.predictions  # predictions.json
    assert record.path == "predictions/prediction_001.zarr/labels" and record.parameters["format"] == "ome-zarr"
    assert record.source == "napari layer big" and record.checkpoint_id == "unet_run_001"
    assert record.parameters["block_shape"] == [64, 64] and record.parameters["blocks"] == 10
    assert "prediction_001" in tab.message.text() and not tab.stop_button.isEnabled()
    assert tab.last_task.exit_code == 0

    data, meta, kind = read_project(str(project.root))[-1]  # the project reader opens it lazily too
    assert kind == "labels" and meta["multiscale"] and meta["name"] == "prediction_001 (unet_run_001)"
    np.testing.assert_array_equal(np.asarray(data[0]), stored["labels"]["0"][:])


def test_stop_keeps_the_finished_blocks_and_records_nothing(setup, qtbot):
    project, viewer, tab = setup
    tab.block_size.setValue(32)  # 3 x 10 blocks
    tab.predict_button.click()
    qtbot.waitUntil(lambda: tab.progress.value() >= 1, timeout=120_000)  # a block is done
    tab.stop_button.click()
    _wait_done(qtbot, tab)

    text = tab.message.text()
    assert text.startswith("Stopped:") and "of 30 blocks kept in predictions/prediction_001.zarr" in text, text
    assert not project.predictions.registry.predictions
    output = _output(project)
    done = int((output["nta_blocks"][:] > 0).sum())
    assert 0 < done < 30
    assert output.attrs["nta_prediction"]["status"] == "running"
    assert NAME in viewer.layers  # the finished blocks stay in view
    assert tab.predict_button.isEnabled() and not tab.stop_button.isEnabled()


def test_which_layers_are_predicted_block_wise(make_napari_viewer, tmp_path, monkeypatch):
    import dask.array as da
    import tifffile

    from napari_training_assistant.napari.tabs import predict_tab

    viewer = make_napari_viewer()
    small = viewer.add_image(np.zeros((32, 48), np.uint16), name="small")
    lazy = viewer.add_image(da.zeros((32, 48), np.uint16, chunks=16), name="lazy")
    pyramid = viewer.add_image([np.zeros((64, 96), np.uint16), np.zeros((32, 48), np.uint16)], multiscale=True)
    assert [predict_tab.predicts_in_blocks(layer) for layer in (small, lazy, pyramid)] == [False, True, True]
    monkeypatch.setattr(predict_tab, "IN_MEMORY_VOXELS", 1000)
    assert predict_tab.predicts_in_blocks(small)

    assert predict_tab.volume_source(lazy) is lazy.data
    assert predict_tab.volume_source(pyramid) is pyramid.data[0]
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, np.arange(32 * 48, dtype=np.uint16).reshape(32, 48))
    [opened] = viewer.open(str(path))
    assert isinstance(opened.data, np.ndarray) and predict_tab.volume_source(opened) == str(path)  # not pickled
    opened.data = np.zeros((16, 48), np.uint16)  # no longer what the file holds
    assert predict_tab.volume_source(opened) is opened.data


GUI_SCRIPT = """
import json, sys, time
import dask.array as da, napari, numpy as np
from napari_training_assistant.napari.session import ProjectSession
from napari_training_assistant.napari.tabs.predict_tab import PredictTab

viewer = napari.Viewer(show=False)
image = np.random.default_rng(0).integers(0, 4000, (64, 64), dtype=np.uint16)
viewer.add_image(da.from_array(image, chunks=32), name="big")
session = ProjectSession()
tab = PredictTab(viewer, session)
session.open(sys.argv[1])
tab.tile_size.setValue(32)
tab.block_size.setValue(32)
tab.predict()
app, deadline = napari.qt.get_qapp(), time.monotonic() + 240
while not tab.predict_button.isEnabled() and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.01)
stack = ("torch", "lightning", "napari_training_assistant.predict", "napari_training_assistant.train", "napari_training_assistant.assign")
print(json.dumps({"message": tab.message.text(), "layers": [layer.name for layer in viewer.layers],
                  "imported": [name for name in stack if name in sys.modules]}))
"""


def test_the_gui_process_never_imports_the_prediction_stack(make_project, fast_options, tmp_path):
    """A block-wise prediction from the Predict tab in a fresh process: the labels arrive, and neither
    what the child sends nor what the tab does loads torch or the predict package in the GUI process."""
    from napari_training_assistant.train import train_project

    project = make_project()
    train_project(project, fast_options(run_benchmark=False))
    done = subprocess.run([sys.executable, "-c", GUI_SCRIPT, str(project.root)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["message"].startswith("Saved predictions/prediction_001.zarr/labels"), report
    assert report["layers"] == ["big", "big prediction (unet_run_001)"]
    assert report["imported"] == [], f"the GUI process imported {report['imported']}"


def test_block_wise_probabilities_are_shown_with_the_labels(setup, qtbot):
    from napari.layers import Image

    project, viewer, tab = setup
    tab.probabilities.setChecked(True)
    tab.predict_button.click()
    _wait_done(qtbot, tab)
    [name] = [layer.name for layer in viewer.layers if "probability" in layer.name]
    layer = viewer.layers[name]
    assert isinstance(layer, Image) and layer.multiscale and layer.data[0].shape == SHAPE, tab.message.text()
    assert tuple(layer.contrast_limits) == (0, 255)  # stored as uint8 x255
    np.testing.assert_array_equal(np.asarray(layer.data[0]), _output(project)["probabilities"]["0"][0])
