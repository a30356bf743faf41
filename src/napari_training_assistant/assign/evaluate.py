"""Assignment quality against ground-truth partners: precision, recall and accuracy of pre, post and both.

Ground truth per synapse, first found of:
  1. `pre_segment` / `post_segment` properties or relationships of the annotation (CSV columns, precomputed);
  2. a line annotation (pre -> post): the segments under its start and end;
  3. `label0` / `label1` volumes: the segment with the most label voxels in the synapse's contact box.
A synapse without ground truth is left out. Precision counts only synapses given a partner (a flagged
"nothing found" is not a wrong answer but a missing one); recall and accuracy count all of them.
Figures are given overall and per region tag (regions of the spec).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.annotations import Synapse
from ..data.geometry import Box
from ..data.point_windows import LayerSet
from ..train.point_inputs import read_regions
from ..train.point_spec import PointSpec


def ground_truth(synapse: Synapse, point: Sequence[float], layers: LayerSet, radius: Sequence[int]) -> tuple[int, int] | None:
    """(pre, post) segment ids of one synapse, or None when nothing says."""
    values = [_listed(synapse, side) for side in ("pre_segment", "post_segment")]
    if all(v is not None for v in values):
        return int(values[0]), int(values[1])
    segmentation = layers.labels["segmentation"]
    if synapse.end is not None:
        return _segment_at(segmentation, synapse.start), _segment_at(segmentation, synapse.end)
    if "label0" in layers.labels and "label1" in layers.labels:
        box = Box(tuple(round(p) - r for p, r in zip(point, radius, strict=True)), tuple(round(p) + r + 1 for p, r in zip(point, radius, strict=True)))
        segments = segmentation.read(box)
        return tuple(_majority(segments, layers.labels[key].read(box) > 0) for key in ("label0", "label1"))  # type: ignore[return-value]
    return None


def _listed(synapse: Synapse, name: str) -> int | None:
    if synapse.relationships.get(name):
        return int(synapse.relationships[name][0])
    value = synapse.properties.get(name)
    try:
        return int(value) if value is not None and str(value).strip() != "" else None
    except (TypeError, ValueError):
        return None


def _segment_at(volume, point: Sequence[float]) -> int:
    """The segment of the voxel whose centre is nearest (voxel i spans i - 0.5 .. i + 0.5, as training reads
    line ends): with 40 nm sections, flooring z = 3.8 would look one section (another cell) too far."""
    voxel = tuple(int(np.round(p)) for p in point)
    return int(volume.read(Box(voxel, tuple(v + 1 for v in voxel))).reshape(-1)[0])


def _majority(segments: np.ndarray, where: np.ndarray) -> int:
    ids, counts = np.unique(segments[where & (segments > 0)], return_counts=True)
    return int(ids[np.argmax(counts)]) if len(ids) else 0


def evaluate_table(table: Any, synapses: list[Synapse], rows: np.ndarray, spec: PointSpec, base: Path, layers: LayerSet, radius: Sequence[int]) -> dict[str, Any]:
    """Figures overall and per region tag for the assigned `table` (rows index `synapses`)."""
    pre = table.column("pre_segment").to_numpy()
    post = table.column("post_segment").to_numpy()
    row_of = table.column("row").to_numpy()
    points = np.array([[table.column(a)[i].as_py() for a in spec.axis_order] for i in range(table.num_rows)]) if table.num_rows else np.zeros((0, 3))
    truth = [ground_truth(synapses[int(r)], p, layers, radius) for r, p in zip(row_of, points, strict=True)]
    known = np.array([t is not None and t[0] > 0 and t[1] > 0 for t in truth], dtype=bool)
    if not known.any():
        return {"synapses_with_ground_truth": 0}
    true_pre = np.array([t[0] if t else 0 for t in truth])
    true_post = np.array([t[1] if t else 0 for t in truth])
    out = {"overall": _figures(pre, post, true_pre, true_post, known)}
    regions = read_regions(spec, base)
    by_tag: dict[str, np.ndarray] = {}
    for region in regions:
        inside = np.array([region.box.contains(p) for p in points], dtype=bool)
        for tag in region.tags:
            by_tag[tag] = by_tag.get(tag, np.zeros(len(points), bool)) | inside
    out["per_tag"] = {tag: _figures(pre, post, true_pre, true_post, known & mask) for tag, mask in sorted(by_tag.items())}
    out["synapses_with_ground_truth"] = int(known.sum())
    return out


def _figures(pre, post, true_pre, true_post, known) -> dict[str, Any]:
    n = int(known.sum())
    if not n:
        return {"n": 0}
    figures: dict[str, Any] = {"n": n}
    for name, got, want in (("pre", pre, true_pre), ("post", post, true_post)):
        answered = known & (got > 0)
        correct = known & (got == want)
        figures[name] = _prf(int(correct.sum()), int(answered.sum()), n)
    both_answered = known & (pre > 0) & (post > 0)
    both_correct = known & (pre == true_pre) & (post == true_post)
    figures["both"] = _prf(int(both_correct.sum()), int(both_answered.sum()), n)
    return figures


def _prf(correct: int, answered: int, total: int) -> dict[str, float]:
    return {
        "precision": round(correct / answered, 4) if answered else 0.0,
        "recall": round(correct / total, 4) if total else 0.0,
        "accuracy": round(correct / total, 4) if total else 0.0,
    }
