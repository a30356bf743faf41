"""What a concept prompt (text and/or exemplars) found: scored instance masks, and how they become labels.

An instance is a boolean mask cropped to its bounding box and placed by its top-left corner in image
pixels, with the window (tile) it was detected in, so one detection costs memory in proportion to its area
and instances from overlapping tiles of a large image live in one coordinate frame. Labels are painted from the instances at a score threshold, which
can change without running the model again. Painting merges an instance into the object it mostly overlaps
(the same object seen by two tiles, or a duplicate detection); otherwise it becomes a new object that only
takes pixels no earlier object holds."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

MIN_SCORE = 0.05  # detections below this are dropped at once: the score slider starts here
MERGE_FRACTION = 0.5  # an instance joins the object holding at least this share of the smaller of the two


@dataclass(frozen=True)
class Instance:
    score: float
    top_left: tuple[int, int]  # (y, x) of the mask's first pixel in the image
    mask: np.ndarray  # bool, the instance's bounding box
    seen: tuple[int, int, int, int]  # (y0, y1, x0, x1): the window (tile) it was detected in

    @classmethod
    def from_full_mask(cls, score: float, mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> Instance | None:
        """The instance of a whole window's boolean mask, the window placed at `offset` (None when empty)."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return None
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        seen = (offset[0], offset[0] + mask.shape[0], offset[1], offset[1] + mask.shape[1])
        return cls(float(score), (int(offset[0] + y0), int(offset[1] + x0)), np.ascontiguousarray(mask[y0:y1, x0:x1]),
                   tuple(int(v) for v in seen))


@dataclass
class Detections:
    """The instances found on one image (or one tile, in image coordinates), most confident first."""

    shape: tuple[int, int]
    instances: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.instances = sorted(self.instances, key=lambda item: -item.score)

    def labels(self, score_threshold: float) -> np.ndarray:
        return self.scored_labels(score_threshold)[0]

    def scored_labels(self, score_threshold: float) -> tuple[np.ndarray, dict[int, float]]:
        """The labels at `score_threshold` and {label: score} of their objects."""
        labels = np.zeros(self.shape, dtype=np.uint32)
        return labels, paint_instances(labels, self.instances, score_threshold)

    def moved(self, offset: tuple[int, int]) -> Detections:
        """The same instances with the image placed at `offset` (y, x) of a larger one (a tile of it)."""
        dy, dx = offset

        def move(item: Instance) -> Instance:
            y0, y1, x0, x1 = item.seen
            return replace(item, top_left=(item.top_left[0] + dy, item.top_left[1] + dx), seen=(y0 + dy, y1 + dy, x0 + dx, x1 + dx))

        return Detections(self.shape, [move(item) for item in self.instances])


def paint_instances(canvas, instances: Iterable[Instance], score_threshold: float, scores: dict[int, float] | None = None) -> dict[int, float]:
    """Paint the instances scoring at least `score_threshold`, in the order given, into `canvas` (a 2D
    numpy or zarr array, read and written one detection window at a time). `scores` holds {label: score} of
    every object in the canvas (empty for an empty canvas); new objects are added to it and it is returned
    (a scan passes the same dict for every tile, so labels stay unique)."""
    scores = {} if scores is None else scores
    for seen, group in itertools.groupby((i for i in instances if i.score >= score_threshold), key=lambda i: i.seen):
        y0, y1, x0, x1 = seen
        region = np.array(canvas[y0:y1, x0:x1])
        for instance in group:
            (top, left), (height, width) = instance.top_left, instance.mask.shape
            local = region[top - y0 : top - y0 + height, left - x0 : left - x0 + width]
            label = merge_target(region, local, instance.mask)
            if label is None:
                label = max(scores, default=0) + 1
            free = instance.mask & ((local == 0) | (local == label))
            if free.any():
                local[free] = label
                scores[label] = max(scores.get(label, 0.0), instance.score)
        canvas[y0:y1, x0:x1] = region
    return scores


def merge_target(window: np.ndarray, local: np.ndarray, mask: np.ndarray) -> int | None:
    """The label that `mask` (at `local`, a view into `window`) mostly overlaps: at least `MERGE_FRACTION`
    of the smaller of the two, each counted inside the detection window (an object from a neighbouring tile
    is compared by the part this tile sees). None when there is no such label."""
    under = local[mask]
    under = under[under > 0]
    if under.size == 0:
        return None
    values, counts = np.unique(under, return_counts=True)
    label, overlap = int(values[np.argmax(counts)]), int(counts.max())
    smaller = min(int(mask.sum()), int(np.count_nonzero(window == label)))
    return label if overlap >= MERGE_FRACTION * smaller else None
