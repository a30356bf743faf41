"""Pair preparation refuses pixels no training can use, and names inputs so each caller can word them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.project.errors import DatasetError
from napari_training_assistant.project.pair_preparation import prepare_pair
from napari_training_assistant.project.schemas import ArchitectureConfig
from napari_training_assistant.project.user_input import DatasetInputError

ARCH = ArchitectureConfig()
CLASSES = ["background", "foreground"]
MASK = np.zeros((16, 16), np.uint8)


def prepare(image, mask=MASK, **options):
    return prepare_pair(image, mask, architecture=ARCH, class_names=CLASSES, **options)


def _image(dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(0).random((16, 16)).astype(dtype)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda a: a.__setitem__((0, slice(0, 3)), np.nan), r"image has 3 non-finite value\(s\) of 256 \(3 NaN, 0 infinite\)"),
        (lambda a: a.__setitem__((1, 1), np.inf), r"1 non-finite value\(s\) of 256 \(0 NaN, 1 infinite\)"),
        (lambda a: a.__setitem__((2, slice(None)), -np.inf), r"16 non-finite value\(s\) of 256 \(0 NaN, 16 infinite\)"),
    ],
)
def test_non_finite_images_are_refused_with_the_count(spoil, message):
    image = _image()
    spoil(image)
    with pytest.raises(DatasetError, match=message) as info:
        prepare(image)
    assert "numpy.nan_to_num" in str(info.value) and "\n" not in str(info.value)


def test_only_the_saved_slice_is_checked():
    stack = np.stack([_image(), _image()])
    stack[0, 0, 0] = np.nan
    assert prepare(stack, slice_index=1).image.shape == (16, 16)
    with pytest.raises(DatasetError, match="1 non-finite"):
        prepare(stack, slice_index=0)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (_image(np.complex64), r"image has complex values \(dtype complex64\): give a real image"),
        (np.full((16, 16), "a"), r"image has dtype <U1, not numbers"),
        (np.full((16, 16), None, dtype=object), "image has dtype object, not numbers"),
    ],
)
def test_complex_and_non_numeric_images_are_refused(image, message):
    with pytest.raises(DatasetError, match=message):
        prepare(image)


def test_non_finite_masks_are_refused_with_the_count():
    mask = MASK.astype(np.float64)
    mask[:2, :2] = np.nan
    with pytest.raises(DatasetError, match=r"mask has 4 non-finite value\(s\) of 256 \(4 NaN, 0 infinite\)"):
        prepare(_image(), mask)


def test_integer_and_bool_images_pass():
    assert prepare(np.ones((16, 16), np.uint16)).image.dtype == np.uint16
    assert prepare(np.ones((16, 16), bool)).image.dtype == np.uint8


def test_a_label_map_outside_label_map_mode_is_refused():
    with pytest.raises(DatasetInputError) as info:
        prepare(_image(), label_map={1: 1})
    assert str(info.value) == "a label map (label_map) is only used with mask mode label-map (mask_mode), not binary"
    assert "(--label-map)" in info.value.render({"label_map": "--label-map", "mask_mode": "--mask-mode"})


@pytest.mark.parametrize(
    ("image", "options", "python", "cli"),
    [
        (np.zeros((4, 16, 16)), {"slice_index": 9}, "slice_index 9 is outside the stack: use 0..3", "--slice 9 is outside"),
        (np.zeros((16, 16)), {"slice_index": 0}, "slice_index given but the image", "--slice given but the image"),
        (np.zeros((16, 16)), {"channel_axis": 5}, "channel_axis 5 is not an axis of shape (16, 16)", "--channel-axis 5 is not"),
        (np.zeros((16, 16, 3)), {}, "declare the channel axis (channel_axis=2)", "(--channel-axis=2)"),
        (np.zeros((4, 16, 16)), {}, "4-slice stack, pass slice_index)", "4-slice stack, pass --slice)"),
        (np.zeros((6, 16, 16)), {}, "pass slice_index to save one slice", "pass --slice to save"),
        (np.zeros((16, 16)), {"mask_mode": "target-class"}, "needs a target class (target_class)", "(--target-class)"),
    ],
)
def test_messages_name_the_python_argument_and_render_the_flag(image, options, python, cli):
    flags = {"slice_index": "--slice", "channel_axis": "--channel-axis", "target_class": "--target-class"}
    with pytest.raises(DatasetInputError) as info:
        prepare(image, **options)
    assert python in str(info.value)
    assert cli in info.value.render(flags)
