"""npe2 reader: a Training Project Folder dropped on napari opens as its pairs (image + mask layers)
and its latest prediction (a block-wise OME-Zarr prediction lazily, as a multiscale layer). Anything
else is left to other readers (None)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..project import TrainingProject
from .prediction_layers import LayerData, labels_layers, read_prediction


def _single_path(path: str | list[str]) -> Path | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The project reader when `path` is a Training Project Folder, else None."""
    folder = _single_path(path)
    if folder is None or not folder.is_dir() or not TrainingProject.is_project(folder):
        return None
    return read_project


def read_project(path: str | list[str]) -> list[LayerData]:
    """Layer data of every pair (image, then its mask) and the project's latest prediction.

    Only the first pair is visible at first (pairs may differ in size and would overlap)."""
    project = TrainingProject.open(_single_path(path))
    class_names = project.config.class_names
    layers: list[LayerData] = []
    for index, pair in enumerate(project.dataset.pairs):
        image, mask = project.dataset.load(pair.pair_id)
        visible = index == 0
        meta: dict[str, Any] = {"name": pair.pair_id, "visible": visible, "metadata": {"pair_id": pair.pair_id, "split": pair.split}}
        if pair.image_channels is not None:
            meta |= {"channel_axis": 0, "name": [f"{pair.pair_id} ch{c}" for c in range(image.shape[0])]}
        layers.append((image, meta, "image"))
        layers += labels_layers(mask, f"{pair.pair_id} mask", pair.mask_mode == "multilabel", class_names, visible=visible, opacity=0.5)
    predictions = project.predictions.registry.predictions
    if predictions:
        latest = predictions[-1]
        labels = read_prediction(project, latest)
        multilabel = latest.parameters.get("output_mode") == "multilabel"
        layers += labels_layers(labels, f"{latest.prediction_id} ({latest.checkpoint_id})", multilabel, class_names, visible=False)
    return layers

