"""Mask preparation and image/mask shape checks for training pairs (numpy only).

Every refusal is a `DatasetError` whose one-line message says what is wrong and how to fix it.
Nothing is guessed silently: channel axes are declared by the caller, label transforms are
spelled out in `PreparedMask.label_transform` so that a manifest can be audited later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from .errors import DatasetError
from .pixel_values import refuse_unusable_pixels
from .schemas.manifest import MaskModeName as MaskMode
from .user_input import DatasetInputError

MASK_MODES: tuple[str, ...] = get_args(MaskMode)
SpatialDims = Literal["2d", "3d"]

_MAX_CHANNELS_HINT = 4  # an undeclared extra axis this small is probably channels
_MAX_LISTED = 10  # labels listed in a message before "..."


@dataclass(frozen=True, eq=False)
class PreparedMask:
    """A mask ready to save, with an auditable record of how its labels were made.

    `array` is uint8 when the saved labels fit, else uint16; multilabel masks are channel-first.
    """

    array: np.ndarray
    source_labels: list[int]
    saved_labels: list[int]
    label_transform: str
    target_class_name: str | None = None
    warning: str | None = None  # a problem worth telling the user that does not stop the pair (instance masks)


class MaskWarning(UserWarning):
    """A mask was saved as given but probably does not say what the user meant."""


# --------------------------------------------------------------------------- label helpers


def _fmt_labels(labels: Sequence[int]) -> str:
    shown = ", ".join(str(v) for v in labels[:_MAX_LISTED])
    return f"[{shown}, ...]" if len(labels) > _MAX_LISTED else f"[{shown}]"


def unique_labels(mask: np.ndarray) -> list[int]:
    """Sorted unique values of an integer mask, as Python ints."""
    return [int(v) for v in np.unique(mask)]


def as_label_array(mask: Any) -> np.ndarray:
    """Return `mask` as a non-negative integer array, refusing what is not a label mask.

    bool becomes uint8; floats holding whole numbers become int64; fractional, NaN, negative,
    non-numeric and empty masks are refused.
    """
    arr = np.asarray(mask)
    if arr.size == 0:
        raise DatasetError(f"mask is empty (shape {arr.shape}): give a mask with at least one pixel")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        arr = _float_to_int(arr)
    elif arr.dtype.kind not in "iu":
        raise DatasetError(
            f"mask has dtype {arr.dtype}, not a label type: give an integer (or bool) label mask, 0 = background"
        )
    if arr.dtype.kind == "i" and arr.min() < 0:
        raise DatasetError(
            f"mask has negative values (min {int(arr.min())}): labels must be >= 0 with 0 = background; "
            "remap the mask before adding it"
        )
    return arr


def _float_to_int(arr: np.ndarray) -> np.ndarray:
    refuse_unusable_pixels(arr, "mask", "give an integer label mask, 0 = background")
    fractional = arr[arr != np.round(arr)]
    if fractional.size:
        raise DatasetError(
            f"mask has fractional values (e.g. {float(fractional.flat[0]):g}) in a {arr.dtype} array: "
            "give an integer label mask (0 = background), or threshold probabilities first"
        )
    if arr.min() < 0:
        raise DatasetError(
            f"mask has negative values (min {float(arr.min()):g}): labels must be >= 0 with 0 = background; "
            "remap the mask before adding it"
        )
    if arr.max() >= 2**53:
        raise DatasetError(f"mask has values too large for labels (max {float(arr.max()):g}): remap the mask")
    return arr.astype(np.int64)


def _fit_dtype(max_label: int) -> type[np.unsignedinteger]:
    if max_label <= np.iinfo(np.uint8).max:
        return np.uint8
    if max_label <= np.iinfo(np.uint16).max:
        return np.uint16
    raise DatasetError(f"saved label {max_label} does not fit in uint16: use fewer than 65536 classes")


def _finish(out: np.ndarray, source: list[int], transform: str, name: str | None = None) -> PreparedMask:
    saved = unique_labels(out)
    out = out.astype(_fit_dtype(saved[-1]))  # always a copy: never alias the caller's array
    return PreparedMask(out, source, saved, transform, name)


def _check_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DatasetError(f"{what} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise DatasetError(f"{what} must be >= {minimum}, got {value}")
    return int(value)


def _check_num_classes(num_classes: Any, required: bool, mode: str) -> int | None:
    if num_classes is None:
        if required:
            raise DatasetError(
                f"mask mode {mode} needs num_classes (background included), e.g. num_classes=3"
            )
        return None
    return _check_int(num_classes, "num_classes (background included)", 2)


def looks_like_instances(mask: np.ndarray, num_classes: int) -> bool:
    """True when a mask has more distinct nonzero labels than a `num_classes` semantic mask can hold."""
    return count_nonzero_labels(mask) > num_classes - 1


def count_nonzero_labels(mask: np.ndarray) -> int:
    """Number of distinct nonzero values in `mask`."""
    labels = np.unique(np.asarray(mask))
    return int(np.count_nonzero(labels))


# --------------------------------------------------------------------------- modes


def prepare_mask(
    mask: Any,
    mode: MaskMode,
    *,
    num_classes: int | None = None,
    target_class_id: int | None = None,
    target_class_name: str | None = None,
    label_map: Mapping[Any, Any] | None = None,
    channel_axis: int | None = None,
) -> PreparedMask:
    """Turn a user mask into the labels a training pair stores, refusing anything ambiguous.

    binary: nonzero -> 1. target-class: nonzero -> `target_class_id`. multiclass: labels kept,
    must lie in 0..num_classes-1. label-map: `{source: target}`, unmapped labels -> 0.
    multilabel: one binary channel per class, from `channel_axis` of an array or from a
    sequence of per-class masks; saved channel-first.
    """
    if mode not in MASK_MODES:
        raise DatasetError(f"unknown mask mode {mode!r}: use one of {', '.join(MASK_MODES)}")
    if mode == "multilabel":
        return _prepare_multilabel(mask, num_classes, channel_axis, target_class_name)
    if channel_axis is not None:
        raise DatasetInputError(
            f"`channel_axis` is only for multilabel masks, but mask mode is {mode}: "
            "drop `channel_axis` or use `mask_mode` multilabel"
        )
    arr = as_label_array(mask)
    if mode == "binary":
        _check_num_classes(num_classes, False, mode)
        return _finish((arr > 0).astype(np.uint8), unique_labels(arr), "mask > 0 -> 1", target_class_name)
    if mode == "instance":
        return _prepare_instance(arr, target_class_name)
    if mode == "target-class":
        return _prepare_target_class(arr, num_classes, target_class_id, target_class_name)
    if mode == "multiclass":
        return _prepare_multiclass(arr, num_classes, target_class_name)
    return _prepare_label_map(arr, num_classes, label_map, target_class_name)


def _prepare_target_class(
    arr: np.ndarray, num_classes: Any, target_class_id: Any, name: str | None
) -> PreparedMask:
    n = _check_num_classes(num_classes, False, "target-class")
    if target_class_id is None:
        raise DatasetError("mask mode target-class needs target_class_id (>= 1), e.g. target_class_id=2")
    cid = _check_int(target_class_id, "target_class_id", 1)
    if n is not None and cid >= n:
        raise DatasetError(
            f"target_class_id {cid} is outside 1..{n - 1} (num_classes is {n}): pick an existing class "
            "or raise num_classes"
        )
    out = np.where(arr > 0, cid, 0)
    transform = f"nonzero -> {cid}" + (f" (class {name!r})" if name else "")
    return _finish(out, unique_labels(arr), transform, name)


def _prepare_multiclass(arr: np.ndarray, num_classes: Any, name: str | None) -> PreparedMask:
    n = _check_num_classes(num_classes, True, "multiclass")
    assert n is not None
    source = unique_labels(arr)
    outside = [v for v in source if v >= n]
    if outside:
        found = sum(1 for v in source if v != 0)
        if found > n - 1:
            raise DatasetInputError(
                f"mask has {found} distinct nonzero labels but num_classes is {n}: it looks like an instance "
                "map; use `mask_mode` binary or target-class, or a label-map"
            )
        raise DatasetInputError(
            f"mask has labels {_fmt_labels(outside)} outside 0..{n - 1} (num_classes is {n}): "
            "raise num_classes, or remap them with `mask_mode` label-map"
        )
    return _finish(arr, source, f"identity (labels 0..{n - 1})", name)


def _parse_label_map(label_map: Any) -> dict[int, int]:
    if label_map is None or not isinstance(label_map, Mapping) or not label_map:
        raise DatasetError(
            "mask mode label-map needs a non-empty label_map {source_label: target_label}, e.g. {1: 1, 2: 1, 5: 2}"
        )
    parsed: dict[int, int] = {}
    for key, value in label_map.items():
        parsed[_map_int(key, "source")] = _map_int(value, "target")
    return dict(sorted(parsed.items()))


def _map_int(value: Any, what: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DatasetError(f"label_map {what} label {value!r} is not an integer >= 0: fix the label map")
    return int(value)


def _prepare_label_map(arr: np.ndarray, num_classes: Any, label_map: Any, name: str | None) -> PreparedMask:
    n = _check_num_classes(num_classes, False, "label-map")
    mapping = _parse_label_map(label_map)
    too_big = sorted({t for t in mapping.values() if t >= n}) if n is not None else []
    if too_big:
        raise DatasetError(
            f"label_map maps onto labels {_fmt_labels(too_big)} outside 0..{n - 1} (num_classes is {n}): "
            "fix the label map or raise num_classes"
        )
    values, inverse = np.unique(arr, return_inverse=True)
    targets = np.array([mapping.get(int(v), 0) for v in values], dtype=np.int64)
    out = targets[inverse.reshape(-1)].reshape(arr.shape)
    unmapped = [int(v) for v in values if v != 0 and int(v) not in mapping]
    transform = f"map {mapping}; others -> 0"
    if unmapped:
        noun = "label" if len(unmapped) == 1 else "labels"
        transform += f"; {len(unmapped)} unmapped {noun} -> 0: {_fmt_labels(unmapped)}"
    return _finish(out, [int(v) for v in values], transform, name)


def _prepare_instance(arr: np.ndarray, name: str | None) -> PreparedMask:
    """Object ids kept and renumbered 1..N in order of their old ids (uint16, uint32 beyond 65535 objects)."""
    from scipy import ndimage
    from skimage.segmentation import relabel_sequential

    source = unique_labels(arr)
    objects = sum(1 for v in source if v)
    if objects > np.iinfo(np.uint32).max:
        raise DatasetError(f"mask has {objects} objects, more than uint32 holds: split the image")
    renumbered, _, _ = relabel_sequential(arr)
    out = renumbered.astype(np.uint16 if objects <= np.iinfo(np.uint16).max else np.uint32)
    warning = None
    if objects:
        _, pieces = ndimage.label(out > 0, structure=np.ones((3,) * out.ndim, dtype=bool))
        if pieces >= 2 * objects:
            warning = (
                f"{pieces} separate objects share {objects} id(s): it looks like a semantic mask, and instance mode takes each id for one object; "
                "give every object its own id (e.g. skimage.measure.label or the napari "
                "labels tools) or use a binary project"
            )
    return PreparedMask(out, source, unique_labels(out), f"instance ids kept, renumbered 1..{objects}", name, warning)


def _prepare_multilabel(
    mask: Any, num_classes: Any, channel_axis: int | None, name: str | None
) -> PreparedMask:
    stack = _multilabel_stack(mask, channel_axis)
    channels = stack.shape[0]
    n = _check_int(num_classes, "num_classes (one per channel)", 1) if num_classes is not None else None
    if n is not None and n != channels:
        raise DatasetError(
            f"multilabel mask has {channels} channels but num_classes is {n}: give one channel per class"
        )
    out = (stack > 0).astype(np.uint8)
    noun = "channel" if channels == 1 else "channels"
    transform = f"multilabel: {channels} {noun}, nonzero -> 1 per channel"
    return _finish(out, unique_labels(stack), transform, name)


def _multilabel_stack(mask: Any, channel_axis: int | None) -> np.ndarray:
    if isinstance(mask, list | tuple):
        if channel_axis is not None:
            raise DatasetInputError(
                "multilabel mask given as a list of per-class masks and a `channel_axis`: pass one or the other"
            )
        if not mask:
            raise DatasetError("multilabel mask list is empty: give one binary mask per class")
        parts = [as_label_array(m) for m in mask]
        shapes = sorted({p.shape for p in parts})
        if len(shapes) > 1:
            raise DatasetError(f"multilabel masks have different shapes {shapes}: give masks of one shape")
        stack = np.stack(parts, axis=0)
    else:
        arr = as_label_array(mask)
        if channel_axis is None:
            raise DatasetInputError(
                f"multilabel mask of shape {arr.shape} has no declared channel axis: pass `channel_axis` "
                "(the class axis) or a list of per-class masks"
            )
        stack = to_channel_first(arr, channel_axis)
    if stack.ndim not in (3, 4):
        raise DatasetError(
            f"multilabel mask has shape {stack.shape} (channel first): each channel must be 2D (Y, X) or 3D (Z, Y, X)"
        )
    return stack


# --------------------------------------------------------------------------- shapes and axes


def _norm_axis(axis: Any, ndim: int, field: str, shape: tuple[int, ...]) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not -ndim <= axis < ndim:
        raise DatasetInputError(
            f"`{field}` {axis!r} is not an axis of shape {shape}: use 0..{ndim - 1} (or -1 for last)"
        )
    return int(axis) % ndim


def to_channel_first(array: np.ndarray, channel_axis: int | None, field: str = "channel_axis") -> np.ndarray:
    """Move the declared channel axis to axis 0; with `channel_axis=None` return the array as is.

    `field` names the input the axis came from in errors."""
    array = np.asarray(array)
    if channel_axis is None:
        return array
    axis = _norm_axis(channel_axis, array.ndim, field, array.shape)
    return np.moveaxis(array, axis, 0)


def spatial_shape(shape: Sequence[int], channel_axis: int | None, field: str = "channel_axis") -> tuple[int, ...]:
    """`shape` without its channel axis (None: no channel axis); `field` names the axis's input in errors."""
    shape = tuple(int(s) for s in shape)
    if channel_axis is None:
        return shape
    axis = _norm_axis(channel_axis, len(shape), field, shape)
    return shape[:axis] + shape[axis + 1 :]


def take_slice(image: np.ndarray, slice_index: int, channel_axis: int | None) -> np.ndarray:
    """Take Z slice `slice_index` of a 3D stack; Z is the first non-channel axis.

    Axis order is kept; a channel axis after Z moves down by one.
    """
    image = np.asarray(image)
    spatial = spatial_shape(image.shape, channel_axis)
    if len(spatial) != 3:
        raise DatasetInputError(
            f"`slice_index` given but the image (shape {image.shape}) is not a 3D stack: drop it"
        )
    z_axis = 1 if channel_axis is not None and channel_axis % image.ndim == 0 else 0
    _check_slice_index(slice_index, spatial[0])
    return np.take(image, int(slice_index), axis=z_axis)


def _check_slice_index(slice_index: Any, depth: int) -> None:
    if (
        isinstance(slice_index, bool)
        or not isinstance(slice_index, int | np.integer)
        or not 0 <= slice_index < depth
    ):
        raise DatasetInputError(f"`slice_index` {slice_index!r} is outside the stack: use 0..{depth - 1}")


@dataclass(frozen=True)
class PairShapes:
    """Result of `check_pair_shapes`: the spatial shape the saved pair will have."""

    spatial_shape: tuple[int, ...]
    spatial_dims: SpatialDims
    slice_image: bool  # take `slice_index` from the image
    slice_mask: bool  # take `slice_index` from the mask too (it is a 3D mask)


def check_pair_shapes(
    image_shape: Sequence[int],
    mask_shape: Sequence[int],
    *,
    image_channel_axis: int | None,
    mask_channel_axis: int | None = None,
    slice_index: int | None = None,
    ndim_hint: SpatialDims | int | None = None,
) -> PairShapes:
    """Check that image and mask cover the same pixels; refuse with a fix when they do not.

    Spatial shapes (without channel axes) must be equal. With `slice_index`, a 3D image
    becomes one 2D slice (and so does a 3D mask). `ndim_hint` ("2d"/"3d" or 2/3) is the
    project's dimensionality, checked against the saved pair.
    """
    image_shape = tuple(int(s) for s in image_shape)
    mask_shape = tuple(int(s) for s in mask_shape)
    img_sp = spatial_shape(image_shape, image_channel_axis)
    mask_sp = spatial_shape(mask_shape, mask_channel_axis, "mask_channel_axis")
    _check_spatial_ndim(img_sp, image_shape, "image")
    if len(mask_sp) not in (2, 3):
        _refuse_mask_ndim(mask_sp, mask_shape, img_sp)
    if slice_index is not None:
        result = _sliced_pair(img_sp, mask_sp, image_shape, mask_shape, slice_index)
    else:
        _check_same_spatial(img_sp, mask_sp, image_shape, mask_shape, image_channel_axis, mask_channel_axis)
        dims: SpatialDims = "3d" if len(img_sp) == 3 else "2d"
        result = PairShapes(img_sp, dims, False, False)
    _check_ndim_hint(result, ndim_hint, image_shape)
    return result


def _check_spatial_ndim(sp: tuple[int, ...], shape: tuple[int, ...], what: str) -> None:
    if len(sp) not in (2, 3):
        raise DatasetError(
            f"{what} has shape {shape} with {len(sp)} spatial axes: expected 2D (Y, X) or 3D (Z, Y, X), "
            "plus a declared channel axis when it has channels"
        )


def _refuse_mask_ndim(mask_sp: tuple[int, ...], mask_shape: tuple[int, ...], img_sp: tuple[int, ...]) -> None:
    extra = _extra_axis(mask_shape, img_sp)
    if extra is not None:
        raise DatasetInputError(
            f"mask has shape {mask_shape} but the image spatial shape is {img_sp}: axis {extra} of size "
            f"{mask_shape[extra]} looks like colour/channels; give a single-channel label mask, "
            f"or use `mask_mode` multilabel with `mask_channel_axis`={extra}"
        )
    _check_spatial_ndim(mask_sp, mask_shape, "mask")


def _extra_axis(shape: tuple[int, ...], other: tuple[int, ...]) -> int | None:
    """Index of a small leading/trailing axis whose removal turns `shape` into `other`."""
    if len(shape) != len(other) + 1:
        return None
    if shape[0] <= _MAX_CHANNELS_HINT and shape[1:] == other:
        return 0
    if shape[-1] <= _MAX_CHANNELS_HINT and shape[:-1] == other:
        return len(shape) - 1
    return None


def _check_same_spatial(
    img_sp: tuple[int, ...],
    mask_sp: tuple[int, ...],
    image_shape: tuple[int, ...],
    mask_shape: tuple[int, ...],
    image_channel_axis: int | None,
    mask_channel_axis: int | None,
) -> None:
    if img_sp == mask_sp:
        return
    if image_channel_axis is None:
        extra = _extra_axis(image_shape, mask_sp)
        if extra is not None:
            hint = f" (or, if it is a {image_shape[0]}-slice stack, pass `slice_index`)" if extra == 0 else ""
            raise DatasetInputError(
                f"image has shape {image_shape} and the mask {mask_shape}: declare the channel axis "
                f"(`channel_axis`={extra}){hint}"
            )
    if len(img_sp) == 3 and len(mask_sp) == 2 and img_sp[1:] == mask_sp:
        raise DatasetInputError(
            f"mask is 2D {mask_sp} but the image is a 3D stack {img_sp}: pass `slice_index` to save one slice "
            "as a 2D pair, or give a 3D mask"
        )
    if mask_channel_axis is None and len(mask_sp) == len(img_sp) + 1:
        _refuse_mask_ndim(mask_sp, mask_shape, img_sp)
    img_desc = f"image spatial shape {img_sp}" + (
        f" (shape {image_shape}, channel axis {image_channel_axis})" if image_channel_axis is not None else ""
    )
    raise DatasetError(
        f"{img_desc} does not match mask spatial shape {mask_sp}: the mask must cover the image pixel for pixel"
    )


def _sliced_pair(
    img_sp: tuple[int, ...],
    mask_sp: tuple[int, ...],
    image_shape: tuple[int, ...],
    mask_shape: tuple[int, ...],
    slice_index: int,
) -> PairShapes:
    if len(img_sp) != 3:
        raise DatasetInputError(
            f"`slice_index` given but the image (shape {image_shape}) is not a 3D stack: drop it"
        )
    _check_slice_index(slice_index, img_sp[0])
    if mask_sp == img_sp:
        return PairShapes(img_sp[1:], "2d", True, True)
    if mask_sp == img_sp[1:]:
        return PairShapes(img_sp[1:], "2d", True, False)
    raise DatasetError(
        f"mask shape {mask_shape} matches neither a slice {img_sp[1:]} nor the whole stack {img_sp} of the image "
        f"(shape {image_shape}): give a mask of one of those shapes"
    )


def _check_ndim_hint(result: PairShapes, ndim_hint: Any, image_shape: tuple[int, ...]) -> None:
    if ndim_hint is None:
        return
    wanted = {2: "2d", 3: "3d", "2d": "2d", "3d": "3d"}.get(ndim_hint)
    if wanted is None:
        raise DatasetError(f"ndim_hint {ndim_hint!r} is not one of '2d', '3d'")
    if wanted == result.spatial_dims:
        return
    if wanted == "2d":
        raise DatasetInputError(
            f"the project is 2D but the pair is a 3D stack {result.spatial_shape} (image shape {image_shape}): "
            "pass `slice_index` to save one slice as a 2D pair"
        )
    raise DatasetError(
        f"the project is 3D but the pair is 2D {result.spatial_shape} (image shape {image_shape}): "
        "give a 3D stack and a 3D mask"
    )


def align_pair(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    image_channel_axis: int | None,
    mask_channel_axis: int | None = None,
    slice_index: int | None = None,
    ndim_hint: SpatialDims | int | None = None,
) -> tuple[np.ndarray, np.ndarray, PairShapes]:
    """Check shapes, then return (image channel-first, mask channel-first, shapes), sliced if asked."""
    image = np.asarray(image)
    mask = np.asarray(mask)
    shapes = check_pair_shapes(
        image.shape,
        mask.shape,
        image_channel_axis=image_channel_axis,
        mask_channel_axis=mask_channel_axis,
        slice_index=slice_index,
        ndim_hint=ndim_hint,
    )
    image = to_channel_first(image, image_channel_axis)
    mask = to_channel_first(mask, mask_channel_axis, "mask_channel_axis")
    if shapes.slice_image:
        image = take_slice(image, slice_index, 0 if image_channel_axis is not None else None)  # type: ignore[arg-type]
    if shapes.slice_mask:
        mask = take_slice(mask, slice_index, 0 if mask_channel_axis is not None else None)  # type: ignore[arg-type]
    return image, mask, shapes
