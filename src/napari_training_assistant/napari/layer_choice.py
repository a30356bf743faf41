"""Choosing an image layer in a tab (the viewer's Image layers in a combo that keeps or restores the choice),
and the full-resolution array of any layer."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox


def image_layers(viewer) -> list:
    from napari.layers import Image

    return [layer for layer in viewer.layers if isinstance(layer, Image)]


def image_data(layer) -> Any:
    """The full-resolution array of a layer (level 0 of a multiscale image or labels layer): the one place the
    tabs read layer data from."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def refill_image_combo(combo: QComboBox, viewer, session, remember_key: str) -> None:
    """List the viewer's image layers; keep the current choice, else the one remembered in the project."""
    project = session.project
    remembered = project.config.ui.selected_layers.get(remember_key, "") if project is not None else ""
    current = combo.currentText() or remembered
    names = [layer.name for layer in image_layers(viewer)]
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)


def chosen_image(combo: QComboBox, viewer):
    return next((layer for layer in image_layers(viewer) if layer.name == combo.currentText()), None)
