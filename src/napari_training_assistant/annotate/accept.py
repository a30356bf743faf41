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
) -> list[PairRecord]:
    """Add the preview as pair(s) with source `sam3_preview` and the prompts that made it; returns the records."""
    image, labels = np.asarray(image), np.asarray(labels)
    if not np.any(labels):
        raise Sam3Error("the preview is empty: run a prompt that finds an object before accepting")
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
