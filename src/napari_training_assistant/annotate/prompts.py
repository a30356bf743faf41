"""Prompts in image pixel coordinates (x to the right, y down), independent of napari and of any backend.

napari layers store (row, col) = (y, x) vertices; `from_layers.py` converts them into these types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Box:
    """An axis-aligned box, corners in pixels (x0 <= x1, y0 <= y1); negative exemplar boxes exclude."""

    x0: float
    y0: float
    x1: float
    y1: float
    positive: bool = True

    def as_record(self) -> dict[str, Any]:
        return {"type": "box", "xyxy": [round(v, 2) for v in (self.x0, self.y0, self.x1, self.y1)], "positive": self.positive}


@dataclass(frozen=True)
class Point:
    """A click in pixels; positive adds to the object, negative removes from it."""

    x: float
    y: float
    positive: bool = True

    def as_record(self) -> dict[str, Any]:
        return {"type": "point", "xy": [round(self.x, 2), round(self.y, 2)], "positive": self.positive}


@dataclass(frozen=True)
class Prompts:
    """What the user asked SAM3 for on one 2D image (or one frame of a stack).

    - `boxes`: each box segments one object (label 1, 2, ... in box order), refined by `points` that lie in it.
    - `points` without boxes: one object from all points together.
    - `exemplars`: boxes around example objects; SAM3 finds every similar object (instance labels).
    - `text`: a concept ("nucleus"); SAM3 finds every instance of it, refined by the exemplars.
    """

    boxes: tuple[Box, ...] = ()
    points: tuple[Point, ...] = ()
    exemplars: tuple[Box, ...] = ()
    text: str | None = None

    def is_empty(self) -> bool:
        return not (self.boxes or self.points or self.exemplars or self.text)

    @property
    def is_concept(self) -> bool:
        """Find every instance (a text, even an empty one that `check_concept` refuses, and/or exemplars)
        rather than one object per box or point set."""
        return self.text is not None or bool(self.exemplars)

    def as_records(self, mode: str, frame: int | None = None) -> list[dict[str, Any]]:
        """JSON-ready description for the dataset manifest (`prompts` of a `sam3_preview` pair)."""
        kinds = [("box", self.boxes), ("point", self.points), ("exemplar", self.exemplars)]
        records = [{"type": "text", "text": self.text, "mode": mode}] if self.text else []
        for kind, items in kinds:
            for item in items:
                record = item.as_record() | {"mode": mode}
                if kind == "exemplar":
                    record["type"] = "exemplar_box"
                records.append(record)
        return [r | {"frame": frame} for r in records] if frame is not None else records


@dataclass
class FramePrompts:
    """Prompts for 3D propagation: the frames (slices) the user prompted on, by index."""

    frames: dict[int, Prompts] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return all(p.is_empty() for p in self.frames.values())
