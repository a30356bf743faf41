"""Object-level scores of instance label images, as the field reports them (StarDist's `matching`).

True and predicted objects (ids > 0, any ids, 2D or 3D) are paired one-to-one by an optimal assignment that
maximises the summed IoU over pairs whose IoU reaches the threshold (`scipy.optimize.linear_sum_assignment`);
a pair is a true positive (TP), an unpaired predicted object a false positive (FP), an unpaired true object a
false negative (FN). Then

* precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN),
* accuracy = TP / (TP + FP + FN) (the "average precision" of the cell-segmentation literature),
* panoptic quality = (sum of the IoUs of the pairs) / (TP + FP / 2 + FN / 2),
* mean matched IoU = (sum of the IoUs of the pairs) / TP.

A ratio whose denominator is 0 is 0, as in StarDist. `match_dataset` adds the counts (and IoU sums) of all
images before dividing, so big images weigh by their objects, not by being one image. `IOU_THRESHOLDS` are
0.5:0.95 in steps of 0.05; `summary` gives the figures at 0.5 and their mean over those thresholds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True)
class Matching:
    """Counts at one IoU threshold; the scores are properties so that counts add up across images."""

    threshold: float
    tp: int
    fp: int
    fn: int
    iou_sum: float  # summed IoU of the matched pairs

    @property
    def n_true(self) -> int:
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def panoptic_quality(self) -> float:
        return _ratio(self.iou_sum, self.tp + self.fp / 2 + self.fn / 2)

    @property
    def mean_matched_iou(self) -> float:
        return _ratio(self.iou_sum, self.tp)

    def __add__(self, other: Matching) -> Matching:
        if self.threshold != other.threshold:
            raise ValueError(f"cannot add matchings at IoU {self.threshold} and {other.threshold}")
        return Matching(self.threshold, self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.iou_sum + other.iou_sum)

    def scores(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "accuracy": self.accuracy,
            "f1": self.f1,
            "panoptic_quality": self.panoptic_quality,
            "mean_matched_iou": self.mean_matched_iou,
        }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else 0.0


def iou_matrix(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(n_true, n_pred) IoU of every pair of objects, rows and columns in increasing id order."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} must have the same shape")
    true_ids, true_index = np.unique(truth, return_inverse=True)
    pred_ids, pred_index = np.unique(prediction, return_inverse=True)
    n_true, n_pred = len(true_ids), len(pred_ids)
    overlap = np.bincount(true_index.ravel() * n_pred + pred_index.ravel(), minlength=n_true * n_pred)
    overlap = overlap.reshape(n_true, n_pred).astype(np.float64)
    keep_true, keep_pred = true_ids != 0, pred_ids != 0
    sizes_true, sizes_pred = overlap.sum(axis=1), overlap.sum(axis=0)
    union = sizes_true[:, None] + sizes_pred[None, :] - overlap
    iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
    return iou[np.ix_(keep_true, keep_pred)]


def match(truth: np.ndarray, prediction: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS) -> list[Matching]:
    """One `Matching` per threshold for one pair of instance label images."""
    iou = iou_matrix(truth, prediction)
    n_true, n_pred = iou.shape
    found = []
    for threshold in thresholds:
        if not 0 < threshold <= 1:
            raise ValueError(f"IoU threshold {threshold} must lie in (0, 1]")
        tp, iou_sum = 0, 0.0
        if n_true and n_pred:
            from scipy.optimize import linear_sum_assignment

            eligible = np.where(iou >= threshold, iou, 0.0)
            rows, cols = linear_sum_assignment(eligible, maximize=True)
            paired = eligible[rows, cols] > 0
            tp, iou_sum = int(paired.sum()), float(eligible[rows, cols][paired].sum())
        found.append(Matching(float(threshold), tp, n_pred - tp, n_true - tp, iou_sum))
    return found


def match_dataset(pairs: Iterable[tuple[np.ndarray, np.ndarray]], thresholds: Sequence[float] = IOU_THRESHOLDS) -> list[Matching]:
    """Counts of every (truth, prediction) pair added per threshold, then scored."""
    total: list[Matching] | None = None
    for truth, prediction in pairs:
        found = match(truth, prediction, thresholds)
        total = found if total is None else [a + b for a, b in zip(total, found, strict=True)]
    return total if total is not None else [Matching(float(t), 0, 0, 0, 0.0) for t in thresholds]


def summary(matchings: Sequence[Matching]) -> dict[str, float]:
    """Accuracy, F1 and panoptic quality at IoU 0.5 and averaged over the thresholds given."""
    at_half = next((m for m in matchings if abs(m.threshold - 0.5) < 1e-9), None)
    out: dict[str, float] = {}
    for name in ("accuracy", "f1", "panoptic_quality"):
        if at_half is not None:
            out[f"{name}_50"] = getattr(at_half, name)
        out[f"{name}_mean"] = float(np.mean([getattr(m, name) for m in matchings])) if matchings else 0.0
    return out


def connected_components(mask: np.ndarray) -> np.ndarray:
    """Instances of a binary (or semantic) mask: its connected foreground components (full connectivity in
    2D and 3D: diagonal neighbours touch), as a binary model's objects are counted."""
    from scipy import ndimage

    mask = np.asarray(mask) > 0
    labels, _ = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    return labels
