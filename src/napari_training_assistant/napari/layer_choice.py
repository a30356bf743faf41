"""Choosing an image layer in a tab (the viewer's Image layers in a combo that keeps or restores the choice, or
takes a layer just added), pairing a labels layer with its image by name, and the full-resolution array of any
layer."""

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


PAIR_SUFFIXES = ("labels", "label", "mask", "masks", "seg", "segmentation", "annotation", "annotations", "gt", "ground truth")


def pairs_with(image_name: str, labels_name: str) -> bool:
    """Whether a labels layer is named like the image's labels: the image's name plus a suffix such as
    ` labels`, `_mask`, `-seg` (case-insensitive)."""
    if not labels_name.lower().startswith(image_name.lower()) or len(labels_name) == len(image_name):
        return False
    return labels_name[len(image_name) :].strip(" _-.").lower() in PAIR_SUFFIXES


def inserted_layer(event, kind: str):
    """The layer an `inserted` event of the viewer's layer list brought, when it is a napari `kind` layer and
    not a prediction's probabilities (which the plugin itself adds)."""
    from .prediction_layers import PROBABILITY_KEY

    layer = getattr(event, "value", None)
    if getattr(event, "type", None) != "inserted" or type(layer).__name__ != kind:
        return None
    return None if getattr(layer, "metadata", {}).get(PROBABILITY_KEY) else layer


def refill_image_combo(combo: QComboBox, viewer, session, remember_key: str, prefer: str | None = None) -> None:
    """List the viewer's image layers; choose `prefer` (a layer just added), else keep the current choice, else
    the one remembered in the project."""
    project = session.project
    remembered = project.config.ui.selected_layers.get(remember_key, "") if project is not None else ""
    current = prefer or combo.currentText() or remembered
    names = [layer.name for layer in image_layers(viewer)]
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)


def chosen_image(combo: QComboBox, viewer):
    return next((layer for layer in image_layers(viewer) if layer.name == combo.currentText()), None)
