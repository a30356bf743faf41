"""Points in spatially coherent chunks (one Dask task each), and how a chunk reads its windows.

Points are binned on a grid of `cell` voxels and ordered by cell (C order), then cut into chunks of at most
`size` points: neighbouring synapses land in one task. A chunk reads the union box of its windows once when
that box holds at most `REGION_READ_RATIO` times the voxels of the windows themselves (dense points: the
region-cache way), else every window on its own (sparse points); the choice is recorded per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.geometry import Box

REGION_READ_RATIO = 2.0
DEFAULT_CHUNK_POINTS = 256


@dataclass(frozen=True)
class PointChunk:
    index: int
    rows: np.ndarray  # row numbers of the points in the whole table

    def __len__(self) -> int:
        return len(self.rows)


def window_starts(points: np.ndarray, window: Sequence[int]) -> np.ndarray:
    """(n, d) window starts: round(point - window / 2), as training centres its windows."""
    return np.round(points - np.asarray(window, dtype=np.float64) / 2).astype(np.int64)


def spatial_chunks(points: np.ndarray, window: Sequence[int], size: int = DEFAULT_CHUNK_POINTS) -> Iterator[PointChunk]:
    """Chunks of at most `size` points, neighbours together (grid cells of 4 windows per axis)."""
    if not len(points):
        return
    cell = np.asarray(window, dtype=np.float64) * 4
    keys = np.floor(points / cell).astype(np.int64)
    order = np.lexsort(keys.T[::-1])
    for index, start in enumerate(range(0, len(order), size)):
        yield PointChunk(index, np.sort(order[start : start + size]))


def read_plan(starts: np.ndarray, window: Sequence[int]) -> Box | None:
    """The union box of the windows when reading it once is worth it (dense), else None (read each window)."""
    stops = starts + np.asarray(window)
    union = Box(tuple(int(v) for v in starts.min(axis=0)), tuple(int(v) for v in stops.max(axis=0)))
    return union if union.size <= REGION_READ_RATIO * len(starts) * math.prod(window) else None
