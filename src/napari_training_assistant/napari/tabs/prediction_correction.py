"""Predict tab, the predict -> correct -> retrain loop: which prediction layer is the one to correct or to
reuse, and accepting a (corrected) prediction as a training pair (`project.corrections`)."""

from __future__ import annotations

import numpy as np

from ..layer_choice import image_data

PREDICTION_KEY = "nta_prediction"  # metadata of a prediction layer: prediction id, image layer, channel axis
EDITED_KEY = "nta_edited"  # a prediction layer someone painted in: never replaced by the next prediction


def mark_edited(layer, event=None) -> None:
    layer.metadata[EDITED_KEY] = True


def unedited_prediction(viewer, image_name: str, shape: tuple[int, ...]):
    """The newest prediction layer of `image_name` with that shape that nobody painted in, else None."""
    for layer in reversed(viewer.layers):
        info = layer.metadata.get(PREDICTION_KEY)
        if info and info["image_layer"] == image_name and layer.metadata.get(EDITED_KEY) is False and layer.data.shape == tuple(shape):
            return layer
    return None


def correction_layer(viewer):
    """The selected prediction layer, else the newest one still in the viewer."""
    active = viewer.layers.selection.active
    if active is not None and PREDICTION_KEY in active.metadata:
        return active
    return next((layer for layer in reversed(viewer.layers) if PREDICTION_KEY in layer.metadata), None)


def accept(tab):
    """Image + the (corrected) prediction layer -> a training pair (`add_corrected_prediction`); the record or None."""
    from ...project.corrections import add_corrected_prediction

    project, viewer = tab.session.project, tab.viewer
    layer = correction_layer(viewer)
    if layer is None:
        tab.show_message("Predict an image first: its prediction layer, corrected or not, is what is accepted.", error=True)
        return None
    info = layer.metadata[PREDICTION_KEY]
    if info["image_layer"] not in viewer.layers:
        tab.show_message(f"the image layer {info['image_layer']!r} of {info['prediction_id']} is no longer in the viewer: add it back", error=True)
        return None
    output_mode = project.architecture.output_mode
    mode = output_mode if output_mode in ("multiclass", "instance") else "binary"  # instance: object ids kept
    record = tab.run_action(
        add_corrected_prediction, project, info["prediction_id"], np.asarray(layer.data),
        image=image_data(viewer.layers[info["image_layer"]]), channel_axis=info["channel_axis"],
        mask_mode=mode, image_layer=info["image_layer"], mask_layer=layer.name,
    )  # fmt: skip
    if record is not None:
        c = record.correction
        ranked = f"; it was suggested #{record.suggestion['rank']} of {record.suggestion['of']}" if record.suggestion else ""
        tab.show_message(
            f"Added {record.pair_id} ({record.split}) from {c['prediction_id']}: {c['changed_pixels']} pixels and "
            f"{c['objects_edited']} objects corrected ({c['objects_predicted']} predicted, {c['objects_corrected']} now){ranked}."
        )
    return record
