"""A saved prediction as Labels layer data: a TIFF read whole, an OME-Zarr output opened lazily (its
levels as a multiscale layer), one layer per channel of a multilabel prediction; its probabilities, when
saved, as Image layers. No torch here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .layer_insertion import image_layers, insert_in_steps

LayerData = tuple[Any, dict[str, Any], str]

PROBABILITY_KEY = "nta_probability"  # metadata of a probability layer the plugin shows: never an image to choose


def read_prediction(project, record) -> Any:
    """The labels of a recorded prediction: an array (TIFF), or the levels of an OME-Zarr output (lazy)."""
    path = project.layout.absolute(record.path)
    if record.parameters.get("format") == "ome-zarr" or path.is_dir():
        return ome_zarr_levels(path)
    from ..project.image_io import read_tiff

    return read_tiff(path)


def ome_zarr_levels(image: Path) -> list:
    """The levels of an OME-Zarr image folder (full resolution first) as dask arrays: read only where
    napari looks. For an output still being written, add its layer with `cache=False`: napari caches
    the dask chunks it reads, which would hide the blocks written after a first look."""
    import dask.array as da

    return [da.from_zarr(str(Path(image) / d["path"])) for d in _multiscales(Path(image))["datasets"]]


def has_channel_axis(image: Path) -> bool:
    """Whether an OME-Zarr image's first axis is a channel axis (a multilabel prediction)."""
    axes = _multiscales(Path(image)).get("axes", [])
    return bool(axes) and axes[0].get("type") == "channel"


def _multiscales(image: Path) -> dict[str, Any]:
    return json.loads((image / ".zattrs").read_text())["multiscales"][0]


def labels_layers(data: Any, name: str, multilabel: bool, class_names: list[str], **meta: Any) -> list[LayerData]:
    """One Labels layer, or one per channel of multilabel (C, *spatial) data; `data` is an array or a
    list of levels (a multiscale layer when it has more than one)."""
    levels = data if isinstance(data, list) else [data]
    if not multilabel:
        return [_layer(levels, name, meta)]
    count = levels[0].shape[0]
    names = [class_names[c] if c < len(class_names) else f"channel_{c}" for c in range(count)]
    return [_layer([level[c] for level in levels], f"{name} {names[c]}", meta) for c in range(count)]


def _layer(levels: list, name: str, meta: dict[str, Any]) -> LayerData:
    if len(levels) == 1:  # napari refuses a multiscale list of one level
        return levels[0], {"name": name, **meta}, "labels"
    return levels, {"name": name, "multiscale": True, **meta}, "labels"


def probability_layer(data: Any, name: str, class_names: list[str], **meta: Any) -> LayerData:
    """The (C, *spatial) probabilities (an array or a list of levels; uint8 means x255) as one Image layer
    per channel, drawn over the image additively."""
    levels = data if isinstance(data, list) else [data]
    count = levels[0].shape[0]
    names = [f"{name} {class_names[c] if c < len(class_names) else f'channel_{c}'}" for c in range(count)]
    top = 255 if str(levels[0].dtype) == "uint8" else 1.0
    own = {"name": names, "channel_axis": 0, "contrast_limits": [[0, top]] * count, "colormap": "magma",
           "blending": "additive", "opacity": 0.7, "metadata": {PROBABILITY_KEY: True}, **meta}
    if len(levels) > 1:
        own["multiscale"] = True
    return (levels if len(levels) > 1 else levels[0]), own, "image"


def add_labels(viewer, layers: list[LayerData], **meta: Any) -> list:
    """Add `labels_layers` (and `probability_layer`) output to the viewer (`meta`, e.g. scale and translate,
    added to each), in steps that keep the viewer responsive (`insert_in_steps`: the first layer is in the
    viewer on return, the others follow)."""
    from napari.layers import Labels

    added = []
    for data, own, kind in layers:
        added += [Labels(data, **own, **meta)] if kind == "labels" else image_layers(data, **own, **meta)
    insert_in_steps(viewer, added)
    return added
