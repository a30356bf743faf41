"""A Labels layer inserted into the viewer in short steps of the event loop instead of one long one.

napari builds everything of a new Labels layer on the GUI thread when it is inserted: its vispy visual, its
controls, the visuals of its polygon and brush-stroke tools, its first slice and texture, and the switch of
the layer controls to it. For a 512x512 prediction that is one 100-150 ms freeze of the viewer on 2 cores.
Here the same work is spread over steps `STEP_MS` apart, between which the viewer draws and takes input:
the layer is inserted hidden, with its tool overlays hidden and without becoming the active layer; it is
shown, made active and given its tool overlays in the next steps (napari builds an overlay's visual when it
is shown). What napari does only the first time (importing the colour code of the label colormap, computing
vispy's dash patterns) is done beforehand in a worker thread by `warm_labels_layer`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

TOOL_OVERLAYS = ("polygon", "brush_stroke")
STEP_MS = 15  # between two steps: the viewer draws, takes input and runs its other timers


def add_labels_in_steps(viewer, data: Any, **kwargs: Any):
    """`viewer.add_labels(data, **kwargs)` in steps; returns the layer at once, its data ready. It is shown
    (unless `visible=False`; until then napari keeps it in pan-zoom mode, as any hidden layer) and made active
    in the next two steps, and its polygon and right-click fill tools follow a few tens of ms later. A napari
    without these private hooks gets a plain insertion."""
    from napari.layers import Labels

    layer = Labels(data, **kwargs)
    overlays = getattr(layer, "_overlays", {})
    tools = [overlays[key] for key in TOOL_OVERLAYS if key in overlays and overlays[key].visible]
    for overlay in tools:
        overlay.visible = False
    steps: list[Callable[[], None]] = []
    if layer.visible:
        layer.visible = False
        steps.append(functools.partial(setattr, layer, "visible", True))
    layers = viewer.layers
    activates = getattr(layers, "_activate_on_insert", None) is True
    if activates:
        steps.append(lambda: _activate(layers, layer))
        layers._activate_on_insert = False
    try:
        viewer.add_layer(layer)
    finally:
        if activates:
            layers._activate_on_insert = True
    steps += [functools.partial(setattr, overlay, "visible", True) for overlay in tools]
    run_in_steps(steps)
    return layer


def _activate(layers, layer) -> None:
    if layer in layers:
        layers.selection.active = layer


def run_in_steps(steps: list[Callable[[], None]]) -> None:
    """Run `steps` one after the other, `STEP_MS` apart, in the GUI thread's event loop."""
    from qtpy.QtCore import QTimer

    def next_step() -> None:
        steps.pop(0)()
        if steps:
            QTimer.singleShot(STEP_MS, next_step)

    if steps:
        QTimer.singleShot(STEP_MS, next_step)


@functools.cache
def warm_labels_layer() -> None:
    """Do once, in a worker thread, what napari does on the GUI thread the first time it builds a Labels layer
    and its polygon tool: import the colour-space code of the label colormap and compute vispy's dash patterns
    (together longer than the rest of the insertion)."""
    from napari.utils.colormaps import label_colormap
    from vispy.visuals.line.dash_atlas import DashAtlas

    label_colormap(49, seed=0.5, background_value=0)
    DashAtlas()
