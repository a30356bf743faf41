"""Scored instances -> labels: score threshold, unique ids, merging pieces of one object, zarr canvases."""

from __future__ import annotations

import numpy as np

from napari_training_assistant.annotate.detections import Detections, Instance, paint_instances


def square(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_the_score_threshold_chooses_instances_without_running_anything_again():
    found = Detections((20, 20), [Instance.from_full_mask(s, square((20, 20), *box)) for s, box in
                                  [(0.3, (0, 4, 0, 4)), (0.9, (10, 14, 10, 14)), (0.6, (0, 4, 10, 14))]])
    assert [item.score for item in found.instances] == [0.9, 0.6, 0.3]  # most confident first
    assert found.labels(0.05).max() == 3 and found.labels(0.5).max() == 2 and found.labels(0.95).max() == 0
    assert (found.labels(0.5)[10:14, 10:14] == 1).all() and (found.labels(0.5)[0:4, 10:14] == 2).all()


def test_an_instance_keeps_only_its_bounding_box_and_its_place():
    item = Instance.from_full_mask(0.5, square((30, 40), 5, 9, 20, 31), offset=(100, 200))
    assert item.top_left == (105, 220) and item.mask.shape == (4, 11) and item.mask.all()
    assert Instance.from_full_mask(0.5, np.zeros((4, 4), bool)) is None


def test_pieces_of_one_object_merge_and_touching_objects_stay_apart():
    """Tile A covers x 0..22, tile B x 15..40: an object across the border is cut by A and whole in B."""
    canvas = np.zeros((40, 40), dtype=np.uint32)
    left = Instance.from_full_mask(0.8, square((40, 22), 10, 20, 5, 22))
    right = Instance.from_full_mask(0.7, square((40, 25), 10, 20, 0, 15), offset=(0, 15))
    neighbour = Instance.from_full_mask(0.9, square((40, 25), 20, 30, 0, 15), offset=(0, 15))
    scores = paint_instances(canvas, [left, right], 0.5)
    assert scores == {1: 0.8} and (canvas[10:20, 5:30] == 1).all()
    paint_instances(canvas, [neighbour], 0.5, scores)
    assert scores == {1: 0.8, 2: 0.9} and (canvas[20:30, 15:30] == 2).all()


def test_a_small_overlap_does_not_merge_and_the_earlier_object_keeps_its_pixels():
    canvas = np.zeros((20, 20), dtype=np.uint32)
    big = Instance.from_full_mask(0.9, square((20, 20), 0, 10, 0, 10))
    corner = Instance.from_full_mask(0.8, square((20, 20), 8, 14, 8, 14))  # 4 of its 36 pixels overlap
    paint_instances(canvas, [big, corner], 0.5)
    assert (canvas[0:10, 0:10] == 1).all() and canvas[12, 12] == 2 and np.count_nonzero(canvas == 2) == 32


def test_a_zarr_canvas_is_painted_a_box_at_a_time():
    import zarr

    canvas = zarr.zeros((64, 64), chunks=(16, 16), dtype="uint32")
    paint_instances(canvas, [Instance.from_full_mask(0.9, square((64, 64), 30, 40, 30, 40))], 0.5)
    assert np.count_nonzero(canvas[:]) == 100 and canvas[35, 35] == 1
