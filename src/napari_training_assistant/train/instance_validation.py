"""Validation extras of instance models: object matching on every validation tile, each epoch.

Each tile's owned region (where ``valid`` is 1) is post-processed (`instance_labels`, default settings)
and matched against the true objects cropped to the same region; the counts of all tiles (and, under DDP,
all ranks) are added before the scores are formed (`instance_metrics.summary`). Objects cut by a tile
border are cut in the truth alike, so the figure is close to, not equal to, the whole-image benchmark.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..predict.instances import instance_labels
from .instance_metrics import IOU_THRESHOLDS, Matching, match, summary


class InstanceValidation:
    """`ValidationExtras` that adds ``objects`` (accuracy, F1, PQ at IoU 0.5 and mean 0.5:0.95) to the
    scores and logs ``val_instance_accuracy_50``."""

    def start(self, module: Any) -> None:
        self.counts = np.zeros((len(IOU_THRESHOLDS), 4), dtype=np.float64)  # tp, fp, fn, iou_sum

    def batch(self, module: Any, batch: dict[str, Any], logits: torch.Tensor, valid: torch.Tensor | None, batch_idx: int) -> None:
        probabilities = torch.sigmoid(logits.detach().float()).cpu().numpy()
        truth = batch["instances"].cpu().numpy()
        owned = valid.cpu().numpy()[:, 0] > 0 if valid is not None else np.ones(truth.shape, dtype=bool)
        for prob, objects, region in zip(probabilities, truth, owned, strict=True):
            box = _bounding_box(region)
            if box is None:
                continue
            predicted = instance_labels(prob[(slice(None), *box)])
            for row, found in enumerate(match(objects[box], predicted)):
                self.counts[row] += (found.tp, found.fp, found.fn, found.iou_sum)

    def end(self, module: Any, scores: dict[str, Any]) -> None:
        counts = self.counts
        if module.trainer.world_size > 1:
            gathered = module.all_gather(torch.from_numpy(counts).to(module.device))
            counts = gathered.reshape(-1, *counts.shape).sum(0).cpu().numpy()
        matchings = [Matching(t, int(tp), int(fp), int(fn), float(s)) for t, (tp, fp, fn, s) in zip(IOU_THRESHOLDS, counts, strict=True)]
        scores["objects"] = summary(matchings)
        module.log("val_instance_accuracy_50", float(scores["objects"]["accuracy_50"]), sync_dist=False)


def _bounding_box(region: np.ndarray) -> tuple[slice, ...] | None:
    """Slices of the box holding every True voxel of `region` (a tile's owned block), or None when empty."""
    if not region.any():
        return None
    box = []
    for axis in range(region.ndim):
        hits = np.flatnonzero(region.any(axis=tuple(a for a in range(region.ndim) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)
