"""Create or reuse the SAM3 prompt and result layers by their configured names, and read prompts from them.

Prompt polarity is a per-item `positive` feature: new items take the current default (the tab's
Positive/Negative switch); positive items are green, negative ones red."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layer_choice import image_data

POSITIVE, NEGATIVE = "#33dd55", "#ff4040"
SHAPES_MODES = ("2d_box", "2d_exemplar", "2d_text")


def _layer_named(viewer, name: str, kind: type):
    layer = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401 (LayerList has no get)
    if layer is not None and not isinstance(layer, kind):
        raise ValueError(f"layer {name!r} exists but is a {type(layer).__name__}, not {kind.__name__}: rename it or change the SAM3 layer names")
    return layer


def spatial_geometry(image_layer) -> dict[str, Any]:
    """scale/translate of the image's spatial axes, so prompt and result layers overlay it."""
    ndim = image_layer.ndim
    return {"scale": list(image_layer.scale)[-ndim:], "translate": list(image_layer.translate)[-ndim:]}


def ensure_prompt_layer(viewer, mode: str, name: str, image_layer, positive: bool = True):
    """The prompt layer for `mode` (Shapes in rectangle mode for boxes/exemplars, Points otherwise), created
    over `image_layer` when missing, selected and put in its drawing mode."""
    from napari.layers import Points, Shapes

    kind = Shapes if mode in SHAPES_MODES else Points
    layer = _layer_named(viewer, name, kind)
    if layer is None:
        geometry = spatial_geometry(image_layer) if image_layer is not None else {}
        ndim = image_layer.ndim if image_layer is not None else 2  # napari's ndim leaves out the RGB axis
        common = dict(name=name, ndim=ndim, features={"positive": np.zeros(0, dtype=bool)}, **geometry)
        if kind is Shapes:
            layer = viewer.add_shapes(edge_width=2, face_color="transparent", edge_color=POSITIVE, **common)
        else:
            layer = viewer.add_points(size=max(3.0, _image_extent(image_layer) / 80), border_color="white", face_color=POSITIVE, **common)
    set_polarity(layer, positive)
    viewer.layers.selection.active = layer
    layer.mode = "add_rectangle" if kind is Shapes else "add"
    return layer


def _image_extent(image_layer) -> float:
    if image_layer is None:
        return 256.0
    shape = np.shape(image_data(image_layer))
    return float(max(shape[-3:-1] if getattr(image_layer, "rgb", False) else shape[-2:]))


def set_polarity(layer, positive: bool) -> None:
    """New items drawn in `layer` are positive (green) or negative (red)."""
    layer.feature_defaults = {"positive": positive}
    color = POSITIVE if positive else NEGATIVE
    if hasattr(layer, "current_edge_color") and not hasattr(layer, "current_border_color"):
        layer.current_edge_color = color
    else:
        layer.current_face_color = color


def polarity(layer) -> list[bool]:
    """The `positive` flag of every item (True where the feature is missing)."""
    count = len(layer.data)
    features = getattr(layer, "features", None)
    if features is None or "positive" not in features or len(features) != count:
        return [True] * count
    return [bool(v) for v in features["positive"]]


def ensure_labels_layer(viewer, name: str, shape: tuple[int, ...], image_layer, empty=None):
    """A Labels layer `name` of `shape` over the image (replaced when its shape no longer fits); a new one
    holds `empty()` (e.g. a chunked array for a large image), else zeros."""
    from napari.layers import Labels

    layer = _layer_named(viewer, name, Labels)
    if layer is not None and layer.data.shape == tuple(shape):
        return layer
    if layer is not None:
        viewer.layers.remove(layer)
    geometry = spatial_geometry(image_layer) if image_layer is not None else {}
    data = empty() if empty is not None else np.zeros(shape, dtype=np.uint16)
    return viewer.add_labels(data, name=name, opacity=0.5, **geometry)
