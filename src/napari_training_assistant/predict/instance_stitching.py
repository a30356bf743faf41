"""Instance labels of a block-wise prediction: one object, one id, across block borders.

Each block runs the seeded watershed (`instances.instance_labels`) on its whole *read box* (the block plus
the halo its tiles reach beyond it), so objects near its faces are split with the context of both sides.
It writes its core with block-local ids 1..n (uint32) and records, in the output's ``nta_stitch`` arrays:

* ``objects``: n;
* per face: ``front``, its own labels in the first `slab` voxels inside its low face, and ``beyond``, its
  labels (computed from its halo context) in the `slab` voxels just beyond its high face, i.e. inside the
  next block's core. Objects that do not reach its core are 0 there.

When every block is done, each face is a task that pairs the two labellings of the same slab (`face_pairs`):
two pieces merge when their overlap holds at least `MERGE_FRACTION` of *each* piece's voxels in the slab
(an object crossing the face is nearly the same piece in both; a sliver of an object that reaches across
the face into a touching neighbour is a small part of that neighbour, so touching objects stay two).
A union-find (`scipy.cluster.hierarchy.DisjointSet`) over all pairs gives every piece its object, numbered
1..N in order of the first piece (block order, then local id) (`final_ids`), and a second Dask pass rewrites
every block with its final ids (state RELABELLED). The final ids are a function of what the blocks
recorded, so a relabel pass that stops is resumed with the same ids. Labels are uint32: up to 2^32 - 1
objects per block and in the whole output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .block_plan import BlockPlan, BlockWork

SLAB = 8  # voxels of a face slab at most (also at most half the halo, and the thinnest block)
MERGE_FRACTION = 0.5
MAX_ID = 2**32 - 1


@dataclass(frozen=True)
class BlockInstances:
    """One block's instance labels: its core in local ids 1..objects, and its face slabs (axis -> labels)."""

    labels: np.ndarray
    objects: int
    front: dict[int, np.ndarray]
    beyond: dict[int, np.ndarray]


def slab_widths(plan: BlockPlan) -> tuple[int, ...]:
    """The slab width per axis: 0 where the axis has one block, else min(SLAB, halo // 2, thinnest block), >= 1."""
    widths = []
    for axis, blocks in enumerate(plan.grid):
        if blocks == 1:
            widths.append(0)
            continue
        last = plan.shape[axis] - (blocks - 1) * plan.block[axis]
        widths.append(max(1, min(SLAB, plan.halo[axis] // 2, last, plan.block[axis])))
    return tuple(widths)


def missing_context(plan: BlockPlan) -> list[int]:
    """Axes cut into several blocks whose blocks read nothing beyond their faces (a halo of 0)."""
    return [axis for axis, (blocks, halo) in enumerate(zip(plan.grid, plan.halo, strict=True)) if blocks > 1 and halo < 1]


def block_instances(labels: np.ndarray, work: BlockWork, plan: BlockPlan, widths: Sequence[int]) -> BlockInstances:
    """Cut the instance labels of a block's read box (`work.read`) into its core (local ids 1..n, in the
    order of the watershed's ids) and its face slabs (see the module docstring)."""
    core = labels[work.region]
    ids = np.unique(core)
    ids = ids[ids > 0]
    lookup = np.zeros(int(labels.max()) + 1, np.uint32)
    lookup[ids] = np.arange(1, ids.size + 1, dtype=np.uint32)
    local = lookup[core]
    position = plan.position(work.index)
    front, beyond = {}, {}
    for axis, width in enumerate(widths):
        if not width:
            continue
        if position[axis] > 0:
            inside = [slice(None)] * local.ndim
            inside[axis] = slice(0, width)
            front[axis] = local[tuple(inside)]
        if position[axis] < plan.grid[axis] - 1:
            outside = list(work.region)
            stop = work.region[axis].stop
            outside[axis] = slice(stop, stop + width)
            beyond[axis] = lookup[labels[tuple(outside)]]
    return BlockInstances(local, int(ids.size), front, beyond)


def instance_block(probabilities: np.ndarray, work: BlockWork, plan: BlockPlan, widths: Sequence[int], settings) -> BlockInstances:
    """`block_instances` of the seeded watershed of a block's read-box probabilities (2, *read shape)."""
    from .instances import instance_labels

    return block_instances(instance_labels(probabilities, settings), work, plan, widths)


def face_pairs(beyond: np.ndarray, front: np.ndarray, fraction: float = MERGE_FRACTION) -> np.ndarray:
    """(k, 2) pairs (id in `beyond`, id in `front`) of the same slab whose overlap holds at least
    `fraction` of each piece's voxels there (0 is no object)."""
    a = beyond.ravel().astype(np.int64)
    b = front.ravel().astype(np.int64)
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    pairs, overlap = np.unique(np.stack([a[both], b[both]], axis=1), axis=0, return_counts=True)
    size_a = np.bincount(a)[pairs[:, 0]]
    size_b = np.bincount(b)[pairs[:, 1]]
    keep = (overlap >= fraction * size_a) & (overlap >= fraction * size_b)
    return pairs[keep]


def final_ids(objects: Sequence[int], merges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(final id per piece, offsets): piece `local` of block `b` is ``ids[offsets[b] + local - 1]``.

    objects: pieces (local ids 1..n) per block; merges: (k, 4) rows (block, local, other block, local)."""
    from scipy.cluster.hierarchy import DisjointSet

    counts = np.asarray(objects, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    representative = np.arange(int(offsets[-1]), dtype=np.int64)
    if len(merges):
        merges = np.asarray(merges, np.int64)
        first = offsets[merges[:, 0]] + merges[:, 1] - 1
        second = offsets[merges[:, 2]] + merges[:, 3] - 1
        sets = DisjointSet()
        for x, y in zip(first.tolist(), second.tolist(), strict=True):
            sets.add(x)
            sets.add(y)
            sets.merge(x, y)
        for members in sets.subsets():
            members = np.fromiter(members, np.int64)
            representative[members] = members.min()
    _, ids = np.unique(representative, return_inverse=True)
    ids = ids.astype(np.int64) + 1
    if ids.size and ids.max() > MAX_ID:
        raise ValueError(f"{int(ids.max())} objects do not fit uint32 labels (at most {MAX_ID})")
    return ids, offsets


def block_lookup(ids: np.ndarray, offsets: np.ndarray, index: int) -> np.ndarray:
    """local id -> final id of block `index` (0 -> 0), uint32."""
    return np.concatenate([[0], ids[offsets[index] : offsets[index + 1]]]).astype(np.uint32)
