"""The vote of predicted maps over a segmentation, and spatial chunks of points."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.assign.chunks import read_plan, spatial_chunks, window_starts
from napari_training_assistant.assign.vote import NOTHING, vote


def _two_cells():
    segments = np.zeros((5, 20, 20), np.uint32)
    segments[:, :, :10], segments[:, :, 10:] = 3, 7
    probabilities = np.zeros((2, 5, 20, 20), np.float32)
    probabilities[0][:, :, :10] = 0.9  # pre on cell 3
    probabilities[0][:, :, 10:] = 0.1
    probabilities[1][:, :, 10:] = 0.8  # post on cell 7
    return probabilities, segments


def test_max_vote_takes_the_segment_with_the_most_probability_and_keeps_the_runner_up():
    probabilities, segments = _two_cells()
    result = vote(probabilities, segments, (2, 10, 10), contact_radius=(1, 3, 3))
    assert (result.pre.segment, result.post.segment) == (3, 7) and result.flags == ()
    assert result.pre.runner_up == 7 and result.pre.margin == pytest.approx(0.9 * 63 - 0.1 * 84, rel=1e-5)  # 3x7x3 voxels of cell 3, 3x7x4 of 7 in the box
    assert result.candidates == 2


def test_candidates_are_only_segments_at_the_contact():
    probabilities, segments = _two_cells()
    segments[:, :3, :] = 9  # a cell far from the point, with all the probability
    probabilities[:, :, :3, :] = 1.0
    near = vote(probabilities, segments, (2, 10, 10), contact_radius=(1, 3, 3))
    grown = vote(probabilities, segments, (2, 10, 10), contact_radius=(1, 3, 3), dilation=5)
    assert near.candidates == 2 and 9 not in (near.pre.runner_up, near.post.runner_up)
    assert grown.candidates == 3 and grown.pre.runner_up == 9


def test_threshold_mode_finds_nothing_where_probability_stays_faint_and_flags_it():
    probabilities, segments = _two_cells()
    probabilities[1] = 0.3  # post channel never exceeds 0.5
    result = vote(probabilities, segments, (2, 10, 10), mode="threshold", contact_radius=(1, 3, 3))
    assert result.pre.segment == 3 and result.post.segment == NOTHING and "no_post" in result.flags


def test_pre_equal_to_post_is_flagged_and_the_baseline_needs_no_network():
    probabilities, segments = _two_cells()
    probabilities[1] = probabilities[0]
    assert "pre_equals_post" in vote(probabilities, segments, (2, 10, 10), contact_radius=(1, 3, 3)).flags
    baseline = vote(None, segments, (2, 10, 8), mode="dilate_nearest", contact_radius=(1, 3, 3))
    assert (baseline.pre.segment, baseline.post.segment) == (3, 7)  # more voxels of 3 in the box
    empty = vote(None, np.zeros((5, 20, 20), np.uint32), (2, 10, 10), mode="dilate_nearest")
    assert set(empty.flags) == {"no_pre", "no_post"}


def test_chunks_hold_every_point_once_and_neighbours_together():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal((10, 100, 100), (1, 5, 5), (50, 3)), rng.normal((10, 900, 900), (1, 5, 5), (50, 3))])
    chunks = list(spatial_chunks(points, (8, 24, 24), size=50))
    rows = np.concatenate([c.rows for c in chunks])
    assert sorted(rows.tolist()) == list(range(100))
    assert {int(r >= 50) for r in chunks[0].rows} == {0}  # the first chunk is one cluster


def test_dense_points_read_one_region_and_sparse_points_their_windows():
    window = (8, 24, 24)
    dense = window_starts(np.array([[10, 100 + i, 100] for i in range(20)], float), window)
    sparse = window_starts(np.array([[10, 100, 100], [10, 2000, 2000]], float), window)
    assert read_plan(dense, window) is not None and read_plan(sparse, window) is None


def test_ground_truth_of_a_line_takes_the_segments_of_the_nearest_voxels():
    from napari_training_assistant.assign.evaluate import ground_truth
    from napari_training_assistant.data.annotations import Synapse
    from napari_training_assistant.data.point_windows import LayerSet
    from napari_training_assistant.data.volumes import open_volume

    segments = np.zeros((6, 8, 8), np.uint32)
    segments[3], segments[4] = 5, 9  # cell 5 in section 3, cells 9 and 2 in section 4
    segments[4, :, 4:] = 2
    layers = LayerSet(open_volume(np.zeros_like(segments, dtype=np.uint8)), {"segmentation": open_volume(segments)})
    synapse = Synapse(1, (3.8, 2.0, 2.4), (4.2, 2.0, 5.6))  # both ends nearest to section 4
    assert ground_truth(synapse, (4.0, 2.0, 4.0), layers, (1, 1, 1)) == (9, 2)
