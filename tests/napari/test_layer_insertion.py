"""A prediction's layers inserted in steps: the same layers as napari's own insertion, a few steps later."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.napari.layer_insertion import (
    STAND_IN,
    TOOL_OVERLAYS,
    add_labels_in_steps,
    image_layers,
    insert_in_steps,
    warm_labels_layer,
)


def _built_tools(viewer, layer) -> set[str]:
    built = viewer.window._qt_viewer.canvas._layer_overlay_to_visual.get(layer, {})
    return {key for key in TOOL_OVERLAYS if layer._overlays[key] in built}


def test_the_layer_is_inserted_hidden_and_inactive_then_shown_active_with_its_tools(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((64, 80), np.float32))
    layer = add_labels_in_steps(viewer, np.zeros((64, 80), np.uint32), name="cells prediction", opacity=0.6)
    assert list(viewer.layers) == [image, layer] and layer.opacity == 0.6 and layer.name == "cells prediction"
    # the first step: inserted, not yet shown, the image still active, no tool visuals built
    assert not layer.visible and viewer.layers.selection.active is image and not _built_tools(viewer, layer)
    layer.paint((10, 10), 3)  # its data is ready
    assert layer.data[10, 10] == 3
    qtbot.waitUntil(lambda: _built_tools(viewer, layer) == set(TOOL_OVERLAYS), timeout=5000)
    assert layer.visible and viewer.layers.selection.active is layer and viewer.layers.selection == {layer}
    assert all(layer._overlays[key].visible for key in TOOL_OVERLAYS)
    for mode in ("paint", "polygon", "pan_zoom", "paint"):
        layer.mode = mode
    assert layer.mode == "paint" and layer._overlays["brush_stroke"].enabled and not layer._overlays["polygon"].enabled


def test_a_hidden_layer_stays_hidden(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = add_labels_in_steps(viewer, np.zeros((32, 32), np.uint8), name="mask", visible=False)
    qtbot.waitUntil(lambda: _built_tools(viewer, layer) == set(TOOL_OVERLAYS), timeout=5000)
    assert not layer.visible and viewer.layers.selection.active is layer


def test_a_layer_removed_before_its_steps_is_no_error(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    kept = viewer.add_image(np.zeros((32, 32), np.float32))
    layer = add_labels_in_steps(viewer, np.zeros((32, 32), np.uint8), name="gone")
    viewer.layers.remove(layer)
    qtbot.waitUntil(lambda: all(layer._overlays[key].visible for key in TOOL_OVERLAYS), timeout=5000)
    assert list(viewer.layers) == [kept] and viewer.layers.selection.active is not layer
    assert not viewer.window._qt_viewer.canvas._layer_overlay_to_visual.get(layer)


def test_a_failed_insertion_leaves_the_layer_list_activating_new_layers(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()

    def refused(self, layer):
        raise ValueError("refused")

    monkeypatch.setattr(type(viewer), "add_layer", refused)
    with pytest.raises(ValueError, match="refused"):
        add_labels_in_steps(viewer, np.zeros((32, 32), np.uint8), name="refused")
    monkeypatch.undo()
    assert viewer.layers._activate_on_insert is True
    added = viewer.add_labels(np.zeros((8, 8), np.uint8))
    assert viewer.layers.selection.active is added


def test_several_layers_are_inserted_one_per_step_and_the_last_becomes_active(make_napari_viewer, qtbot):
    from napari.layers import Labels

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((32, 32), np.float32))
    made = [*image_layers(np.ones((2, 32, 32), np.float32), channel_axis=0, name=["p0", "p1"]), Labels(np.zeros((32, 32), np.uint8))]
    insert_in_steps(viewer, made)
    assert list(viewer.layers) == [image, made[0]] and viewer.layers.selection.active is image
    qtbot.waitUntil(lambda: viewer.layers.selection.active is made[2], timeout=5000)
    assert list(viewer.layers) == [image, *made] and all(layer.visible for layer in made)
    qtbot.waitUntil(lambda: _built_tools(viewer, made[2]) == set(TOOL_OVERLAYS), timeout=5000)


def test_image_layers_are_those_napari_adds(make_napari_viewer):
    viewer = make_napari_viewer()
    data = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    options = {"name": ["a", "b"], "colormap": "magma", "blending": "additive", "opacity": 0.7, "contrast_limits": [[0, 1]] * 2}
    ours, napari_own = image_layers(data, channel_axis=0, **options), viewer.add_image(data, channel_axis=0, **options)
    for mine, theirs in zip(ours, napari_own, strict=True):
        assert (mine.name, mine.colormap.name, mine.blending, mine.opacity) == (theirs.name, theirs.colormap.name, theirs.blending, theirs.opacity)
        assert list(mine.contrast_limits) == list(theirs.contrast_limits) and np.array_equal(mine.data, theirs.data)
    assert image_layers(data[0], name="one")[0].data.shape == (16, 16)


def test_warming_runs_once_and_needs_no_viewer():
    warm_labels_layer()
    warm_labels_layer()
    assert warm_labels_layer.cache_info().hits >= 1


def _controls(viewer, layer):
    return viewer.window._qt_viewer.controls.widgets.get(layer)


def test_the_layer_controls_are_built_a_step_after_the_insertion(make_napari_viewer, qtbot):
    from napari._qt.layer_controls.qt_labels_controls import QtLabelsControls

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32))
    layer = add_labels_in_steps(viewer, np.zeros((32, 32), np.uint8), name="labels")
    stand_in = _controls(viewer, layer)
    assert stand_in is not None and not isinstance(stand_in, QtLabelsControls)  # a blank stand-in at first
    qtbot.waitUntil(lambda: viewer.layers.selection.active is layer, timeout=5000)
    container = viewer.window._qt_viewer.controls
    assert isinstance(_controls(viewer, layer), QtLabelsControls) and container.currentWidget() is _controls(viewer, layer)
    assert STAND_IN not in [container.widget(i).objectName() for i in range(container.count())]


def test_a_layer_selected_before_its_controls_shows_them_once_built(make_napari_viewer, qtbot):
    from napari._qt.layer_controls.qt_labels_controls import QtLabelsControls

    viewer = make_napari_viewer()
    layer = add_labels_in_steps(viewer, np.zeros((32, 32), np.uint8), name="labels")
    viewer.layers.selection.active = layer  # the user clicks it in the layer list at once
    container = viewer.window._qt_viewer.controls
    assert container.currentWidget() is _controls(viewer, layer)  # the stand-in, no KeyError
    qtbot.waitUntil(lambda: isinstance(_controls(viewer, layer), QtLabelsControls), timeout=5000)
    assert container.currentWidget() is _controls(viewer, layer)


def test_a_layer_removed_before_its_controls_leaves_none(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    kept = viewer.add_image(np.zeros((32, 32), np.float32))
    layers = image_layers(np.ones((2, 32, 32), np.float32), channel_axis=0, name=["p0", "p1"])
    insert_in_steps(viewer, layers)
    viewer.layers.remove(layers[0])
    qtbot.waitUntil(lambda: viewer.layers.selection.active is layers[1], timeout=5000)
    assert list(viewer.layers) == [kept, layers[1]]
    assert _controls(viewer, layers[0]) is None and _controls(viewer, layers[1]).objectName() != STAND_IN
