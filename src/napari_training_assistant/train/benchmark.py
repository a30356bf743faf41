"""Evaluate a checkpoint on the frozen benchmark pairs and keep the result in the benchmark history."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..model import load_model, read_checkpoint_info
from ..preprocess import normalize, with_channel_axis
from ..project import TrainingProject
from ..project.clock import now
from ..project.dataset import pairs_sha256
from ..project.errors import ProjectError
from .instance_metrics import connected_components, match_dataset, summary
from .metrics import ScoreAccumulator


def target_tensor(mask: np.ndarray, output_mode: str) -> torch.Tensor:
    """A saved mask as the batch-of-one target the metrics expect."""
    if output_mode == "multiclass":
        return torch.from_numpy(mask.astype(np.int64))[None]
    if output_mode == "multilabel":
        return torch.from_numpy(mask.astype(np.float32))[None]
    if output_mode == "instance":  # object ids: scored as foreground
        return torch.from_numpy((mask > 0).astype(np.float32))[None, None]
    return torch.from_numpy((mask > 0).astype(np.float32))[None, None]


def instances_of(mask: np.ndarray) -> np.ndarray:
    """The objects of a binary project's mask: its ids when it holds several (an instance mask), else its
    connected components (touching objects then count as one, in the truth as in a binary model's output)."""
    ids = np.unique(mask)
    return mask if np.count_nonzero(ids) > 1 else connected_components(mask)


def evaluate_on_pairs(project: TrainingProject, checkpoint_id: str, pair_ids: list[str]) -> dict[str, Any]:
    """Dataset-level Dice/IoU of the checkpoint's hard predictions over whole pairs (tiled), and object
    matching (`instance_metrics`) of the predicted objects: an instance model's watershed objects (the
    checkpoint's tuned `InstanceSettings`), a binary model's connected components."""
    from ..predict import predict_image, probabilities_to_labels
    from ..predict.instances import checkpoint_settings

    path = project.checkpoints.path_of(checkpoint_id)
    model = load_model(path)
    info = read_checkpoint_info(path)
    mode = info.normalization
    architecture = model.architecture
    scores = ScoreAccumulator(architecture)
    output_mode = architecture["output_mode"]
    counts_objects = output_mode in ("binary", "instance")
    objects: list[tuple[np.ndarray, np.ndarray]] = []
    records = {p.pair_id: p for p in project.dataset.pairs}
    for pair_id in pair_ids:
        image, mask = project.dataset.load(pair_id)
        image = with_channel_axis(image, 0 if records[pair_id].image_channels is not None else None)
        probabilities = predict_image(model, normalize(image, mode, channel_axis_first=True))
        scores.update(torch.from_numpy(probabilities)[None], target_tensor(mask, output_mode), from_logits=False)
        if output_mode == "instance":
            settings = checkpoint_settings(None, info.instance_settings, checkpoint_id)
            objects.append((mask, probabilities_to_labels(probabilities, architecture, settings)))
        elif counts_objects:
            predicted = connected_components(probabilities[0] > float(architecture.get("threshold") or 0.5))
            objects.append((instances_of(mask), predicted))
    result = scores.compute()
    if counts_objects:
        result["objects"] = summary(match_dataset(objects))
    return result


def benchmark_checkpoint(project: TrainingProject, checkpoint_id: str = "latest") -> dict[str, Any]:
    """Evaluate on every benchmark pair; append a row to history/benchmark_history.csv unless the same
    checkpoint was already measured on the same benchmark set (same pairs, same contents: then that row
    is returned)."""
    record = project.checkpoints.get(checkpoint_id)
    benchmark_pairs = [p for p in project.dataset.pairs if p.split == "benchmark"]
    pair_ids = [p.pair_id for p in benchmark_pairs]
    if not pair_ids:
        raise ProjectError(
            f"{project.root} has no benchmark pairs: mark one with `nta set-split {project.root} PAIR benchmark` "
            "(benchmark pairs are held out from training)"
        )
    content = pairs_sha256(benchmark_pairs)
    history = project.history.benchmarks()
    for row in reversed(history):
        if row["checkpoint_id"] == record.checkpoint_id and row.get("benchmark_sha256") == content:
            return row
    scores = evaluate_on_pairs(project, record.checkpoint_id, pair_ids)
    parent_row = next((r for r in reversed(history) if record.parent_id and r["checkpoint_id"] == record.parent_id), None)
    dice, iou = _float(scores["dice"]), _float(scores["iou"])
    row = {
        "checkpoint_id": record.checkpoint_id,
        "parent_id": record.parent_id,
        "timestamp": now().isoformat(timespec="seconds"),
        "n_images": len(pair_ids),
        "dice": dice,
        "iou": iou,
        "dice_per_class": [_float(v) for v in scores["dice_per_class"]],
        "iou_per_class": [_float(v) for v in scores["iou_per_class"]],
        "delta_dice": _delta(dice, parent_row and parent_row["dice"]),
        "delta_iou": _delta(iou, parent_row and parent_row["iou"]),
        "benchmark_sha256": content,
        **{f"instance_{name}": _float(value) for name, value in (scores.get("objects") or {}).items()},
    }
    project.history.append_benchmark(row)
    return row


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else round(value, 6)


def _delta(value: float | None, parent: float | None) -> float | None:
    return None if value is None or parent is None else round(value - parent, 6)
