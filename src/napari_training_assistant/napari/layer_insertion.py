"""New layers inserted into the viewer in short steps of the event loop instead of one long one.

napari builds everything of a new layer on the GUI thread when it is inserted: its vispy visual, its controls,
for a Labels layer the visuals of its polygon and brush-stroke tools, its first slice and texture, and the
switch of the layer controls to it. For a 512x512 prediction that is one 100-150 ms freeze of the viewer on
2 cores, and one more per layer inserted with it (probabilities). Here the same work is spread over steps
`STEP_MS` apart, between which the viewer draws and takes input: the first layer is inserted at once, hidden,
with its tool overlays hidden, without becoming the active layer and without its layer controls (a blank
stand-in until the next step builds them); the others are inserted so in the next steps, then each is shown,
the last is made active (as napari would) and the tool overlays are shown (napari builds an overlay's visual
when it is shown). What napari does only the first time (importing the colour
code of the label colormap, computing vispy's dash patterns) is done beforehand in a worker thread by
`warm_labels_layer`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

TOOL_OVERLAYS = ("polygon", "brush_stroke")  # a Labels layer's
STEP_MS = 15  # between two steps: the viewer draws, takes input and runs its other timers
STAND_IN = "nta_controls_stand_in"  # object name of the blank controls of a layer whose controls come a step later


def add_labels_in_steps(viewer, data: Any, **kwargs: Any):
    """`viewer.add_labels(data, **kwargs)` in steps (`insert_in_steps`); returns the layer at once."""
    from napari.layers import Labels

    layer = Labels(data, **kwargs)
    insert_in_steps(viewer, [layer])
    return layer


def image_layers(data: Any, channel_axis: int | None = None, **kwargs: Any) -> list:
    """The Image layers `viewer.add_image(data, channel_axis=..., **kwargs)` would add, not inserted."""
    from napari.layers import Image
    from napari.layers.utils.stack_utils import split_channels

    if channel_axis is None:
        return [Image(data, **kwargs)]
    return [Image(part, **own) for part, own, _ in split_channels(data, channel_axis, **kwargs)]


def insert_in_steps(viewer, layers: list) -> None:
    """Insert `layers` (made, not yet in the viewer) in steps. The first is in the viewer when this returns,
    each other one a step later; their data are ready at once. Each is shown (unless made with
    `visible=False`; until then napari keeps it in pan-zoom mode, as any hidden layer), then the last becomes
    the active layer, then a Labels layer's polygon and right-click fill tools follow, a few tens of ms in
    all. Each layer's controls are built a step after its insertion. Where napari lacks the private hooks used
    (`_overlays`, `_activate_on_insert`, the controls container's `_add` and `widgets`), its own behaviour
    stays."""
    shows, tools = [], []
    for layer in layers:
        overlays = getattr(layer, "_overlays", {})
        for overlay in (overlays[key] for key in TOOL_OVERLAYS if key in overlays and overlays[key].visible):
            overlay.visible = False
            tools.append(functools.partial(setattr, overlay, "visible", True))
        if layer.visible:
            layer.visible = False
            shows.append(functools.partial(setattr, layer, "visible", True))
    if not layers:
        return
    _insert_inactive(viewer, layers[0])
    steps = [functools.partial(_build_controls, viewer, layers[0])]
    for layer in layers[1:]:
        steps += [functools.partial(_insert_inactive, viewer, layer), functools.partial(_build_controls, viewer, layer)]
    run_in_steps([*steps, *shows, functools.partial(_activate, viewer.layers, layers[-1]), *tools])


def _insert_inactive(viewer, layer) -> None:
    """Insert `layer` without making it active and, where napari's controls container allows, without
    building its controls: a blank stand-in holds its place until `_build_controls`."""
    layers = viewer.layers
    activates = getattr(layers, "_activate_on_insert", None) is True
    container = _controls_container(viewer)
    if activates:
        layers._activate_on_insert = False
    try:
        if container is None:
            viewer.add_layer(layer)
        else:
            with layers.events.inserted.blocker(container._add):
                viewer.add_layer(layer)
            from qtpy.QtWidgets import QFrame

            stand_in = QFrame()
            stand_in.setObjectName(STAND_IN)
            container.addWidget(stand_in)
            container.widgets[layer] = stand_in  # napari's removal and selection find a widget for the layer
    finally:
        if activates:
            layers._activate_on_insert = True


def _controls_container(viewer):
    """napari's layer-controls container when it builds a widget per layer by the private hooks used here
    (`_add`, `widgets`), else None (napari's own insertion then)."""
    from napari.settings import get_settings

    container = getattr(getattr(getattr(viewer, "window", None), "_qt_viewer", None), "_controls", None)
    dynamic = getattr(getattr(get_settings(), "experimental", None), "dynamic_layer_controls", False)
    if dynamic or not (callable(getattr(container, "_add", None)) and isinstance(getattr(container, "widgets", None), dict)):
        return None
    return container


def _build_controls(viewer, layer) -> None:
    """Replace `layer`'s stand-in by the controls napari builds on insertion (no-op when removed meanwhile or
    built by napari)."""
    container = _controls_container(viewer)
    stand_in = container.widgets.get(layer) if container is not None else None
    if stand_in is None or stand_in.objectName() != STAND_IN:
        return
    shown = container.currentWidget() is stand_in
    del container.widgets[layer]
    container.removeWidget(stand_in)
    stand_in.deleteLater()
    container._add(SimpleNamespace(value=layer))
    if shown and layer in container.widgets:
        container.setCurrentWidget(container.widgets[layer])


def _activate(layers, layer) -> None:
    if layer in layers:
        layers.selection.active = layer


_running: list[list] = []  # the step lists not yet run to their end


def run_in_steps(steps: list[Callable[[], None]]) -> None:
    """Run `steps` one after the other, `STEP_MS` apart, in the GUI thread's event loop."""
    from qtpy.QtCore import QTimer

    def next_step() -> None:
        try:
            steps.pop(0)()
        finally:
            if steps:
                QTimer.singleShot(STEP_MS, next_step)
            else:
                _running.remove(steps)

    if steps:
        _running.append(steps)
        QTimer.singleShot(STEP_MS, next_step)


def steps_pending() -> bool:
    """Whether insertions started by `insert_in_steps` still have steps to run (all their layers are in the
    viewer, shown and active once this is False)."""
    return bool(_running)


@functools.cache
def warm_labels_layer() -> None:
    """Do once, in a worker thread, what napari does on the GUI thread the first time it builds a Labels layer
    and its polygon tool: import the colour-space code of the label colormap and compute vispy's dash patterns
    (together longer than the rest of the insertion)."""
    from napari.utils.colormaps import label_colormap
    from vispy.visuals.line.dash_atlas import DashAtlas

    label_colormap(49, seed=0.5, background_value=0)
    DashAtlas()
