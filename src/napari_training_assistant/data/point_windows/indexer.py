"""`CachedPointIndexer`: index -> the window centred on one annotated point (zetta_utils' idea, standalone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..geometry import Box, centred_window


@dataclass(frozen=True)
class CachedPointIndexer:
    """`len()` is the number of points; `indexer(i)` is the window centred on point i.

    Window start = round(point - window / 2) per axis (numpy rounding), so the window is
    `window` voxels long and the point lies in its middle voxel (the upper middle for even sizes).
    Points are expected inside `region` (the non-inflated box): the cache around it is inflated by
    half a window, so every window lies inside the cache.
    """

    points: tuple[tuple[float, ...], ...]
    window: tuple[int, ...]
    region: Box

    def __post_init__(self) -> None:
        outside = [p for p in self.points if not self.region.contains(p)]
        if outside:
            raise ValueError(f"{len(outside)} point(s) lie outside the region {self.region}, e.g. {outside[0]}")
        if any(w < 1 for w in self.window) or len(self.window) != self.region.ndim:
            raise ValueError(f"window {self.window} must have {self.region.ndim} positive sizes")

    @classmethod
    def build(cls, points: Sequence[Sequence[float]], window: Sequence[int], region: Box) -> CachedPointIndexer:
        return cls(tuple(tuple(float(v) for v in p) for p in points), tuple(int(w) for w in window), region)

    def __len__(self) -> int:
        return len(self.points)

    def __call__(self, index: int) -> Box:
        if not -len(self.points) <= index < len(self.points):
            raise IndexError(f"point index {index} out of range for {len(self.points)} points")
        return centred_window(self.points[index], self.window)

    @property
    def cache_margin(self) -> tuple[int, ...]:
        """Inflation per side that holds every window of a point inside the region."""
        return tuple((w + 1) // 2 + 1 for w in self.window)
