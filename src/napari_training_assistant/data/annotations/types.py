"""Synapse annotations and tagged regions, in voxel coordinates of the caller's axis order."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from napari_training_assistant.data.geometry import Box

LinePoint = Literal["midpoint", "start", "end"]
LINE_POINTS: tuple[str, ...] = ("midpoint", "start", "end")


@dataclass(frozen=True)
class Synapse:
    """One annotation: a point (`end` is None) or a line from `start` to `end` (e.g. pre -> post).

    Coordinates are voxel coordinates (floats) in the caller's axis order.
    `properties` holds per-annotation values by property id; `relationships` maps a relationship id
    (e.g. "pre_segment") to the related segment ids (filled where the source records them).
    """

    id: int | str
    start: tuple[float, ...]
    end: tuple[float, ...] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    relationships: dict[str, list[int]] = field(default_factory=dict)

    @property
    def is_line(self) -> bool:
        return self.end is not None

    def point(self, line_point: LinePoint = "midpoint") -> tuple[float, ...]:
        """The single point standing for this annotation; points ignore `line_point`."""
        if line_point not in LINE_POINTS:
            raise ValueError(f"line_point {line_point!r} is not one of {', '.join(LINE_POINTS)}")
        if self.end is None or line_point == "start":
            return self.start
        if line_point == "end":
            return self.end
        return tuple((a + b) / 2.0 for a, b in zip(self.start, self.end, strict=True))


@dataclass(frozen=True)
class Region:
    """A voxel box with tags (e.g. {"train"}) and a name for messages."""

    box: Box
    tags: frozenset[str]
    name: str


def points_in_box(
    synapses: Iterable[Synapse], box: Box, line_point: LinePoint = "midpoint"
) -> tuple[list[tuple[Synapse, tuple[float, ...]]], dict[str, int]]:
    """Split synapses into those whose point (see `Synapse.point`) lies in `box` and counts of the rest.

    A point is inside when start <= p < stop on every axis (`Box.contains`). Returns
    `(kept, dropped)`: kept is [(synapse, point)], in input order; dropped maps a reason
    ("outside region", "wrong number of axes", "non-finite coordinate") to a count, listing only
    reasons that occurred.
    """
    if line_point not in LINE_POINTS:
        raise ValueError(f"line_point {line_point!r} is not one of {', '.join(LINE_POINTS)}")
    kept: list[tuple[Synapse, tuple[float, ...]]] = []
    dropped: Counter[str] = Counter()
    for synapse in synapses:
        p = synapse.point(line_point)
        if len(p) != box.ndim:
            dropped["wrong number of axes"] += 1
        elif not all(math.isfinite(v) for v in p):
            dropped["non-finite coordinate"] += 1
        elif not box.contains(p):
            dropped["outside region"] += 1
        else:
            kept.append((synapse, p))
    return kept, dict(dropped)
