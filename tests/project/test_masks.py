"""Mask preparation (every mode, every refusal) and image/mask shape checks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_training_assistant.project.errors import DatasetError
from napari_training_assistant.project.masks import (
    PreparedMask,
    align_pair,
    check_pair_shapes,
    count_nonzero_labels,
    looks_like_instances,
    prepare_mask,
    spatial_shape,
    take_slice,
    to_channel_first,
)

FAST = settings(max_examples=40, deadline=None)
SHAPES = hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=8)


def label_masks(max_label: int = 300, dtype=np.int32):
    return hnp.arrays(dtype, SHAPES, elements=st.integers(0, max_label))


def refused(match: str):
    return pytest.raises(DatasetError, match=match)


# --------------------------------------------------------------------------- properties


@FAST
@given(label_masks())
def test_binary_is_exactly_mask_above_zero(mask):
    out = prepare_mask(mask, "binary")
    assert out.array.dtype == np.uint8
    np.testing.assert_array_equal(out.array, (mask > 0).astype(np.uint8))
    assert set(out.saved_labels) <= {0, 1}
    assert out.source_labels == sorted(set(mask.ravel().tolist()))
    assert out.saved_labels == sorted(set(out.array.ravel().tolist()))


@FAST
@given(label_masks(), st.integers(1, 400))
def test_target_class_saved_labels_are_background_and_target(mask, target):
    out = prepare_mask(mask, "target-class", target_class_id=target)
    assert set(out.saved_labels) <= {0, target}
    np.testing.assert_array_equal(out.array, np.where(mask > 0, target, 0))
    assert out.array.dtype == (np.uint8 if max(out.saved_labels) <= 255 else np.uint16)


@FAST
@given(st.integers(2, 300).flatmap(lambda n: st.tuples(st.just(n), label_masks(n - 1))))
def test_multiclass_valid_masks_round_trip(n_and_mask):
    num_classes, mask = n_and_mask
    out = prepare_mask(mask, "multiclass", num_classes=num_classes)
    np.testing.assert_array_equal(out.array, mask)
    assert out.saved_labels == out.source_labels
    assert all(0 <= v < num_classes for v in out.saved_labels)
    assert out.label_transform == f"identity (labels 0..{num_classes - 1})"


@FAST
@given(
    label_masks(20),
    st.dictionaries(st.integers(0, 25), st.integers(0, 4), min_size=1, max_size=8),
)
def test_label_map_is_consistent_with_mapping(mask, mapping):
    out = prepare_mask(mask, "label-map", label_map=mapping, num_classes=5)
    expected = np.vectorize(lambda v: mapping.get(int(v), 0))(mask)
    np.testing.assert_array_equal(out.array, expected)
    assert set(out.saved_labels) <= set(mapping.values()) | {0}
    unmapped = {int(v) for v in np.unique(mask) if v != 0 and int(v) not in mapping}
    if unmapped:
        assert f"{len(unmapped)} unmapped label" in out.label_transform
    else:
        assert "unmapped" not in out.label_transform


@FAST
@given(st.integers(2, 6), st.integers(0, 30), st.randoms(use_true_random=False))
def test_instance_looking_masks_refused_with_count(num_classes, extra, rnd):
    n_labels = num_classes + extra  # always more distinct nonzero labels than num_classes - 1
    ids = rnd.sample(range(1, 1000), n_labels)
    mask = np.zeros((8, 8 * n_labels), np.int32)
    for i, label in enumerate(ids):
        mask[:, 8 * i : 8 * i + 4] = label
    assert looks_like_instances(mask, num_classes)
    with refused(
        f"mask has {n_labels} distinct nonzero labels but num_classes is {num_classes}: .*instance map"
    ):
        prepare_mask(mask, "multiclass", num_classes=num_classes)


# --------------------------------------------------------------------------- modes


def test_binary_from_bool_and_whole_floats():
    mask = np.array([[True, False], [False, True]])
    out = prepare_mask(mask, "binary")
    assert isinstance(out, PreparedMask)
    assert out.source_labels == [0, 1]
    assert out.label_transform == "mask > 0 -> 1"
    floats = prepare_mask(np.array([[0.0, 2.0], [7.0, 0.0]], np.float32), "binary")
    assert floats.source_labels == [0, 2, 7]
    np.testing.assert_array_equal(floats.array, [[0, 1], [1, 0]])


def test_result_never_aliases_input():
    mask = np.array([[0, 1], [2, 0]], np.uint8)
    out = prepare_mask(mask, "multiclass", num_classes=3)
    out.array[0, 0] = 2
    assert mask[0, 0] == 0


def test_empty_mask_is_kept_honest():
    out = prepare_mask(np.zeros((4, 4), np.uint8), "binary")
    assert out.source_labels == [0]
    assert out.saved_labels == [0]
    out = prepare_mask(np.zeros((4, 4), np.uint16), "target-class", target_class_id=2)
    assert out.saved_labels == [0]


def test_target_class_transform_names_class():
    mask = np.array([[0, 5], [9, 0]])
    out = prepare_mask(mask, "target-class", target_class_id=3, target_class_name="nucleus", num_classes=4)
    assert out.label_transform == "nonzero -> 3 (class 'nucleus')"
    assert out.target_class_name == "nucleus"
    assert out.saved_labels == [0, 3]
    assert prepare_mask(mask, "target-class", target_class_id=2).label_transform == "nonzero -> 2"


def test_target_class_errors():
    mask = np.ones((2, 2), np.uint8)
    with refused("needs target_class_id"):
        prepare_mask(mask, "target-class")
    with refused("target_class_id must be >= 1, got 0"):
        prepare_mask(mask, "target-class", target_class_id=0)
    with refused(r"target_class_id 3 is outside 1\.\.2 \(num_classes is 3\)"):
        prepare_mask(mask, "target-class", target_class_id=3, num_classes=3)
    with refused("target_class_id must be an integer"):
        prepare_mask(mask, "target-class", target_class_id="2")


def test_multiclass_errors():
    mask = np.array([[0, 1], [2, 5]])
    with refused("multiclass needs num_classes"):
        prepare_mask(mask, "multiclass")
    with refused(r"num_classes \(background included\) must be >= 2, got 1"):
        prepare_mask(mask, "multiclass", num_classes=1)
    with refused(r"labels \[5\] outside 0\.\.3 \(num_classes is 4\): raise num_classes"):
        prepare_mask(mask, "multiclass", num_classes=4)


def test_sam_instance_map_message():
    mask = np.zeros((64, 64), np.uint16)
    for i in range(37):
        mask[i, :] = i + 1
    assert count_nonzero_labels(mask) == 37
    expected = (
        "mask has 37 distinct nonzero labels but num_classes is 3: it looks like an instance map; "
        "use mask_mode binary or target-class, or a label-map"
    )
    with pytest.raises(DatasetError) as info:
        prepare_mask(mask, "multiclass", num_classes=3)
    assert str(info.value) == expected
    assert "use --mask-mode binary" in info.value.render({"mask_mode": "--mask-mode"})  # the CLI names its flag


def test_label_map_transform_text_and_dtype():
    mask = np.array([[0, 1, 2], [5, 7, 8], [9, 1, 0]])
    out = prepare_mask(mask, "label-map", label_map={1: 1, 2: 1, 5: 2}, num_classes=3)
    assert out.label_transform == "map {1: 1, 2: 1, 5: 2}; others -> 0; 3 unmapped labels -> 0: [7, 8, 9]"
    np.testing.assert_array_equal(out.array, [[0, 1, 1], [2, 0, 0], [0, 1, 0]])
    assert out.source_labels == [0, 1, 2, 5, 7, 8, 9]
    assert out.saved_labels == [0, 1, 2]
    big = prepare_mask(mask, "label-map", label_map={"1": 300})
    assert big.array.dtype == np.uint16
    assert big.saved_labels == [0, 300]
    assert "5 unmapped labels" in big.label_transform


def test_label_map_errors():
    mask = np.array([[0, 1], [2, 3]])
    with refused("needs a non-empty label_map"):
        prepare_mask(mask, "label-map")
    with refused("needs a non-empty label_map"):
        prepare_mask(mask, "label-map", label_map={})
    with refused(r"maps onto labels \[3, 4\] outside 0\.\.2 \(num_classes is 3\)"):
        prepare_mask(mask, "label-map", label_map={1: 3, 2: 4, 3: 1}, num_classes=3)
    with refused("label_map target label -1 is not an integer >= 0"):
        prepare_mask(mask, "label-map", label_map={1: -1})
    with refused("label_map source label 1.5 is not an integer"):
        prepare_mask(mask, "label-map", label_map={1.5: 1})
    with refused("does not fit in uint16"):
        prepare_mask(mask, "label-map", label_map={1: 70000})


def test_multilabel_from_channel_axis_and_list():
    stack = np.zeros((8, 8, 2), np.uint8)
    stack[:4, :, 0] = 1
    stack[2:, :, 1] = 7
    out = prepare_mask(stack, "multilabel", channel_axis=-1)
    assert out.array.shape == (2, 8, 8)
    assert out.label_transform == "multilabel: 2 channels, nonzero -> 1 per channel"
    assert out.source_labels == [0, 1, 7]
    assert out.saved_labels == [0, 1]
    np.testing.assert_array_equal(out.array[1], stack[..., 1] > 0)
    from_list = prepare_mask([stack[..., 0], stack[..., 1].astype(bool)], "multilabel", num_classes=2)
    np.testing.assert_array_equal(from_list.array, out.array)
    volume = prepare_mask([np.ones((3, 4, 4))], "multilabel")
    assert volume.array.shape == (1, 3, 4, 4)
    assert volume.label_transform == "multilabel: 1 channel, nonzero -> 1 per channel"


def test_multilabel_errors():
    with refused("no declared channel axis: pass channel_axis"):
        prepare_mask(np.zeros((4, 4, 2)), "multilabel")
    with refused("pass one or the other"):
        prepare_mask([np.zeros((4, 4))], "multilabel", channel_axis=0)
    with refused(r"different shapes \[\(4, 4\), \(4, 5\)\]"):
        prepare_mask([np.zeros((4, 4)), np.zeros((4, 5))], "multilabel")
    with refused("list is empty"):
        prepare_mask([], "multilabel")
    with refused("has 2 channels but num_classes is 3"):
        prepare_mask([np.zeros((4, 4))] * 2, "multilabel", num_classes=3)
    with refused(r"channel_axis 3 is not an axis of shape \(4, 4, 2\)"):
        prepare_mask(np.zeros((4, 4, 2)), "multilabel", channel_axis=3)
    with refused("each channel must be 2D"):
        prepare_mask(np.zeros((4, 2)), "multilabel", channel_axis=1)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.array([[0.0, 0.5]]), r"fractional values \(e\.g\. 0\.5\) in a float64 array"),
        (np.array([[0.0, np.nan]]), r"mask has 1 non-finite value\(s\) of 2 \(1 NaN, 0 infinite\)"),
        (np.array([[np.inf, -np.inf, 1.0]]), r"2 non-finite value\(s\) of 3 \(0 NaN, 2 infinite\): give an integer"),
        (np.array([[0, -1]]), r"negative values \(min -1\)"),
        (np.array([[0.0, -2.0]]), r"negative values \(min -2\)"),
        (np.array([["a", "b"]]), "dtype <U1, not a label type"),
        (np.zeros((0, 4)), r"mask is empty \(shape \(0, 4\)\)"),
        (np.zeros((3, 0), bool), r"mask is empty \(shape \(3, 0\)\)"),
    ],
)
@pytest.mark.parametrize("mode", ["binary", "multiclass", "label-map"])
def test_non_label_masks_refused(mask, message, mode):
    with refused(message):
        prepare_mask(mask, mode, num_classes=3, label_map={1: 1})


def test_mode_and_option_errors():
    mask = np.zeros((2, 2), np.uint8)
    with refused("unknown mask mode 'semantic': use one of binary, target-class"):
        prepare_mask(mask, "semantic")  # type: ignore[arg-type]
    with refused("channel_axis is only for multilabel masks"):
        prepare_mask(mask, "binary", channel_axis=0)


def test_messages_are_one_line():
    with pytest.raises(DatasetError) as info:
        prepare_mask(np.arange(40).reshape(5, 8), "multiclass", num_classes=3)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- shapes and axes


def test_same_spatial_shape_passes():
    shapes = check_pair_shapes((256, 256), (256, 256), image_channel_axis=None)
    assert shapes.spatial_shape == (256, 256)
    assert shapes.spatial_dims == "2d"
    rgb = check_pair_shapes((256, 256, 3), (256, 256), image_channel_axis=-1, ndim_hint="2d")
    assert rgb.spatial_shape == (256, 256)
    stack = check_pair_shapes((2, 12, 64, 64), (12, 64, 64), image_channel_axis=0, ndim_hint=3)
    assert stack.spatial_dims == "3d"
    assert not stack.slice_image
    multilabel = check_pair_shapes((64, 64), (3, 64, 64), image_channel_axis=None, mask_channel_axis=0)
    assert multilabel.spatial_shape == (64, 64)


def test_2d_mask_for_3d_stack_refused():
    with pytest.raises(DatasetError) as info:
        check_pair_shapes((12, 256, 256), (256, 256), image_channel_axis=None)
    assert str(info.value) == (
        "mask is 2D (256, 256) but the image is a 3D stack (12, 256, 256): pass slice_index to save one slice "
        "as a 2D pair, or give a 3D mask"
    )


def test_slice_index_makes_a_2d_pair():
    image = np.arange(12 * 4 * 5).reshape(12, 4, 5)
    mask = np.ones((4, 5), np.uint8)
    shapes = check_pair_shapes(
        image.shape, mask.shape, image_channel_axis=None, slice_index=7, ndim_hint="2d"
    )
    assert (shapes.spatial_shape, shapes.spatial_dims, shapes.slice_image, shapes.slice_mask) == (
        (4, 5),
        "2d",
        True,
        False,
    )
    img, msk, _ = align_pair(image, mask, image_channel_axis=None, slice_index=7)
    np.testing.assert_array_equal(img, image[7])
    assert msk.shape == (4, 5)
    mask3d = np.arange(12 * 4 * 5).reshape(12, 4, 5) % 3
    img, msk, shapes = align_pair(image, mask3d, image_channel_axis=None, slice_index=2)
    assert shapes.slice_mask
    np.testing.assert_array_equal(msk, mask3d[2])


def test_slice_index_with_channels():
    image = np.random.default_rng(0).random((12, 4, 5, 2))  # Z, Y, X, C
    img, msk, _ = align_pair(image, np.zeros((4, 5)), image_channel_axis=3, slice_index=3)
    assert img.shape == (2, 4, 5)
    np.testing.assert_array_equal(img, np.moveaxis(image[3], -1, 0))
    channel_first = np.moveaxis(image, -1, 0)
    np.testing.assert_array_equal(take_slice(channel_first, 3, 0), img)
    np.testing.assert_array_equal(take_slice(image, 3, 3), image[3])


def test_slice_index_errors():
    with refused(r"slice_index 12 is outside the stack: use 0\.\.11"):
        check_pair_shapes((12, 8, 8), (8, 8), image_channel_axis=None, slice_index=12)
    with refused("slice_index -1 is outside"):
        check_pair_shapes((12, 8, 8), (8, 8), image_channel_axis=None, slice_index=-1)
    with refused(r"slice_index given but the image \(shape \(8, 8\)\) is not a 3D stack"):
        check_pair_shapes((8, 8), (8, 8), image_channel_axis=None, slice_index=0)
    with refused(r"matches neither a slice \(8, 8\) nor the whole stack"):
        check_pair_shapes((12, 8, 8), (9, 8), image_channel_axis=None, slice_index=0)
    with refused("not a 3D stack"):
        take_slice(np.zeros((8, 8)), 0, None)


def test_undeclared_channel_axis_is_named():
    with pytest.raises(DatasetError) as info:
        check_pair_shapes((3, 256, 256), (256, 256), image_channel_axis=None)
    assert str(info.value).startswith(
        "image has shape (3, 256, 256) and the mask (256, 256): declare the channel axis (channel_axis=0)"
    )
    with refused(r"declare the channel axis \(channel_axis=2\)$"):
        check_pair_shapes((256, 256, 3), (256, 256), image_channel_axis=None)


def test_spatial_mismatch_and_bad_masks():
    with refused(
        r"image spatial shape \(256, 256\) \(shape \(256, 256, 3\), channel axis 2\) does not match"
    ):
        check_pair_shapes((256, 256, 3), (255, 256), image_channel_axis=2)
    with refused("looks like colour/channels; give a single-channel label mask"):
        check_pair_shapes((64, 64), (64, 64, 3), image_channel_axis=None)
    with refused(r"mask has shape \(64,\) with 1 spatial axes"):
        check_pair_shapes((64, 64), (64,), image_channel_axis=None)
    with refused("image has shape .* with 4 spatial axes"):
        check_pair_shapes((2, 3, 64, 64), (64, 64), image_channel_axis=None)
    with refused("channel_axis 2 is not an axis of shape"):
        check_pair_shapes((64, 64), (64, 64), image_channel_axis=2)


def test_ndim_hint_checks_project_dimensionality():
    with refused("the project is 2D but the pair is a 3D stack .*pass slice_index"):
        check_pair_shapes((12, 8, 8), (12, 8, 8), image_channel_axis=None, ndim_hint="2d")
    with refused("the project is 3D but the pair is 2D"):
        check_pair_shapes((8, 8), (8, 8), image_channel_axis=None, ndim_hint=3)
    with refused("ndim_hint '4d' is not one of"):
        check_pair_shapes((8, 8), (8, 8), image_channel_axis=None, ndim_hint="4d")  # type: ignore[arg-type]


def test_to_channel_first_and_spatial_shape():
    image = np.zeros((5, 6, 3))
    assert to_channel_first(image, -1).shape == (3, 5, 6)
    assert to_channel_first(image, None) is image
    assert spatial_shape((5, 6, 3), -1) == (5, 6)
    assert spatial_shape((5, 6), None) == (5, 6)
    with refused(re.escape("channel_axis True is not an axis")):
        to_channel_first(image, True)  # type: ignore[arg-type]
