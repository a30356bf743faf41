"""Voxel boxes and points in one axis order (the spec's `axis_order`, e.g. z, y, x)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """Half-open voxel box [start, stop) per axis."""

    start: tuple[int, ...]
    stop: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.start) != len(self.stop):
            raise ValueError(f"box start {self.start} and stop {self.stop} differ in length")
        if any(b < a for a, b in zip(self.start, self.stop, strict=True)):
            raise ValueError(f"box stop {self.stop} is before start {self.start} on some axis")

    @classmethod
    def from_sequences(cls, start: Sequence[float], stop: Sequence[float]) -> Box:
        return cls(tuple(int(round(v)) for v in start), tuple(int(round(v)) for v in stop))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))

    @property
    def ndim(self) -> int:
        return len(self.start)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def inflate(self, margin: Sequence[int]) -> Box:
        return Box(
            tuple(a - m for a, m in zip(self.start, margin, strict=True)),
            tuple(b + m for b, m in zip(self.stop, margin, strict=True)),
        )

    def contains(self, point: Sequence[float]) -> bool:
        """True when the point's voxel lies inside (start <= p < stop on every axis)."""
        return all(a <= p < b for a, p, b in zip(self.start, point, self.stop, strict=True))

    def intersect(self, other: Box) -> Box | None:
        start = tuple(max(a, b) for a, b in zip(self.start, other.start, strict=True))
        stop = tuple(min(a, b) for a, b in zip(self.stop, other.stop, strict=True))
        return None if any(b <= a for a, b in zip(start, stop, strict=True)) else Box(start, stop)

    def slices(self, origin: Sequence[int] | None = None) -> tuple[slice, ...]:
        """Slices of this box in an array whose element 0 sits at `origin` (default: 0)."""
        origin = origin or (0,) * self.ndim
        return tuple(slice(a - o, b - o) for a, b, o in zip(self.start, self.stop, origin, strict=True))


def centred_window(point: Sequence[float], window: Sequence[int]) -> Box:
    """The window of `window` voxels centred on `point`: start = round(point - window / 2) per axis.

    Rounding is numpy's (half to even), so a point at voxel centre 10.0 with window 4 gives [8, 12).
    """
    start = tuple(int(np.round(p - w / 2)) for p, w in zip(point, window, strict=True))
    return Box(start, tuple(s + w for s, w in zip(start, window, strict=True)))
