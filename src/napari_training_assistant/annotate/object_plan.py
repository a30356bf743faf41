"""Which objects a set of prompts asks for, shared by every backend so that all number objects alike:
one per positive box (points inside refine it), then one from the points outside every box; exemplars as
normalised centre boxes; the probability threshold and its logit."""

from __future__ import annotations

import math

from .errors import Sam3Error
from .prompts import Box, Point, Prompts

VISUAL_TEXT = "visual"  # what SAM3 reads as the text of an exemplar-only prompt


def exemplar_cxcywh(box: Box, width: int, height: int) -> list[float]:
    """An exemplar box as `add_geometric_prompt` takes it: [centre x, centre y, width, height] in 0..1."""
    x0, x1 = sorted((box.x0, box.x1))
    y0, y1 = sorted((box.y0, box.y1))
    values = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
    return [float(min(max(v, 0.0), 1.0)) for v in values]


def box_contains(box: Box, point: Point) -> bool:
    return min(box.x0, box.x1) <= point.x <= max(box.x0, box.x1) and min(box.y0, box.y1) <= point.y <= max(box.y0, box.y1)


def plan_objects(prompts: Prompts, *, negative_only: bool = False) -> list[tuple[Box | None, tuple[Point, ...]]]:
    """The objects to segment, in label order: one per positive box (with the points that lie in it, each
    point going to the first box that holds it), then one object from the points outside every box (or from
    all points when there is no box). Negative boxes outside exemplars carry no object and are skipped.
    Negative points alone are refused unless `negative_only` (3D: a correction of an object seeded on
    another slice)."""
    boxes = [b for b in prompts.boxes if b.positive]
    owned: list[list[Point]] = [[] for _ in boxes]
    loose: list[Point] = []
    for point in prompts.points:
        owner = next((i for i, box in enumerate(boxes) if box_contains(box, point)), None)
        (loose if owner is None else owned[owner]).append(point)
    objects: list[tuple[Box | None, tuple[Point, ...]]] = [(box, tuple(pts)) for box, pts in zip(boxes, owned, strict=True)]
    if loose:
        if not negative_only and not any(p.positive for p in loose):
            where = " outside the boxes" if boxes else ""
            raise Sam3Error(f"only negative points{where}: click at least one positive point on the object")
        objects.append((None, tuple(loose)))
    return objects


def logit(probability: float) -> float:
    p = min(max(float(probability), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def check_threshold(threshold: float) -> float:
    if not 0.0 < float(threshold) < 1.0:
        raise Sam3Error(f"SAM3 threshold must lie between 0 and 1 (exclusive), not {threshold}")
    return float(threshold)


def check_concept(prompts: Prompts) -> str:
    """The text a concept prompt reads ("visual" for exemplars alone), or a `Sam3Error` saying what is wrong."""
    if prompts.text is not None and not prompts.text.strip():
        raise Sam3Error("the text prompt is empty: type what to find (e.g. nucleus), or draw exemplar boxes")
    if not prompts.is_concept:
        raise Sam3Error("a concept prompt needs a text (e.g. nucleus) or exemplar boxes around example objects")
    if not prompts.text and not any(box.positive for box in prompts.exemplars):
        raise Sam3Error("the exemplar boxes are all negative: draw at least one positive exemplar around an object to find")
    return prompts.text.strip() if prompts.text else VISUAL_TEXT
