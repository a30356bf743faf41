"""`BlockPlan`: blocks partition the region, each reads exactly the whole-image tiles that touch it, and
no two blocks write one chunk of any pyramid level."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_training_assistant.predict.block_plan import BlockPlan
from napari_training_assistant.predict.tiling import iter_tiles


@st.composite
def plans(draw):
    dims = draw(st.sampled_from([2, 3]))
    shape = [draw(st.integers(1, 90)) for _ in range(dims)]
    tile = [draw(st.integers(4, 40)) for _ in range(dims)]
    strides = [draw(st.integers(1, t)) for t in tile]
    block = [draw(st.integers(4, 64)) for _ in range(dims)]
    return BlockPlan.build(shape, tile, strides, block)


@settings(max_examples=150, deadline=None)
@given(plans())
def test_blocks_partition_the_region_and_read_exactly_the_tiles_that_touch_them(plan):
    owner = np.full(plan.shape, -1)
    whole = list(iter_tiles(plan.shape, plan.tile, strides=plan.strides))
    for index in plan:
        work = plan.work(index)
        assert (owner[work.out] == -1).all()
        owner[work.out] = index
        touching = [t for t in whole if all(s.start < o.stop and s.stop > o.start for s, o in zip(t, work.out, strict=True))]
        absolute = [tuple(slice(s.start + r.start, s.stop + r.start) for s, r in zip(t, work.read, strict=True)) for t in work.tiles]
        assert absolute == touching  # the same tiles, in the whole-image order
        assert all(r.start >= 0 and r.stop <= n for r, n in zip(work.read, plan.shape, strict=True))
        assert all(o.start - r.start <= h and r.stop - o.stop <= h for o, r, h in zip(work.out, work.read, plan.reach, strict=True))
    assert (owner >= 0).all()
    assert plan.tiles_computed >= plan.tiles_total == len(whole)


@settings(max_examples=150, deadline=None)
@given(plans())
def test_no_chunk_of_any_level_is_written_by_two_blocks(plan):
    for level in range(plan.levels):
        chunk = plan.level_chunk(level)
        writers: dict[tuple[int, ...], int] = {}
        for index in plan:
            region = plan.level_slices(index, level)
            ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(region, chunk, strict=True)]
            for key in itertools.product(*ranges):
                starts = [k * c for k, c in zip(key, chunk, strict=True)]
                stops = [min(s + c, n) for s, c, n in zip(starts, chunk, plan.level_shape(level), strict=True)]
                inside = all(r.start <= a and b <= r.stop for a, b, r in zip(starts, stops, region, strict=True))
                assert inside, f"level {level} chunk {key} is only partly in block {index}"
                assert writers.setdefault(key, index) == index


def test_default_blocks_are_large_multiples_of_the_tile_stride_and_chunk():
    plan = BlockPlan.build((20000, 30000), (256, 256), (128, 128))
    assert plan.block == (4096, 4096) and plan.chunk == (256, 256) and plan.halo == (128, 128)
    assert 1.0 < plan.recompute_ratio < 1.15 and plan.levels >= 6
    volume = BlockPlan.build((2000, 2000, 2000), (96, 96, 96), (48, 48, 48))
    assert volume.block == (384, 384, 384) and volume.chunk == (64, 64, 64)
