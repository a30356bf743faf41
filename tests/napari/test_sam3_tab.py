"""SAM3 tab end to end on CPU with a tiny random SAM3 (transformers backend): every 2D prompt mode makes a
preview, live points preview on each click, refusals are one red line, accepting adds a `sam3_preview` pair,
the config is restored on reopen, and propagated frames stream into a Labels layer through the timer."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytestmark = pytest.mark.qt


@pytest.fixture
def make_tab(make_napari_viewer, qtbot):
    from napari_training_assistant.napari.session import ProjectSession
    from napari_training_assistant.napari.tabs.sam3_tab import Sam3Tab

    def _make(session=None):
        viewer = make_napari_viewer()
        tab = Sam3Tab(viewer, session or ProjectSession())
        qtbot.addWidget(tab)
        return tab

    return _make


def is_error(tab) -> bool:
    return "ff6b6b" in tab.message.styleSheet()


def cells(shape=(64, 80)):
    image = np.full(shape, 200, np.uint16)
    image[..., 10:30, 12:34] = 3000
    image[..., 40:58, 46:70] = 2800
    return image


def set_mode(tab, mode: str):
    """Choose the mode as a user does; the 'Prompt layer' button (re)selects its layer and drawing mode."""
    tab.mode.setCurrentIndex(tab.mode.findData(mode))
    tab.layer_button.click()
    return tab.prompt_layer(create=False)


def ready(tab, folder, image=None, name="cells"):
    tab.viewer.add_image(cells() if image is None else image, name=name)
    tab.image_combo.setCurrentText(name)
    tab.image_folder.setText(str(folder))
    tab.device.setCurrentText("cpu")


def preview(tab, qtbot):
    assert tab.run(), tab.message.text()
    qtbot.waitUntil(lambda: tab.worker is None, timeout=60_000)
    assert not is_error(tab), tab.message.text()
    return tab.viewer.layers["SAM3 preview labels"].data


def test_box_mode_creates_its_layer_and_previews(make_tab, qtbot, tiny_sam3_folder):
    tab = make_tab()
    ready(tab, tiny_sam3_folder)
    layer = set_mode(tab, "2d_box")
    assert type(layer).__name__ == "Shapes" and layer.name == "SAM3 boxes" and layer.mode == "add_rectangle"
    layer.add_rectangles(np.array([[8, 10], [32, 36]]))
    labels = preview(tab, qtbot)
    assert labels.shape == (64, 80) and labels.dtype == np.uint32 and set(np.unique(labels)) <= {0, 1}
    assert "object(s)" in tab.message.text() and "embedded" in tab.message.text()
    assert tab.last_preview.embedded
    preview(tab, qtbot)  # same image: the embedding is reused
    assert not tab.last_preview.embedded and "cached image embedding" in tab.message.text()


def test_points_and_exemplar_modes_preview(make_tab, qtbot, tiny_sam3_folder):
    tab = make_tab()
    ready(tab, tiny_sam3_folder)
    points = set_mode(tab, "2d_points")
    assert type(points).__name__ == "Points" and points.name == "SAM3 points"
    points.add([[20, 22]])
    tab.negative.setChecked(True)
    points.add([[50, 60]])
    assert list(points.features["positive"]) == [True, False]
    assert preview(tab, qtbot).shape == (64, 80)
    exemplars = set_mode(tab, "2d_exemplar")
    assert exemplars.name == "SAM3 exemplar boxes"
    exemplars.add_rectangles(np.array([[8, 10], [32, 36]]))
    labels = preview(tab, qtbot)
    assert labels.shape == (64, 80) and tab.last_preview is not None


def test_live_points_preview_on_each_click(make_tab, qtbot, tiny_sam3_folder):
    tab = make_tab()
    ready(tab, tiny_sam3_folder)
    layer = set_mode(tab, "live_points")
    assert layer.name == "SAM3 live points"
    layer.add([[20, 22]])  # a click: no button press
    qtbot.waitUntil(lambda: tab.last_preview is not None and tab.worker is None, timeout=60_000)
    first = tab.last_preview
    layer.add([[22, 25]])
    qtbot.waitUntil(lambda: tab.last_preview is not first and tab.worker is None, timeout=60_000)
    assert not tab.last_preview.embedded  # later clicks reuse the image embedding


def test_a_2d_preview_on_a_stack_works_on_the_current_slice_and_accepts_as_a_slice_pair(make_tab, qtbot, tiny_sam3_folder, make_project):
    from napari_training_assistant.napari.session import ProjectSession

    project = make_project(splits=())
    session = ProjectSession()
    session.open(project.root)
    tab = make_tab(session)
    stack = np.stack([cells() * (z + 1) for z in range(4)])
    ready(tab, tiny_sam3_folder, image=stack, name="stack")
    tab.viewer.dims.set_current_step(0, 2)
    layer = set_mode(tab, "2d_box")
    layer.add_rectangles(np.array([[2, 8, 10], [2, 8, 36], [2, 32, 36], [2, 32, 10]]))
    labels = preview(tab, qtbot)
    assert labels.shape == (4, 64, 80) and not labels[[0, 1, 3]].any()
    tab.viewer.layers["SAM3 preview labels"].data[2, 12:20, 14:24] = 1  # the user corrects the preview
    records = tab.accept()
    assert records is not None, tab.message.text()
    [record] = records
    assert record.slice_index == 2 and record.spatial_dims == "2d" and record.source == "sam3_preview"
    assert record.prompts and record.prompts[0]["frame"] == 2 and record.prompts[0]["type"] == "box"
    assert project.dataset.load(record.pair_id)[1][12:20, 14:24].all()


def test_in_an_instance_project_each_accepted_object_keeps_its_own_id(make_tab, qtbot, tiny_sam3_folder, make_project):
    from napari_training_assistant.napari.session import ProjectSession

    project = make_project(output_mode="instance", splits=())
    session = ProjectSession()
    session.open(project.root)
    tab = make_tab(session)
    assert [tab.mask_mode.itemText(i) for i in range(tab.mask_mode.count())] == ["instance"]
    ready(tab, tiny_sam3_folder)
    layer = set_mode(tab, "2d_box")
    layer.add_rectangles(np.array([[8, 10], [32, 36]]))
    layer.add_rectangles(np.array([[8, 36], [32, 60]]))
    preview(tab, qtbot)
    labels = tab.viewer.layers["SAM3 preview labels"]
    touching = np.zeros_like(labels.data)  # two touching objects, as SAM3 labels them (the k-th box: id k)
    touching[10:30, 12:34] = 1
    touching[10:30, 34:58] = 2
    labels.data = touching

    [record] = tab.accept()

    assert record.mask_mode == "instance" and record.source == "sam3_preview", tab.message.text()
    mask = project.dataset.load(record.pair_id)[1]
    assert set(np.unique(mask[10:30, 12:34])) == {1} and set(np.unique(mask[10:30, 34:58])) == {2}
    assert set(np.unique(mask)) == {0, 1, 2}


def test_refusals_are_one_red_line(make_tab, qtbot, tiny_sam3_folder, tmp_path):
    tab = make_tab()
    assert not tab.preview_button.isEnabled()
    ready(tab, tmp_path)
    set_mode(tab, "2d_box")
    assert not tab.run() and is_error(tab) and "neither model.safetensors" in tab.message.text()
    tab.image_folder.setText(str(tiny_sam3_folder))
    assert not tab.run() and "has no prompt yet" in tab.message.text()
    set_mode(tab, "3d_multiplex")
    assert tab.message.text() == "" and not is_error(tab)  # the error of the other mode is gone (issue 17 #8)
    assert tab.preview_button.text() == "Propagate"
    assert not tab.run() and "needs a 3D stack" in tab.message.text()
    assert tab.accept() is None and "Training Project Folder" in tab.message.text()


def test_config_is_saved_and_restored_on_reopen(make_tab, make_project, tiny_sam3_folder):
    from napari_training_assistant.napari.session import ProjectSession

    project = make_project(splits=())
    session = ProjectSession()
    session.open(project.root)
    tab = make_tab(session)
    tab.image_folder.setText(str(tiny_sam3_folder))
    tab.image_folder.editingFinished.emit()
    tab.device.setCurrentText("cpu")
    tab.threshold.setValue(0.35)
    tab.mode.setCurrentIndex(tab.mode.findData("2d_exemplar"))
    saved = project.sam3
    assert (saved.image_model_folder, saved.device, saved.threshold, saved.prompt_mode) == (str(tiny_sam3_folder), "cpu", 0.35, "2d_exemplar")
    other = ProjectSession()
    other.open(project.root)
    again = make_tab(other)
    assert again.image_folder.text() == str(tiny_sam3_folder)
    assert (again.device.currentText(), again.threshold.value(), again.current_mode()) == ("cpu", 0.35, "2d_exemplar")


def test_the_frame_writer_batches_frames_per_tick(make_napari_viewer, qtbot):
    from napari_training_assistant.napari.frame_writer import FrameWriter

    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((12, 8, 8), np.uint16))
    writer = FrameWriter(layer, interval_ms=20, frames_per_tick=4)
    writer.start()
    producer = threading.Thread(target=lambda: [writer.put(z, np.full((8, 8), z + 1, np.uint16)) for z in range(12)])
    producer.start()
    producer.join()
    qtbot.waitUntil(lambda: writer.count == 12, timeout=5_000)
    writer.finish()
    assert [int(layer.data[z, 0, 0]) for z in range(12)] == list(range(1, 13))
    assert writer.refreshes <= 12 // 4 + 1  # a few refreshes, not one per frame


def stack_in_3d_mode(tab, folder, depth: int):
    """A `depth`-slice stack, the tiny SAM3 as image model on CPU, and the 3D prompt layer."""
    ready(tab, folder, image=np.stack([cells() for _ in range(depth)]), name="stack")
    return set_mode(tab, "3d_multiplex")


def test_propagation_on_cpu_runs_the_sam3_0_tracker_into_the_propagated_layer(make_tab, qtbot, tiny_sam3_folder, tmp_path, monkeypatch):
    from napari_training_assistant.napari.frame_writer import FrameWriter

    put = []
    original = FrameWriter.put
    monkeypatch.setattr(FrameWriter, "put", lambda self, z, labels: put.append((z, labels)) or original(self, z, labels))
    tab = make_tab()
    assert tab.mode.itemText(tab.mode.findData("3d_multiplex")) == "3D propagation"
    layer = stack_in_3d_mode(tab, tiny_sam3_folder, 6)
    (tmp_path / "sam3.1_multiplex.pt").write_bytes(b"")
    tab.multiplex_folder.setText(str(tmp_path))  # SAM3.1 needs CUDA: on CPU the image folder's tracker runs
    assert layer.name == "SAM3 3D prompts" and layer.ndim == 3
    layer.add([[4, 20, 22], [1, 45, 50]])
    assert tab.run(), tab.message.text()
    assert tab.message.text() == "Propagating with the SAM3.0 tracker (transformers) on cpu from slice(s) 1, 4…"
    qtbot.waitUntil(lambda: tab.worker is None, timeout=60_000)
    assert not is_error(tab), tab.message.text()
    assert tab.message.text() == "Propagated through 6 slice(s) with the SAM3.0 tracker (transformers) on cpu."
    assert sorted(z for z, _ in put) == list(range(6))  # every slice once
    propagated = tab.viewer.layers["SAM3 propagated labels"].data
    assert propagated.shape == (6, 64, 80)
    for z, labels in put:
        np.testing.assert_array_equal(propagated[z], labels)


def test_stop_ends_a_propagation(make_tab, qtbot, tiny_sam3_folder):
    tab = make_tab()
    stack_in_3d_mode(tab, tiny_sam3_folder, 60).add([[30, 20, 22]])
    assert tab.run(), tab.message.text()
    qtbot.waitUntil(lambda: tab.writer is not None and tab.writer.count >= 2, timeout=60_000)
    assert tab.stop_button.isEnabled()
    tab.stop_button.click()
    qtbot.waitUntil(lambda: tab.worker is None, timeout=60_000)
    assert tab.message.text().startswith("Stopped after") and not is_error(tab)
    assert int(tab.message.text().split()[2]) < 60 and not tab.stop_button.isEnabled()


def test_refused_propagation_is_one_red_line_and_leaves_the_layers_unchanged(make_tab, tiny_sam3_folder, tmp_path):
    tab = make_tab()
    stack_in_3d_mode(tab, tmp_path / "empty", 4)
    previous = tab.viewer.add_labels(np.ones((4, 64, 80), np.uint16), name="SAM3 propagated labels")
    layers = [(layer.name, layer.data.copy()) for layer in tab.viewer.layers]
    (tmp_path / "sam3.1_multiplex.pt").write_bytes(b"")
    tab.multiplex_folder.setText(str(tmp_path))
    tab.image_folder.setText("")
    assert not tab.run() and is_error(tab) and "needs CUDA; on CPU choose a SAM3.0 Hugging Face folder" in tab.message.text()
    tab.image_folder.setText(str(tiny_sam3_folder))
    assert not tab.run() and is_error(tab) and "on one or more slices of the stack first" in tab.message.text()
    assert "\n" not in tab.message.text() and tab.worker is None
    assert [layer.name for layer in tab.viewer.layers] == [name for name, _ in layers]
    for layer, (_, data) in zip(tab.viewer.layers, layers, strict=True):
        np.testing.assert_array_equal(layer.data, data)
    assert previous.data.all()


def test_closing_the_widget_stops_a_propagation(make_napari_viewer, qtbot, tiny_sam3_folder):
    from napari_training_assistant.napari.widget import TrainingAssistantWidget

    widget = TrainingAssistantWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    tab = widget.page("SAM3")
    stack_in_3d_mode(tab, tiny_sam3_folder, 200).add([[1, 20, 22]])
    assert tab.run(), tab.message.text()
    qtbot.waitUntil(lambda: tab.writer is not None and tab.writer.count >= 2, timeout=60_000)
    assert widget.close()
    assert tab.worker is None and "Stopped after" in tab.message.text()
    assert tab.viewer.layers["SAM3 propagated labels"].data.shape[0] == 200


# ------------------------------------------------------------------------------------------------ concepts, large images
def count_detections(tab, tiny_sam3_folder, monkeypatch) -> list:
    """Wrap the loaded backend's `detect` so that the test sees each model run."""
    from napari_training_assistant.annotate.model_folder import validate_model_folder

    backend = tab.annotator.image_backend(validate_model_folder(tiny_sam3_folder, "2d", "cpu"))
    calls, original = [], backend.detect
    monkeypatch.setattr(backend, "detect", lambda *a, **kw: calls.append(a) or original(*a, **kw))
    return calls


def test_a_text_prompt_finds_scored_instances_and_the_score_relabels_without_sam3(make_tab, qtbot, tiny_sam3_folder, monkeypatch):
    tab = make_tab()
    ready(tab, tiny_sam3_folder)
    calls = count_detections(tab, tiny_sam3_folder, monkeypatch)
    layer = set_mode(tab, "2d_text")
    assert type(layer).__name__ == "Shapes" and tab.plane.text.isEnabled() and tab.plane.scan_button.isEnabled()
    tab.plane.text.setText("")
    assert not tab.run() and is_error(tab) and "text prompt is empty" in tab.message.text()
    assert "SAM3 preview labels" not in tab.viewer.layers and calls == []
    tab.plane.text.setText("nucleus")
    tab.plane.score.setValue(0.05)
    low = preview(tab, qtbot).copy()
    assert len(calls) == 1 and tab.plane.result is not None
    found = tab.plane.result.found
    assert np.array_equal(low, found.labels(0.05))
    scores = tab.viewer.layers["SAM3 preview labels"].features
    assert list(scores["index"]) == [0, *sorted(set(np.unique(low)) - {0})] and scores["score"][1:].between(0.05, 1).all()
    tab.plane.score.setValue(0.95)  # re-labelled at once, no model run
    assert len(calls) == 1 and "re-labelled" in tab.message.text()
    assert np.array_equal(tab.viewer.layers["SAM3 preview labels"].data, found.labels(0.95))
    set_mode(tab, "2d_box")
    assert not tab.plane.scan_button.isEnabled() and not tab.plane.text.isEnabled()


def test_a_scan_of_a_large_image_streams_every_tile_and_stop_ends_it(make_tab, qtbot, tiny_sam3_folder):
    tab = make_tab()
    ready(tab, tiny_sam3_folder, image=cells((700, 900)))
    set_mode(tab, "2d_text")
    tab.plane.text.setText("nucleus")
    tab.plane.score.setValue(0.05)
    tab.plane.scan_button.click()
    qtbot.waitUntil(lambda: tab.worker is None, timeout=120_000)
    assert not is_error(tab), tab.message.text()
    assert "Scanned 24 of 24 tile(s)" in tab.message.text()  # 224-pixel tiles, 56 overlap: 4 rows of 6
    labels = tab.viewer.layers["SAM3 preview labels"].data
    assert labels.dtype == np.uint32 and np.array_equal(labels, tab.plane.result.found.labels(0.05))
    tab.plane.scan_button.click()
    tab.stop()
    qtbot.waitUntil(lambda: tab.worker is None, timeout=120_000)
    assert "Stopped after" in tab.message.text() and len(tab.plane.result.found.tiles) < 24


def test_run_in_view_segments_only_the_tiles_on_screen(make_tab, qtbot, tiny_sam3_folder):
    tab = make_tab()
    ready(tab, tiny_sam3_folder, image=cells((700, 900)))
    set_mode(tab, "2d_text")
    tab.plane.text.setText("nucleus")
    image = tab.viewer.layers["cells"]
    image.corner_pixels = np.array([[0, 0], [100, 100]])  # what napari sets when the view shows the top-left corner
    assert tab.plane.visible_window(image, (700, 900)) == (0, 101, 0, 101)
    tab.plane.view_button.click()
    qtbot.waitUntil(lambda: tab.worker is None, timeout=120_000)
    assert "1 of 1 tile(s)" in tab.message.text(), tab.message.text()


def test_a_box_on_a_large_image_is_segmented_in_a_window_around_it(make_tab, qtbot, tiny_sam3_folder):
    tab = make_tab()
    ready(tab, tiny_sam3_folder, image=cells((700, 900)))
    layer = set_mode(tab, "2d_box")
    layer.add_rectangles(np.array([[500, 600], [560, 680]]))
    labels = preview(tab, qtbot)
    assert "in the window" in tab.message.text() and labels.shape == (700, 900)
    assert not labels[:300].any() and not labels[:, :400].any()  # nothing outside the 224-pixel window
    tab.plane.tile.setValue(100)
    assert not tab.run() and "tile size 100 is smaller than the model's input of 224 px" in tab.message.text()


def test_accepting_from_a_large_image_keeps_the_labelled_region(make_tab, qtbot, tiny_sam3_folder, make_project):
    from napari_training_assistant.napari.session import ProjectSession

    project = make_project(output_mode="instance", splits=())
    session = ProjectSession()
    session.open(project.root)
    tab = make_tab(session)
    ready(tab, tiny_sam3_folder, image=cells((700, 900)))
    set_mode(tab, "2d_text")
    tab.plane.text.setText("nucleus")
    tab.plane.scan_button.click()
    qtbot.waitUntil(lambda: tab.worker is None, timeout=120_000)
    found = np.zeros((700, 900), np.uint32)
    found[300:340, 400:450] = 1  # what the user keeps after correcting
    tab.viewer.layers["SAM3 preview labels"].data = found
    [record] = tab.accept()
    assert record.image_shape[-2:] == [40 + 128, 50 + 128], tab.message.text()
    assert {"type": "region", "yx": [236, 336], "shape": [168, 178], "image_shape": [700, 900]} in record.prompts
    assert any(p["type"] == "text" and p["text"] == "nucleus" for p in record.prompts)
    assert project.sam3.text == "nucleus"


def test_a_scan_works_on_dask_and_multiscale_layers(make_tab, qtbot, tiny_sam3_folder):
    da = pytest.importorskip("dask.array")
    tab = make_tab()
    full = cells((700, 900))
    tab.viewer.add_image([da.from_array(full, chunks=256), full[::2, ::2]], name="pyramid", multiscale=True)
    ready(tab, tiny_sam3_folder, image=da.from_array(full, chunks=256), name="lazy")
    for name in ("pyramid", "lazy"):
        tab.image_combo.setCurrentText(name)
        set_mode(tab, "2d_text")
        tab.plane.text.setText("nucleus")
        tab.plane.scan_button.click()
        qtbot.waitUntil(lambda: tab.worker is None, timeout=120_000)
        assert "Scanned 24 of 24 tile(s)" in tab.message.text(), (name, tab.message.text())
        assert tab.viewer.layers["SAM3 preview labels"].data.shape == (700, 900)
    pyramid = tab.viewer.layers["pyramid"]
    pyramid.corner_pixels = np.array([[0, 0], [50, 50]])  # on screen at level 1: 100 x 100 level-0 pixels
    pyramid._data_level = 1
    assert tab.plane.visible_window(pyramid, (700, 900)) == (0, 102, 0, 102)


def test_a_text_prompt_to_a_folder_without_a_tokenizer_changes_no_layer(make_tab, tiny_sam3_folder, tmp_path):
    import shutil

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_sam3_folder / name, tmp_path)
    tab = make_tab()
    ready(tab, tmp_path, image=cells((700, 900)))
    set_mode(tab, "2d_text")
    tab.plane.text.setText("nucleus")
    before = [layer.name for layer in tab.viewer.layers]
    for start in (tab.run, tab.plane.scan_button.click):
        start()
        assert is_error(tab) and "no text tokenizer" in tab.message.text() and tab.worker is None
        assert [layer.name for layer in tab.viewer.layers] == before
