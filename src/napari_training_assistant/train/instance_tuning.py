"""Post-processing of an instance model tuned on its validation pairs once training ends.

The seeded watershed's thresholds and sizes (`predict.instances.InstanceSettings`) suit some images better
than others: a model trained on dim nuclei outputs lower foreground probabilities, a tissue of small cells
needs a smaller `min_size`. As StarDist tunes its probability and NMS thresholds after training, the run
predicts its whole validation pairs once and scores a small grid of settings (thresholds, `split_depth`,
`min_size`) by object accuracy at IoU 0.5; its many ties go to the highest mean accuracy over IoU 0.5:0.95,
then to the defaults. The result is recorded in the checkpoint
(``metrics["instance_postprocessing"]``) and every prediction with that checkpoint starts from it; the
user's own settings still win field by field.

Tuning is skipped (defaults kept, the reason recorded) when the run validated on its training pairs or
its validation pairs hold fewer than `MIN_OBJECTS` objects: too little to choose from honestly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..predict.instances import MIN_SIZE, InstanceSettings, grown_objects, object_cores
from .instance_metrics import match_dataset, summary

MIN_OBJECTS = 10  # fewer validation objects: the defaults are kept
MAX_VOXELS = 1 << 20  # validation voxels tuned on at most (about 40 s in 2D on 2 CPU cores)
MIN_EDGE = 32  # a crop thinner than this on an axis is not worth tuning on
FOREGROUND = (0.3, 0.4, 0.5, 0.6, 0.7)
BOUNDARY = (0.3, 0.5, 0.7)
SPLIT_DEPTH = {2: (0.0, 1.0, 2.0, 3.0), 3: (0.0,)}  # 3D: voxel distances ignore anisotropy, never split
MIN_SIZE_FACTORS = (0.5, 1.0, 2.5, 5.0)  # times the dimensionality's default min_size


@dataclass(frozen=True)
class Tuning:
    """The chosen settings (every field resolved) and what they scored on the validation objects."""

    settings: InstanceSettings
    accuracy_50: float | None
    default_accuracy_50: float | None
    objects: int
    images: int
    note: str = ""

    @classmethod
    def kept(cls, spatial_dims: int, note: str, objects: int = 0, images: int = 0) -> Tuning:
        """The defaults kept, for the reason `note`."""
        return cls(InstanceSettings().resolved(spatial_dims), None, None, objects, images, note)

    def record(self) -> dict[str, Any]:
        """The plain-JSON record kept in the checkpoint's metrics."""
        return {
            "settings": self.settings.as_dict(),
            "tuned": not self.note,
            "val_accuracy_50": _round(self.accuracy_50),
            "default_val_accuracy_50": _round(self.default_accuracy_50),
            "val_objects": self.objects,
            "val_images": self.images,
            "note": self.note,
        }

    def summary(self) -> str:
        """One line for the run's log."""
        s = self.settings
        chosen = f"foreground > {s.foreground_threshold}, boundary < {s.boundary_threshold}, min size {s.min_size}, split {s.split_depth}"
        if self.note:
            return f"object post-processing: defaults kept ({self.note}): {chosen}"
        return (
            f"object post-processing tuned on {self.images} validation image(s), {self.objects} objects: {chosen}; "
            f"accuracy at IoU 0.5 {self.default_accuracy_50:.3f} -> {self.accuracy_50:.3f}"
        )


def tune_settings(pairs: Sequence[tuple[np.ndarray, np.ndarray]], spatial_dims: int) -> Tuning:
    """The grid's best `InstanceSettings` on (probabilities (2, *spatial), true instance labels) pairs."""
    objects = sum(int(np.count_nonzero(np.unique(truth))) for _, truth in pairs)
    if objects < MIN_OBJECTS:
        return Tuning.kept(spatial_dims, f"{objects} validation object(s), fewer than {MIN_OBJECTS}", objects, len(pairs))
    default = InstanceSettings().resolved(spatial_dims)
    scores = _grid_scores(pairs, spatial_dims)
    best = max(scores, key=lambda s: (scores[s]["accuracy_50"], scores[s]["accuracy_mean"], s == default))
    return Tuning(best, scores[best]["accuracy_50"], scores[default]["accuracy_50"], objects, len(pairs))


def tune_run(run: Any) -> Tuning | None:
    """The tuning of a finished pair run (`PreparedRun`) of an instance model; None for other models."""
    if run.architecture.get("output_mode") != "instance" or run.data.kind != "pairs":
        return None
    dims = 3 if run.architecture["spatial_dims"] == "3d" else 2
    if run.data.val_note:
        return Tuning.kept(dims, "no val pairs: the run validated on its training pairs")
    from ..predict import predict_image

    model = run.module.model
    return tune_on_pairs(lambda image: predict_image(model, image), run.data.val_dataset.pairs, dims)


def tune_on_pairs(predict: Callable[[np.ndarray], np.ndarray], pairs: Sequence[Any], spatial_dims: int) -> Tuning:
    """Predict the validation pairs (`PairArrays`: normalised (C, *spatial) image, instance mask) with `predict`
    (image -> probabilities) and tune on them: whole while `MAX_VOXELS` allows, then a central crop of what is
    left of the budget; memory-mapped pairs are left out."""
    data, left = [], MAX_VOXELS
    for pair in pairs:
        box = _central_box(pair.spatial_shape, left)
        if not pair.normalized or box is None:
            continue
        left -= int(np.prod([b.stop - b.start for b in box]))
        mask = pair.mask[0] if pair.mask.ndim == len(box) + 1 else pair.mask
        data.append((predict(np.ascontiguousarray(pair.image[(slice(None), *box)])), np.asarray(mask[box])))
    if not data:
        return Tuning.kept(spatial_dims, "no validation image to tune on")
    return tune_settings(data, spatial_dims)


def _central_box(shape: Sequence[int], voxels: int) -> tuple[slice, ...] | None:
    """The whole of `shape` when it holds at most `voxels`, else its central box of at most `voxels`, as cubic
    as the shape allows (short axes stay whole); None when that box would be thinner than `MIN_EDGE`."""
    edges = list(shape)
    left, budget = len(shape), float(voxels)
    for axis in sorted(range(len(shape)), key=lambda a: shape[a]):  # short axes first: whole when they fit
        share = budget ** (1 / left) if budget > 0 else 0.0
        edges[axis] = min(int(shape[axis]), int(share + 1e-9))
        if edges[axis] < min(MIN_EDGE, shape[axis]):
            return None
        budget, left = budget / edges[axis], left - 1
    return tuple(slice((n - e) // 2, (n - e) // 2 + e) for n, e in zip(shape, edges, strict=True))


def _grid_scores(pairs: Sequence[tuple[np.ndarray, np.ndarray]], spatial_dims: int) -> dict[InstanceSettings, dict[str, float]]:
    """Object matching of every combination of the candidate values (the defaults among them); the cores of
    each thresholds/split combination are computed once for all sizes."""
    sizes = [max(1, round(MIN_SIZE[spatial_dims] * f)) for f in MIN_SIZE_FACTORS]
    scores = {}
    for fg, b, split in itertools.product(FOREGROUND, BOUNDARY, SPLIT_DEPTH[spatial_dims]):
        cores = [(object_cores(prob, InstanceSettings(fg, b, split_depth=split)), truth) for prob, truth in pairs]
        for size in sizes:
            settings = InstanceSettings(fg, b, size, max(1, size // 4), split)
            scores[settings] = summary(match_dataset([(truth, grown_objects(*found, settings)) for found, truth in cores]))
    return scores


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
