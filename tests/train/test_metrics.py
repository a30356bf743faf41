"""Metrics: exact Dice / IoU on hand-made examples, accumulation, the absent-class rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from napari_training_assistant.project.schemas.architecture import default_architecture
from napari_training_assistant.train.metrics import ScoreAccumulator, segmentation_scores

BINARY = default_architecture("2d", "binary")
MULTICLASS = default_architecture("2d", "multiclass", num_classes=3)
MULTILABEL = default_architecture("2d", "multilabel", output_channels=2)


def logits_from_mask(mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.bool(), 5.0, -5.0)


def test_binary_exact_values():
    # 1 x 1 x 2 x 4: target has 4 foreground voxels; prediction hits 3, adds 1 false positive
    target = torch.tensor([[[[1, 1, 1, 1], [0, 0, 0, 0]]]], dtype=torch.float32)
    pred = torch.tensor([[[[1, 1, 1, 0], [1, 0, 0, 0]]]], dtype=torch.float32)
    scores = segmentation_scores(logits_from_mask(pred), target, BINARY)
    tp, fp, fn = 3, 1, 1
    assert scores["tp"] == [tp] and scores["fp"] == [fp] and scores["fn"] == [fn]
    assert scores["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))  # 0.75
    assert scores["iou"] == pytest.approx(tp / (tp + fp + fn))  # 0.6
    assert scores["dice_per_class"] == [pytest.approx(0.75)]
    assert scores["iou_per_class"] == [pytest.approx(0.6)]
    json.dumps(scores)  # plain numbers


def test_threshold_and_probabilities():
    arch = default_architecture("2d", "binary", threshold=0.7)
    target = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    probs = torch.tensor([[[[0.9, 0.6, 0.6, 0.1]]]])
    scores = segmentation_scores(probs, target, arch, from_logits=False)
    assert (scores["tp"], scores["fp"], scores["fn"]) == ([1], [0], [1])
    logits = torch.log(probs / (1 - probs))
    assert segmentation_scores(logits, target, arch)["tp"] == [1]
    # default threshold 0.5: 0.6 counts
    scores = segmentation_scores(probs, target, BINARY, from_logits=False)
    assert (scores["tp"], scores["fp"], scores["fn"]) == ([2], [1], [0])


def test_hard_masks_and_numpy_inputs():
    target = np.array([[[[1, 1, 0, 0]]]], dtype=np.float32)
    pred = np.array([[[[True, False, True, False]]]])
    scores = segmentation_scores(pred, target, BINARY)
    assert (scores["tp"], scores["fp"], scores["fn"]) == ([1], [1], [1])
    assert scores["dice"] == pytest.approx(0.5)
    # a hard mask without channel axis
    assert segmentation_scores(pred[:, 0], target, BINARY)["tp"] == [1]


def test_multiclass_exact_values():
    target = torch.tensor([[[0, 1, 1, 2, 2, 2]]])  # (N=1, y=1, x=6)
    labels = torch.tensor([[[0, 1, 2, 2, 2, 0]]])
    logits = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).float() * 4
    scores = segmentation_scores(logits, target, MULTICLASS)
    # class 1: TP 1, FP 0, FN 1 -> 2/3 ; class 2: TP 2, FP 1, FN 1 -> 4/6
    assert scores["tp"] == [1, 2] and scores["fp"] == [0, 1] and scores["fn"] == [1, 1]
    assert scores["dice_per_class"] == pytest.approx([2 / 3, 4 / 6])
    assert scores["iou_per_class"] == pytest.approx([1 / 2, 2 / 4])
    assert scores["dice"] == pytest.approx((2 / 3 + 4 / 6) / 2)
    # softmax probabilities and an integer label map give the same
    probs = torch.softmax(logits, 1)
    assert segmentation_scores(probs, target, MULTICLASS, from_logits=False)["tp"] == [1, 2]
    assert segmentation_scores(labels, target, MULTICLASS)["tp"] == [1, 2]
    assert segmentation_scores(logits, target[:, None], MULTICLASS)["tp"] == [1, 2]


def test_multilabel_exact_values():
    target = torch.zeros(1, 2, 2, 2)
    target[0, 0] = torch.tensor([[1, 1], [0, 0]])
    target[0, 1] = torch.tensor([[1, 0], [1, 0]])
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, 0] = torch.tensor([[1, 1], [0, 0]])  # perfect
    pred[0, 1] = torch.tensor([[0, 1], [1, 0]])  # TP 1, FP 1, FN 1
    scores = segmentation_scores(logits_from_mask(pred), target, MULTILABEL)
    assert scores["dice_per_class"] == pytest.approx([1.0, 0.5])
    assert scores["iou_per_class"] == pytest.approx([1.0, 1 / 3])
    assert scores["dice"] == pytest.approx(0.75)
    assert scores["iou"] == pytest.approx((1 + 1 / 3) / 2)


def test_valid_mask_excludes_voxels():
    target = torch.tensor([[[[1.0, 0.0, 1.0, 0.0]]]])
    pred = torch.tensor([[[[1.0, 1.0, 0.0, 1.0]]]])
    valid = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    scores = segmentation_scores(logits_from_mask(pred), target, BINARY, valid=valid)
    assert (scores["tp"], scores["fp"], scores["fn"]) == ([1], [1], [0])
    labels = torch.tensor([[[1, 2, 2, 0]]])
    truth = torch.tensor([[[1, 1, 7, 7]]])  # junk labels under padding are ignored
    mask = torch.tensor([[[1, 1, 0, 0]]])
    scores = segmentation_scores(labels, truth, MULTICLASS, valid=mask)
    assert scores["tp"] == [1, 0] and scores["fp"] == [0, 1] and scores["fn"] == [1, 0]


def test_absent_class_rule():
    target = torch.tensor([[[0, 1, 1, 0]]])
    labels = torch.tensor([[[0, 1, 1, 0]]])
    scores = segmentation_scores(labels, target, default_architecture("2d", "multiclass", num_classes=4))
    # class 1 perfect; classes 2 and 3 absent in both -> 1.0 per class, left out of the mean
    assert scores["dice_per_class"] == [1.0, 1.0, 1.0]
    assert scores["scored"] == [True, False, False]
    assert scores["dice"] == 1.0
    # an absent class that is predicted scores 0 and counts
    labels = torch.tensor([[[0, 1, 1, 2]]])
    scores = segmentation_scores(labels, target, default_architecture("2d", "multiclass", num_classes=4))
    assert scores["dice_per_class"] == [1.0, 0.0, 1.0]
    assert scores["scored"] == [True, True, False]
    assert scores["dice"] == pytest.approx(0.5)
    # a class present but missed scores 0 and counts
    labels = torch.tensor([[[0, 0, 0, 0]]])
    scores = segmentation_scores(labels, target, default_architecture("2d", "multiclass", num_classes=4))
    assert scores["dice"] == 0.0 and scores["iou"] == 0.0
    # nothing anywhere: 1.0 (nothing to find, nothing found)
    empty = torch.zeros(1, 1, 3, 3)
    scores = segmentation_scores(logits_from_mask(empty), empty, BINARY)
    assert scores["dice"] == 1.0 and scores["iou"] == 1.0 and scores["scored"] == [False]
    assert not any(math.isnan(v) for v in scores["dice_per_class"])


@pytest.mark.parametrize("arch", [BINARY, MULTICLASS, MULTILABEL], ids=lambda a: a.output_mode)
def test_accumulation_equals_whole_set(arch):
    gen = torch.Generator().manual_seed(3)
    channels = arch.output_channels
    batches = []
    for n in (1, 3, 2):
        logits = torch.randn(n, channels, 5, 7, generator=gen)
        if arch.output_mode == "multiclass":
            target = torch.randint(0, channels, (n, 5, 7), generator=gen)
        else:
            target = (torch.rand(n, channels, 5, 7, generator=gen) > 0.7).float()
        valid = (torch.rand(n, 1, 5, 7, generator=gen) > 0.2).float()
        batches.append((logits, target, valid))
    acc = ScoreAccumulator(arch)
    for logits, target, valid in batches:
        acc.update(logits, target, valid)
    logits, target, valid = (torch.cat(parts) for parts in zip(*batches, strict=True))
    whole = segmentation_scores(logits, target, arch)
    whole_with_valid = segmentation_scores(logits, target, arch, valid)
    assert whole["tp"] != whole_with_valid["tp"] or whole["fp"] != whole_with_valid["fp"]
    assert acc.compute() == whole_with_valid
    assert acc.batches == 3
    acc.reset()
    assert acc.compute()["tp"] == [0] * len(whole["tp"])


def test_accumulation_is_dataset_level_not_mean_of_batches():
    acc = ScoreAccumulator(BINARY)
    # batch 1: tiny object missed entirely (Dice 0); batch 2: large object perfect (Dice 1)
    t1 = torch.zeros(1, 1, 4, 4)
    t1[..., 0, 0] = 1
    acc.update(logits_from_mask(torch.zeros_like(t1)), t1)
    t2 = torch.ones(1, 1, 4, 4)
    acc.update(logits_from_mask(t2), t2)
    # dataset level: TP 16, FN 1 -> 32 / 33 (a mean of batch Dice would give 0.5)
    assert acc.compute()["dice"] == pytest.approx(32 / 33)


def test_3d_inputs():
    arch = default_architecture("3d", "multiclass", num_classes=3)
    target = torch.randint(0, 3, (2, 3, 4, 5))
    logits = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float()
    scores = segmentation_scores(logits, target, arch)
    assert scores["dice_per_class"] == [1.0, 1.0]
    arch = default_architecture("3d", "binary")
    target = (torch.rand(2, 1, 3, 4, 5) > 0.5).float()
    assert segmentation_scores(logits_from_mask(target), target, arch)["dice"] == 1.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="target shape"):
        segmentation_scores(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5), BINARY)
    with pytest.raises(ValueError, match="3 channels"):
        segmentation_scores(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), MULTICLASS)
    with pytest.raises(ValueError, match="0..2"):
        segmentation_scores(torch.zeros(1, 3, 4, 4), torch.full((1, 4, 4), 5), MULTICLASS)
