"""Object-level matching scores (StarDist definitions) of instance label images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_training_assistant.train.instance_metrics import (
    IOU_THRESHOLDS,
    connected_components,
    iou_matrix,
    match,
    match_dataset,
    summary,
)


def _two_nuclei() -> np.ndarray:
    truth = np.zeros((10, 20), np.uint16)
    truth[2:8, 2:8] = 4  # 36 pixels
    truth[2:8, 8:12] = 9  # 24 pixels, touching the first
    return truth


def test_same_objects_under_other_ids_are_a_perfect_match():
    truth = _two_nuclei()
    prediction = np.where(truth == 4, 1, np.where(truth == 9, 2, 0))
    (m,) = match(truth, prediction, [0.5])
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)
    assert m.accuracy == m.f1 == m.precision == m.recall == m.panoptic_quality == 1.0


def test_touching_nuclei_merged_into_one_blob_score_as_the_field_counts_them():
    truth = _two_nuclei()
    merged = (truth > 0).astype(np.uint8)  # one object of 60 pixels
    half, strict = match(truth, merged, [0.5, 0.7])
    # IoU with nucleus 4: 36 / 60 = 0.6 (a match at 0.5), with nucleus 9: 24 / 60 = 0.4
    assert (half.tp, half.fp, half.fn) == (1, 0, 1)
    assert half.accuracy == pytest.approx(1 / 2) and half.f1 == pytest.approx(2 / 3)
    assert half.panoptic_quality == pytest.approx(0.6 / 1.5) and half.mean_matched_iou == pytest.approx(0.6)
    assert (strict.tp, strict.fp, strict.fn) == (0, 1, 2) and strict.accuracy == 0.0


def test_iou_matrix_rows_and_columns_are_the_objects_in_id_order():
    truth = _two_nuclei()
    prediction = np.zeros_like(truth)
    prediction[2:8, 2:10] = 7  # covers 4 whole and half of 9
    iou = iou_matrix(truth, prediction)
    assert iou.shape == (2, 1)
    np.testing.assert_allclose(iou[:, 0], [36 / 48, 12 / 60])


def test_empty_images_count_misses_and_false_objects():
    truth = _two_nuclei()
    empty = np.zeros_like(truth)
    (missed,) = match(truth, empty, [0.5])
    assert (missed.tp, missed.fp, missed.fn, missed.accuracy) == (0, 0, 2, 0.0)
    (invented,) = match(empty, truth, [0.5])
    assert (invented.tp, invented.fp, invented.fn, invented.precision) == (0, 2, 0, 0.0)
    (nothing,) = match(empty, empty, [0.5])
    assert (nothing.tp, nothing.fp, nothing.fn, nothing.accuracy) == (0, 0, 0, 0.0)  # 0 / 0 is 0, as in StarDist


def test_3d_volumes_and_the_dataset_sum_counts_before_dividing():
    truth = np.zeros((4, 8, 8), np.int32)
    truth[:2, :4, :4], truth[2:, 4:, 4:] = 1, 2
    good = truth.copy()
    bad = np.zeros_like(truth)
    bad[:, :, :] = 5  # one object over everything
    first, second = match(truth, good, [0.5])[0], match(truth, bad, [0.5])[0]
    (total,) = match_dataset([(truth, good), (truth, bad)], [0.5])
    assert (total.tp, total.fp, total.fn) == (first.tp + second.tp, first.fp + second.fp, first.fn + second.fn)
    assert total.accuracy == pytest.approx(2 / (2 + 1 + 2))
    assert [m.threshold for m in match_dataset([], [0.5, 0.9])] == [0.5, 0.9]


def test_summary_gives_scores_at_half_and_averaged_over_the_thresholds():
    truth = _two_nuclei()
    shrunk = truth.copy()
    shrunk[2:4] = 0  # both objects lose a third: IoU 24/36 and 16/24, both 2/3
    found = match(truth, shrunk)
    assert [m.threshold for m in found] == list(IOU_THRESHOLDS)
    result = summary(found)
    assert result["accuracy_50"] == 1.0
    passing = sum(t <= 2 / 3 for t in IOU_THRESHOLDS)  # 0.5 .. 0.65 keep both matches
    assert result["accuracy_mean"] == pytest.approx(passing / len(IOU_THRESHOLDS))
    assert result["panoptic_quality_50"] == pytest.approx(2 / 3)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        match(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="threshold"):
        match(np.zeros((4, 4)), np.zeros((4, 4)), [0.0])


def test_connected_components_count_diagonal_neighbours_as_touching():
    mask = np.zeros((5, 5), np.uint8)
    mask[0, 0] = mask[1, 1] = 1  # diagonal: one object
    mask[3:, 3:] = 255
    labels = connected_components(mask)
    assert labels.max() == 2 and labels[0, 0] == labels[1, 1] != labels[4, 4]


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.uint8, (6, 7), elements=st.integers(0, 4)),
    arrays(np.uint8, (6, 7), elements=st.integers(0, 4)),
    st.sampled_from([0.5, 0.6, 0.75, 0.95]),
)
def test_matching_above_one_half_is_every_pair_over_the_threshold(truth, prediction, threshold):
    """Above IoU 0.5 a pair is unique, so the optimal matching is simply every pair over the threshold."""
    (m,) = match(truth, prediction, [threshold])
    true_ids, pred_ids = [i for i in np.unique(truth) if i], [i for i in np.unique(prediction) if i]
    pairs = 0
    for a in true_ids:
        for b in pred_ids:
            inter = np.sum((truth == a) & (prediction == b))
            union = np.sum((truth == a) | (prediction == b))
            pairs += inter / union >= threshold
    assert m.tp == pairs and m.n_true == len(true_ids) and m.n_pred == len(pred_ids)
    assert 0 <= m.accuracy <= m.f1 <= 1 and m.panoptic_quality <= m.f1 + 1e-12
