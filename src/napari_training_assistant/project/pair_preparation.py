"""Turn a user's image and mask into the arrays a pair stores, checked against the architecture."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DatasetError
from .masks import PreparedMask, align_pair, prepare_mask
from .pixel_values import refuse_unusable_pixels
from .schemas import ArchitectureConfig
from .user_input import DatasetInputError, echo


@dataclass(frozen=True)
class PreparedPair:
    image: np.ndarray  # channel axis first when the image has one
    mask: PreparedMask
    spatial_dims: str
    image_channels: int | None
    mask_mode: str = "binary"  # as applied: the default binary becomes instance in an instance project


def prepare_pair(
    image: Any,
    mask: Any,
    *,
    architecture: ArchitectureConfig,
    class_names: Sequence[str],
    mask_mode: str = "binary",
    channel_axis: int | None = None,
    mask_channel_axis: int | None = None,
    slice_index: int | None = None,
    target_class: str | int | None = None,
    label_map: Mapping[int, int] | None = None,
) -> PreparedPair:
    if isinstance(mask, (list, tuple)):
        masks = [np.asarray(m) for m in mask]
        if len({m.shape for m in masks}) > 1:
            raise DatasetError(f"multilabel masks differ in shape ({', '.join(str(m.shape) for m in masks)}): give one mask per channel, all of the image's shape")
        mask = np.stack(masks)
        mask_channel_axis = 0
    if mask_mode == "multilabel" and mask_channel_axis is None:
        raise DatasetInputError("a multilabel mask needs its channel axis (`mask_channel_axis`) or one file per channel")
    image_arr, mask_arr, shapes = align_pair(
        np.asarray(image),
        np.asarray(mask),
        image_channel_axis=channel_axis,
        mask_channel_axis=mask_channel_axis,
        slice_index=slice_index,
        ndim_hint=architecture.spatial_dims,
    )
    channels = int(image_arr.shape[0]) if channel_axis is not None else None
    if (channels or 1) != architecture.input_channels:
        raise DatasetInputError(
            f"image has {channels or 1} channel(s) but the architecture expects input_channels "
            f"{architecture.input_channels}: declare the right channel axis (`channel_axis`) or change the architecture"
        )
    refuse_unusable_pixels(image_arr, "image", "replace them (e.g. numpy.nan_to_num) or crop them away, then add the pair")
    if image_arr.dtype == bool:
        image_arr = image_arr.astype(np.uint8)
    if architecture.output_mode == "instance" and mask_mode == "binary":
        mask_mode = "instance"  # the default mask mode keeps object ids in an instance project
    class_id, class_name = _target_class(target_class, class_names, mask_mode)
    if label_map is not None and mask_mode != "label-map":
        raise DatasetInputError(f"a label map (`label_map`) is only used with mask mode label-map (`mask_mode`), not {mask_mode}")
    prepared = prepare_mask(
        mask_arr,
        mask_mode,  # type: ignore[arg-type]
        num_classes=None if mask_mode in ("binary", "multilabel", "instance") else _num_classes(architecture),
        target_class_id=class_id,
        target_class_name=class_name,
        label_map=label_map,
        channel_axis=0 if mask_mode == "multilabel" else None,
    )
    _check_fits_output(prepared, architecture, mask_mode)
    return PreparedPair(np.ascontiguousarray(image_arr), prepared, shapes.spatial_dims, channels, mask_mode)


def _num_classes(architecture: ArchitectureConfig) -> int:
    return architecture.num_classes if architecture.output_mode == "multiclass" else 2


def _target_class(target: str | int | None, class_names: Sequence[str], mask_mode: str) -> tuple[int | None, str | None]:
    if mask_mode != "target-class":
        if target is not None:
            raise DatasetInputError(f"a target class (`target_class`) is only used with mask mode target-class (`mask_mode`), not {mask_mode}")
        return None, None
    if target is None:
        raise DatasetInputError(f"`mask_mode` target-class needs a target class (`target_class`): one of {', '.join(class_names[1:])}")
    if isinstance(target, int):
        if not 1 <= target < len(class_names):
            raise DatasetInputError(f"target class id {target} (`target_class`) is not a foreground class id (1..{len(class_names) - 1})")
        return target, class_names[target]
    if target not in class_names[1:]:
        raise DatasetInputError(f"unknown target class {echo(target)} (`target_class`): the project's classes are {', '.join(class_names[1:])}")
    return class_names.index(target), target


def _check_fits_output(prepared: PreparedMask, architecture: ArchitectureConfig, mask_mode: str) -> None:
    mode = architecture.output_mode
    if (mode == "instance") != (mask_mode == "instance"):
        if mode == "instance":
            raise DatasetInputError(
                f"the project's output mode is instance: add label masks with one id per object (`mask_mode` instance), not {mask_mode}"
            )
        raise DatasetInputError(f"`mask_mode` instance needs an instance project, this one is {mode}: use `mask_mode` binary or multiclass")
    if mode == "instance":
        return
    if mode == "multilabel":
        if mask_mode != "multilabel":
            raise DatasetInputError("the project's output mode is multilabel: add masks with `mask_mode` multilabel")
        found = prepared.array.shape[0]
        if found != architecture.output_channels:
            raise DatasetError(
                f"multilabel mask has {found} channel(s) but the architecture has output_channels {architecture.output_channels}"
            )
        return
    if mask_mode == "multilabel":
        raise DatasetInputError(f"`mask_mode` multilabel needs a multilabel project, this one is {mode}")
    top = max(prepared.saved_labels, default=0)
    limit = 1 if mode == "binary" else architecture.num_classes - 1
    if top > limit:
        raise DatasetInputError(
            f"saved mask labels go up to {top} but a {mode} project allows 0..{limit}: "
            + ("use `mask_mode` binary" if mode == "binary" else "check `mask_mode` and the project's num_classes")
        )
