"""How a volume of any size is cut into blocks that are predicted independently and exactly.

The whole region is tiled once (the grid `predict_image` uses: tiles every `stride` voxels, the last
ending at the region's end). A block of the output is predicted from the tiles of that grid that touch
it, read with their context: the block's *read box* is the union of those tiles, reaching `halo` voxels
beyond the block (halo = tile - stride for a block aligned to the grid; `reach` is the most any block reads). Every voxel of a block then
gets exactly the tile contributions, weights and summation order of the whole-image prediction: block
seams do not exist. Tiles that touch two blocks are computed by both (`recompute_ratio`); bigger
blocks waste less.

Blocks are multiples of the output's chunks (`chunk`), so no two blocks ever write one chunk: Dask
workers write in parallel without locks. The pyramid of the output halves every axis per level; each
block writes its own part of every level (`level_chunk` keeps level chunks inside one block).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from .tiling import TileSlices, tile_starts

DEFAULT_BLOCK_EDGE = {2: 4096, 3: 384}  # voxels per axis: ~16 M voxels in 2D, ~57 M in 3D
DEFAULT_CHUNK_EDGE = {2: 256, 3: 64}
PYRAMID_SMALLEST = {2: 256, 3: 64}  # levels are added until the largest axis is at most this
MAX_LEVELS = 8

Slices = tuple[slice, ...]


def largest_divisor_at_most(value: int, limit: int) -> int:
    """The largest d <= limit with value % d == 0 (1 at worst)."""
    for d in range(min(value, limit), 0, -1):
        if value % d == 0:
            return d
    return 1


@dataclass(frozen=True)
class BlockWork:
    """One block: where it lands in the output, what it reads and which tiles it runs."""

    index: int
    out: Slices  # in region coordinates
    read: Slices  # in region coordinates: the union of its tiles
    tiles: tuple[TileSlices, ...]  # relative to `read`
    region: Slices  # the block inside `read`

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.out)


@dataclass(frozen=True)
class BlockPlan:
    """Blocks of a region of `shape` voxels tiled by `tile` every `strides` voxels."""

    shape: tuple[int, ...]
    tile: tuple[int, ...]
    strides: tuple[int, ...]
    block: tuple[int, ...]
    chunk: tuple[int, ...]
    levels: int

    @classmethod
    def build(
        cls,
        shape: Sequence[int],
        tile: Sequence[int],
        strides: Sequence[int],
        block: Sequence[int] | None = None,
    ) -> BlockPlan:
        """A plan with `block` (default: `DEFAULT_BLOCK_EDGE` rounded to the tile grid), clipped to `shape`."""
        shape = tuple(int(s) for s in shape)
        dims = len(shape)
        tile = tuple(min(int(t), s) for t, s in zip(tile, shape, strict=True))
        strides = tuple(int(s) for s in strides)
        chunk_edge = DEFAULT_CHUNK_EDGE.get(dims, 64)
        if block is None:
            block = tuple(_default_edge(dims, st, chunk_edge) for st in strides)
        block = tuple(min(int(b), s) for b, s in zip(block, shape, strict=True))
        chunk = tuple(largest_divisor_at_most(b, chunk_edge) for b in block)
        plan = cls(shape, tile, strides, block, chunk, 1)
        return cls(shape, tile, strides, block, chunk, plan._pyramid_levels())

    # ---- grid ---------------------------------------------------------------------------------

    @cached_property
    def tile_starts(self) -> tuple[tuple[int, ...], ...]:
        return tuple(
            tuple(tile_starts(s, t, stride=st)) for s, t, st in zip(self.shape, self.tile, self.strides, strict=True)
        )

    @property
    def grid(self) -> tuple[int, ...]:
        """Blocks per axis."""
        return tuple(math.ceil(s / b) for s, b in zip(self.shape, self.block, strict=True))

    @property
    def count(self) -> int:
        return math.prod(self.grid)

    @property
    def tiles_total(self) -> int:
        """Tiles of the whole-region grid (what `predict_image` runs)."""
        return math.prod(len(starts) for starts in self.tile_starts)

    @cached_property
    def tiles_computed(self) -> int:
        """Tiles run over all blocks (tiles at block borders count once per block)."""
        per_axis = [
            [len(self._axis_tiles(a, i)) for i in range(n)] for a, n in enumerate(self.grid)
        ]
        return math.prod(sum(counts) for counts in per_axis)

    @property
    def recompute_ratio(self) -> float:
        """Tiles run block-wise / tiles of one whole-region pass (1.0 = no tile runs twice)."""
        return self.tiles_computed / self.tiles_total

    @property
    def halo(self) -> tuple[int, ...]:
        """The tile overlap in voxels (tile - stride) per axis: the context a block reads beyond its edge
        on the regular grid (`reach` adds the last tile of an axis, which ends at the region's end)."""
        return tuple(max(0, t - s) for t, s in zip(self.tile, self.strides, strict=True))

    @cached_property
    def reach(self) -> tuple[int, ...]:
        """The most voxels any block reads beyond its edge, per axis."""
        out = []
        for axis, n in enumerate(self.grid):
            reach = 0
            for i in range(n):
                lo, hi = i * self.block[axis], min((i + 1) * self.block[axis], self.shape[axis])
                starts = self._axis_tiles(axis, i)
                reach = max(reach, lo - starts[0], starts[-1] + self.tile[axis] - hi)
            out.append(reach)
        return tuple(out)

    def _axis_tiles(self, axis: int, i: int) -> list[int]:
        lo = i * self.block[axis]
        hi = min(lo + self.block[axis], self.shape[axis])
        t = self.tile[axis]
        return [s for s in self.tile_starts[axis] if s < hi and s + t > lo]

    def position(self, index: int) -> tuple[int, ...]:
        return tuple(int(i) for i in _unravel(index, self.grid))

    def out_slices(self, index: int) -> Slices:
        return tuple(
            slice(p * b, min((p + 1) * b, s)) for p, b, s in zip(self.position(index), self.block, self.shape, strict=True)
        )

    def work(self, index: int) -> BlockWork:
        """The block's output slices, read box, tiles (relative to the read box) and region."""
        if not 0 <= index < self.count:
            raise IndexError(f"block {index} is outside 0..{self.count - 1}")
        out = self.out_slices(index)
        per_axis = [self._axis_tiles(a, p) for a, p in enumerate(self.position(index))]
        read = tuple(slice(starts[0], starts[-1] + t) for starts, t in zip(per_axis, self.tile, strict=True))
        tiles = tuple(
            tuple(slice(c - r.start, c - r.start + t) for c, r, t in zip(corner, read, self.tile, strict=True))
            for corner in itertools.product(*per_axis)
        )
        region = tuple(slice(o.start - r.start, o.stop - r.start) for o, r in zip(out, read, strict=True))
        return BlockWork(index, out, read, tiles, region)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.count))

    # ---- pyramid --------------------------------------------------------------------------------

    def level_shape(self, level: int) -> tuple[int, ...]:
        return tuple(math.ceil(s / 2**level) for s in self.shape)

    def level_chunk(self, level: int) -> tuple[int, ...]:
        """Chunks of pyramid `level`: a divisor of the block's share there, so one block writes each chunk."""
        edge = max(self.chunk)
        out = []
        for b, s, n in zip(self.block, self.level_shape(level), self.grid, strict=True):
            share = b >> level if n > 1 else s
            out.append(largest_divisor_at_most(max(1, share), edge))
        return tuple(out)

    def level_slices(self, index: int, level: int) -> Slices:
        step = 2**level
        return tuple(slice(o.start // step, math.ceil(o.stop / step)) for o in self.out_slices(index))

    def _pyramid_levels(self) -> int:
        """1 + halvings while the largest axis exceeds `PYRAMID_SMALLEST` and blocks stay divisible."""
        smallest = PYRAMID_SMALLEST.get(len(self.shape), 64)
        levels = 1
        while levels < MAX_LEVELS and max(self.level_shape(levels - 1)) > smallest:
            step = 2**levels
            if any(n > 1 and b % step for b, n in zip(self.block, self.grid, strict=True)):
                break
            levels += 1
        return levels


def _default_edge(dims: int, stride: int, chunk_edge: int) -> int:
    """`DEFAULT_BLOCK_EDGE` rounded to a multiple of both the tile stride and the chunk edge."""
    unit = math.lcm(stride, chunk_edge)
    return max(unit, round(DEFAULT_BLOCK_EDGE.get(dims, 384) / unit) * unit)


def _unravel(index: int, grid: Sequence[int]) -> list[int]:
    out = []
    for n in reversed(grid):
        out.append(index % n)
        index //= n
    return out[::-1]
