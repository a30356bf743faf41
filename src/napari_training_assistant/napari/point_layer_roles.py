"""Which viewer layer plays which role in point-windowed training, guessed from layer types, names, shape types
and features (image; labels named pre/label0 and post/label1; the segmentation; Points or Shapes lines for the
synapses; Shapes rectangles with a `split` feature for the regions)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

LAYER_ROLES: dict[str, tuple[str, ...]] = {
    "image": ("Image",),
    "label0": ("Labels",),
    "label1": ("Labels",),
    "segmentation": ("Labels",),
    "points": ("Points", "Shapes"),
    "regions": ("Shapes",),
}
NAME_HINTS: dict[str, tuple[str, ...]] = {  # a name token starting with one of these suits the role
    "image": ("em", "raw", "image", "img"),
    "label0": ("label0", "pre"),
    "label1": ("label1", "post"),
    "segmentation": ("segmentation", "seg", "cell", "neuron", "supervoxel"),
    "points": ("synap", "point", "partner", "line"),
    "regions": ("region", "split", "roi", "box"),
}
CLASHES = {"label0": "label1", "label1": "label0"}  # a name that suits the other role counts against this one


def suits(role: str, layer: Any) -> bool:
    """Whether `layer`'s type can play `role` at all."""
    return type(layer).__name__ in LAYER_ROLES[role]


def score(role: str, layer: Any) -> int:
    """How well `layer` suits `role` (> 0: a plausible choice; the highest wins)."""
    if not suits(role, layer):
        return -100
    points = 0
    tokens = [t for t in re.split(r"[^a-z0-9]+", str(layer.name).lower()) if t]
    if any(t.startswith(h) for t in tokens for h in NAME_HINTS[role]):
        points += 2
    other = CLASHES.get(role)
    if other and any(t.startswith(h) for t in tokens for h in NAME_HINTS[other]):
        points -= 3
    if role in ("label0", "label1", "segmentation"):
        mine = [r for r in ("label0", "label1", "segmentation") if r != role]
        if any(t.startswith(h) for t in tokens for r in mine for h in NAME_HINTS[r]):
            points -= 2
    kinds = set(getattr(layer, "shape_type", []) or [])
    features = set(getattr(getattr(layer, "features", None), "columns", []))
    if role == "regions":
        points += 3 * ("split" in features) + (bool(kinds) and kinds <= {"rectangle", "polygon"}) - 3 * ("line" in kinds)
    if role == "points":
        points += 1 if type(layer).__name__ == "Points" else (1 if kinds == {"line"} else -3)
    return points


def guess(role: str, layers: Iterable[Any], taken: Sequence[str] = ()) -> str | None:
    """The name of the layer that best suits `role` (skipping names in `taken`), or None when none is plausible."""
    ranked = sorted(((score(role, layer), index, layer.name) for index, layer in enumerate(layers) if layer.name not in taken), key=lambda t: (-t[0], t[1]))
    return ranked[0][2] if ranked and ranked[0][0] > 0 else None
