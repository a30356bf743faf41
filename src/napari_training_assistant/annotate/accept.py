"""Accept a SAM3 preview into the project's dataset through the same mask preparation as the Dataset tab.

Forms: a 2D preview on a 2D image is one pair; on a stack it becomes a slice pair (the image's slice with the
preview), never a stack paired with a 2D mask. Propagated 3D labels become one stack pair (`stack`, for 3D
projects) or one slice pair per labelled slice (`slices`, for 2D projects)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..project import TrainingProject
from ..project.schemas.manifest import PairRecord
from .errors import Sam3Error

AcceptForm = Literal["slice", "slices", "stack"]


def accept_preview(
    project: TrainingProject,
    image: np.ndarray,
    labels: np.ndarray,
    *,
    prompts: list[dict[str, Any]],
    form: AcceptForm = "slice",
    slice_index: int | None = None,
    rgb: bool = False,
    mask_mode: str = "binary",
    target_class: str | int | None = None,
    image_layer: str | None = None,
    mask_layer: str | None = None,
    crop_margin: int | None = None,
) -> list[PairRecord]:
    """Add the preview as pair(s) with source `sam3_preview` and the prompts that made it; returns the records.
    With `crop_margin` (a 2D preview of a large image), the pair is the labelled region plus that margin, and
    a `region` record says where it lies in the image."""
    labels = np.asarray(labels)
    if not np.any(labels):
        raise Sam3Error("the preview is empty: run a prompt that finds an object before accepting")
    if crop_margin is not None and labels.ndim == 2:
        image, labels, region = crop_to_labels(image, labels, crop_margin)
        prompts = [*prompts, region]
    image = np.asarray(image)
    channel_axis = image.ndim - 1 if rgb else None
    spatial = image.ndim - (1 if rgb else 0)
    common = dict(
        mask_mode=mask_mode,
        target_class=target_class,
        channel_axis=channel_axis,
        image_layer=image_layer,
        mask_layer=mask_layer,
        source="sam3_preview",
    )
    if spatial == 2:
        if labels.shape != image.shape[:2]:
            raise Sam3Error(f"preview shape {labels.shape} does not match the image plane {image.shape[:2]}: run the preview again")
        return [project.dataset.add(image, labels, prompts=prompts, **common)]
    if labels.ndim == 2:  # a 2D preview of one slice of a stack
        if form != "slice":
            raise Sam3Error("a 2D preview covers one slice: accept it as a slice pair, or propagate through the stack for a stack pair")
        if slice_index is None:
            raise Sam3Error("which slice the preview belongs to is unknown: run the preview again on the slice shown")
        return [project.dataset.add(image, labels, slice_index=slice_index, prompts=prompts, **common)]
    if form == "stack":
        return [project.dataset.add(image, labels, prompts=prompts, **common)]
    if form == "slice":
        if slice_index is None:
            raise Sam3Error("choose the slice to accept (move the z slider) or accept the whole stack")
        chosen = [slice_index]
    else:
        chosen = [z for z in range(labels.shape[0]) if np.any(labels[z])]
    return [project.dataset.add(image, labels, slice_index=z, prompts=prompts, **common) for z in chosen]


def crop_to_labels(image, labels: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The bounding box of the labelled pixels grown by `margin`, cut from a 2D (or RGB) image and its labels
    (only that region of the image is read); the region as a record."""
    rows, cols = np.flatnonzero(labels.any(axis=1)), np.flatnonzero(labels.any(axis=0))
    y0, x0 = max(int(rows[0]) - margin, 0), max(int(cols[0]) - margin, 0)
    y1, x1 = min(int(rows[-1]) + 1 + margin, labels.shape[0]), min(int(cols[-1]) + 1 + margin, labels.shape[1])
    region = {"type": "region", "yx": [y0, x0], "shape": [y1 - y0, x1 - x0], "image_shape": list(labels.shape)}
    return np.asarray(image[y0:y1, x0:x1]), labels[y0:y1, x0:x1], region
