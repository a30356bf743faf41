"""Dice and IoU on hard predictions, per batch (`segmentation_scores`) or per data set (`ScoreAccumulator`).

Hard predictions: binary / multilabel ``probability > threshold`` (from logits: ``sigmoid(logit) >
threshold``); multiclass ``argmax`` over the class channel. A prediction that is already hard is
accepted too (binary / multilabel: bool or integer tensor; multiclass: integer label map without a
channel axis).

Scored classes: binary [foreground]; multiclass classes 1..K-1 (background 0 is not scored);
multilabel every channel; instance the foreground channel (objects are scored by `instance_metrics`).
Per class, over all valid voxels (``valid`` > 0):

    Dice = 2 TP / (2 TP + FP + FN)        IoU = TP / (TP + FP + FN)

Absent classes (the rule): a class with no ground truth AND no prediction (TP + FP + FN = 0) is
reported as 1.0 in ``dice_per_class`` / ``iou_per_class`` (nothing to find, nothing found) but is
left out of the means ``dice`` / ``iou`` (as nnU-Net does), so that it cannot inflate them. A class
with no ground truth but some prediction scores 0.0 and does count. When no class is scored at
all (everything empty everywhere) the means are 1.0. ``scored`` says which classes entered the
means. ``ScoreAccumulator`` sums TP / FP / FN over every batch first, so it reports data-set-level
Dice (not a mean of per-batch Dice) and applies the rule to the summed counts.

Inputs may be torch tensors or numpy arrays; counting happens on the input's device and the
results are plain Python numbers (JSON-friendly).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..project.schemas.architecture import ArchitectureConfig

ArrayLike = torch.Tensor | np.ndarray


def _as_config(architecture: Mapping[str, Any] | ArchitectureConfig) -> ArchitectureConfig:
    if isinstance(architecture, ArchitectureConfig):
        return architecture
    return ArchitectureConfig.model_validate(dict(architecture))


def _tensor(x: ArrayLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def confusion_counts(
    prediction: ArrayLike,
    target: ArrayLike,
    architecture: Mapping[str, Any] | ArchitectureConfig,
    valid: ArrayLike | None = None,
    from_logits: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(TP, FP, FN) per scored class as int64 CPU tensors of length n_scored_classes."""
    config = _as_config(architecture)
    pred, tgt = _tensor(prediction).detach(), _tensor(target).detach()
    if config.output_mode == "instance":  # pixels are scored on the foreground channel; objects by instance_metrics
        pred, tgt = _foreground_channel(pred), _foreground_channel(tgt)
        config = config.model_copy(update={"output_mode": "binary", "output_channels": 1})
    if config.output_mode == "multiclass":
        return _multiclass_counts(pred, tgt, valid, config, from_logits)
    return _sigmoid_counts(pred, tgt, valid, config, from_logits)


def _foreground_channel(t: torch.Tensor) -> torch.Tensor:
    """(N, 1, *sp): channel 0 (foreground) of an instance model's (N, 2, *sp) output or target."""
    return t[:, :1]


def _hard_sigmoid(pred: torch.Tensor, threshold: float, from_logits: bool) -> torch.Tensor:
    if pred.dtype == torch.bool:
        return pred
    if not pred.is_floating_point():
        return pred > 0
    if from_logits:
        return pred.float() > math.log(threshold / (1.0 - threshold))  # sigmoid(x) > t  <=>  x > logit(t)
    return pred > threshold


def _valid_bool(valid: ArrayLike | None, like: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor | None:
    """`valid` as bool (N, 1, *sp) on `like`'s device, or None."""
    if valid is None:
        return None
    v = _tensor(valid).to(like.device)
    if v.ndim == len(spatial) + 1:
        v = v.unsqueeze(1)
    expected = (like.shape[0], 1, *spatial)
    if tuple(v.shape) != expected:
        raise ValueError(f"valid mask must have shape {expected}; got {tuple(v.shape)}")
    return v > 0


def _sigmoid_counts(
    pred: torch.Tensor,
    tgt: torch.Tensor,
    valid: ArrayLike | None,
    config: ArchitectureConfig,
    from_logits: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    channels = config.output_channels
    if pred.ndim in (3, 4) and channels == 1 and tgt.ndim == pred.ndim + 1:
        pred = pred.unsqueeze(1)  # hard binary mask without channel axis
    if tgt.ndim == pred.ndim - 1 and channels == 1:
        tgt = tgt.unsqueeze(1)
    if pred.ndim not in (4, 5) or pred.shape[1] != channels:
        raise ValueError(
            f"{config.output_mode} prediction must be (N, {channels}, *spatial); got {tuple(pred.shape)}"
        )
    if tuple(tgt.shape) != tuple(pred.shape):
        raise ValueError(f"target shape {tuple(tgt.shape)} does not match prediction {tuple(pred.shape)}")
    hard = _hard_sigmoid(pred, config.threshold, from_logits)
    truth = (tgt > 0.5).to(hard.device) if tgt.is_floating_point() else (tgt > 0).to(hard.device)
    mask = _valid_bool(valid, hard, tuple(hard.shape[2:]))
    if mask is not None:
        hard = hard & mask
        truth = truth & mask
    dims = [0, *range(2, hard.ndim)]
    tp = (hard & truth).sum(dim=dims)
    fp = (hard & ~truth).sum(dim=dims)
    fn = (~hard & truth).sum(dim=dims)
    return tp.long().cpu(), fp.long().cpu(), fn.long().cpu()


def _multiclass_counts(
    pred: torch.Tensor,
    tgt: torch.Tensor,
    valid: ArrayLike | None,
    config: ArchitectureConfig,
    from_logits: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    k = config.num_classes
    if tgt.ndim in (4, 5) and tgt.shape[1] == 1 and pred.ndim == tgt.ndim:
        tgt = tgt[:, 0]  # (N, 1, *sp) labels
        if pred.shape[1] == 1 and not pred.is_floating_point():
            pred = pred[:, 0]  # a label map shaped like that target
    if pred.ndim == tgt.ndim + 1:
        if pred.shape[1] != k:
            raise ValueError(f"multiclass prediction needs {k} channels; got shape {tuple(pred.shape)}")
        labels = pred.argmax(dim=1)  # argmax of logits == argmax of probabilities
    elif pred.ndim == tgt.ndim and not pred.is_floating_point():
        labels = pred.long()
    else:
        raise ValueError(
            f"multiclass prediction must be (N, {k}, *spatial) scores or an integer label map shaped like "
            f"the target {tuple(tgt.shape)}; got {tuple(pred.shape)}"
        )
    if tuple(labels.shape) != tuple(tgt.shape):
        raise ValueError(f"target shape {tuple(tgt.shape)} does not match prediction {tuple(labels.shape)}")
    truth = tgt.to(labels.device)
    truth = truth.round().long() if truth.is_floating_point() else truth.long()
    mask = _valid_bool(valid, labels, tuple(labels.shape[1:]))
    if mask is not None:
        keep = mask[:, 0]
        labels, truth = labels[keep], truth[keep]
    labels, truth = labels.reshape(-1), truth.reshape(-1)
    if truth.numel() and (int(truth.min()) < 0 or int(truth.max()) >= k):
        raise ValueError(f"multiclass target labels must lie in 0..{k - 1}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"multiclass predicted labels must lie in 0..{k - 1}")
    confusion = torch.bincount(truth * k + labels, minlength=k * k).reshape(k, k).cpu()  # [true, predicted]
    tp = confusion.diagonal()
    fp = confusion.sum(dim=0) - tp
    fn = confusion.sum(dim=1) - tp
    return tp[1:].long(), fp[1:].long(), fn[1:].long()


def scores_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> dict[str, Any]:
    """Dice / IoU per class and their means under the absent-class rule (see the module doc)."""
    tp_l, fp_l, fn_l = (t.tolist() for t in (tp, fp, fn))
    dice, iou, scored = [], [], []
    for a, b, c in zip(tp_l, fp_l, fn_l, strict=True):
        empty = a + b + c == 0
        scored.append(not empty)
        dice.append(1.0 if empty else 2.0 * a / (2.0 * a + b + c))
        iou.append(1.0 if empty else a / (a + b + c))
    used = [i for i, s in enumerate(scored) if s]
    return {
        "dice": sum(dice[i] for i in used) / len(used) if used else 1.0,
        "iou": sum(iou[i] for i in used) / len(used) if used else 1.0,
        "dice_per_class": dice,
        "iou_per_class": iou,
        "scored": scored,
        "tp": tp_l,
        "fp": fp_l,
        "fn": fn_l,
    }


def segmentation_scores(
    prediction: ArrayLike,
    target: ArrayLike,
    architecture: Mapping[str, Any] | ArchitectureConfig,
    valid: ArrayLike | None = None,
    from_logits: bool = True,
) -> dict[str, Any]:
    """Dice and IoU of one batch of hard predictions.

    prediction: logits (``from_logits=True``) or probabilities (``from_logits=False``), shaped
        (N, C, *spatial); or an already hard mask / label map (see the module doc).
    Returns ``dice``, ``iou`` (means over scored classes), ``dice_per_class``, ``iou_per_class``
    (binary: [fg]; multiclass: classes 1..K-1; multilabel: one per channel), ``scored`` (which
    classes entered the means) and the per-class counts ``tp``, ``fp``, ``fn``.
    """
    return scores_from_counts(*confusion_counts(prediction, target, architecture, valid, from_logits))


class ScoreAccumulator:
    """Data-set-level Dice / IoU: TP, FP, FN summed over every `update`, scored once in `compute`."""

    def __init__(self, architecture: Mapping[str, Any] | ArchitectureConfig):
        self.architecture = _as_config(architecture)
        mode = self.architecture.output_mode
        self.n_classes = (
            1
            if mode in ("binary", "instance")
            else self.architecture.num_classes - 1
            if mode == "multiclass"
            else self.architecture.output_channels
        )
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.tp = torch.zeros(self.n_classes, dtype=torch.long)
        self.fp = torch.zeros(self.n_classes, dtype=torch.long)
        self.fn = torch.zeros(self.n_classes, dtype=torch.long)
        self.batches = 0

    def update(
        self,
        logits: ArrayLike,
        target: ArrayLike,
        valid: ArrayLike | None = None,
        from_logits: bool = True,
    ) -> None:
        """Add one batch's counts."""
        tp, fp, fn = confusion_counts(logits, target, self.architecture, valid, from_logits)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.batches += 1

    def merge_ranks(self, module: Any) -> None:
        """Under DDP: replace this rank's counts by the sum over all ranks (`module.all_gather`)."""
        counts = torch.stack([self.tp, self.fp, self.fn]).to(module.device)
        total = module.all_gather(counts).reshape(-1, *counts.shape).sum(0).cpu()
        self.tp, self.fp, self.fn = total[0], total[1], total[2]

    def compute(self) -> dict[str, Any]:
        """Scores over everything seen since the last `reset` (same keys as `segmentation_scores`)."""
        return scores_from_counts(self.tp, self.fp, self.fn)
