"""napari layer data -> prompts in (x, y) pixels; stacks keep only the current slice's prompts."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.annotate.errors import Sam3Error
from napari_training_assistant.annotate.from_layers import (
    boxes_from_shapes,
    image_plane,
    points_from_layer,
    prompted_slices,
)
from napari_training_assistant.annotate.prompts import Box, Point, Prompts


def rectangle(y0, x0, y1, x1, z=None):
    corners = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
    return np.array([[z, *c] for c in corners] if z is not None else corners, dtype=float)


def test_rectangles_become_xyxy_boxes_clipped_to_the_plane():
    boxes = boxes_from_shapes([rectangle(10, 20, 30, 60), rectangle(-5, 90, 40, 130)], positive=[True, False], plane_shape=(50, 100))
    assert boxes == (Box(20, 10, 60, 30, True), Box(90, 0, 99, 40, False))


def test_degenerate_boxes_are_skipped():
    assert boxes_from_shapes([rectangle(10, 10, 10.2, 40)]) == ()


def test_on_a_stack_only_the_current_slice_counts():
    shapes = [rectangle(1, 2, 8, 9, z=3), rectangle(1, 2, 8, 9, z=4)]
    assert len(boxes_from_shapes(shapes, spatial_ndim=3, slice_index=4)) == 1
    points = np.array([[3, 5, 6], [4, 7, 8], [4, 9, 1]])
    assert points_from_layer(points, positive=[True, True, False], spatial_ndim=3, slice_index=4) == (Point(8, 7), Point(1, 9, False))
    assert prompted_slices([points]) == [3, 4]


def test_2d_prompts_apply_to_any_slice_of_a_stack():
    assert points_from_layer(np.array([[5.0, 6.0]]), spatial_ndim=3, slice_index=7) == (Point(6, 5),)


def test_no_points_gives_no_prompt():
    assert points_from_layer(np.zeros((0, 2))) == ()


def test_image_plane_of_2d_rgb_and_stacks():
    assert image_plane(np.zeros((5, 6)), rgb=False, slice_index=None).shape == (5, 6)
    assert image_plane(np.zeros((5, 6, 3)), rgb=True, slice_index=None).shape == (5, 6, 3)
    stack = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    assert np.array_equal(image_plane(stack, rgb=False, slice_index=2), stack[2])
    with pytest.raises(Sam3Error, match="outside the stack"):
        image_plane(stack, rgb=False, slice_index=9)
    with pytest.raises(Sam3Error, match="2D images and 3D stacks"):
        image_plane(np.zeros((2, 3, 4, 5)), rgb=False, slice_index=0)


def test_prompt_records_for_the_manifest():
    prompts = Prompts(boxes=(Box(1, 2, 3, 4),), points=(Point(5, 6, False),), exemplars=(Box(0, 0, 9, 9),))
    records = prompts.as_records("2d_box", frame=3)
    assert records == [
        {"type": "box", "xyxy": [1, 2, 3, 4], "positive": True, "mode": "2d_box", "frame": 3},
        {"type": "point", "xy": [5, 6], "positive": False, "mode": "2d_box", "frame": 3},
        {"type": "exemplar_box", "xyxy": [0, 0, 9, 9], "positive": True, "mode": "2d_box", "frame": 3},
    ]
    assert Prompts().is_empty() and not prompts.is_empty()


def test_prompts_for_each_2d_mode_and_frame_prompts_for_3d():
    from napari_training_assistant.annotate.from_layers import frame_prompts, prompts_for_mode

    shapes = [rectangle(1, 2, 8, 9), rectangle(20, 20, 30, 30)]
    common = dict(positive=[True, False], spatial_ndim=2, slice_index=None, plane_shape=(40, 40))
    assert prompts_for_mode("2d_box", shapes, **common) == Prompts(boxes=(Box(2, 1, 9, 8),))
    assert prompts_for_mode("2d_exemplar", shapes, **common).exemplars == (Box(2, 1, 9, 8), Box(20, 20, 30, 30, False))
    assert prompts_for_mode("live_points", np.array([[5, 6], [7, 8]]), **common).points == (Point(6, 5), Point(8, 7, False))
    frames = frame_prompts(np.array([[3, 5, 6], [1, 7, 8], [3, 9, 1]]), positive=[True, True, False])
    assert sorted(frames.frames) == [1, 3] and frames.frames[3].points == (Point(6, 5), Point(1, 9, False))
