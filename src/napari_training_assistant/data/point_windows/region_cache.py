"""Read each region once (inflated by half a window), keep it in memory, attach its synapse points."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...project.errors import DatasetError
from ..annotations import Region, Synapse, points_in_box
from ..geometry import Box
from ..volumes import VolumeSource
from .indexer import CachedPointIndexer

GiB = 1024**3


@dataclass(frozen=True)
class LayerSet:
    """The volumes of a layer group, already opened in one axis order.

    `image` is the EM image; `labels` the ground truth by training key (`label0`, `label1`, or
    `segmentation` for line targets); `masks` the optional loss masks by the name they restrict
    (`label0` -> `label0_mask`; `img` restricts every channel).
    """

    image: VolumeSource
    labels: Mapping[str, VolumeSource]
    masks: Mapping[str, VolumeSource] = field(default_factory=dict)

    def items(self) -> list[tuple[str, VolumeSource]]:
        return [("img", self.image), *self.labels.items(), *((f"{k}_mask", v) for k, v in self.masks.items())]


@dataclass
class CachedRegion:
    region: Region
    box: Box  # the inflated box the arrays cover
    arrays: dict[str, np.ndarray]
    synapses: list[Synapse]
    indexer: CachedPointIndexer

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


@dataclass
class RegionCacheReport:
    regions: int
    points: int
    dropped: dict[str, int]
    estimated_bytes: int
    per_region: list[dict] = field(default_factory=list)

    def text(self) -> str:
        dropped = ", ".join(f"{n} {why}" for why, n in self.dropped.items()) or "none"
        return f"{self.points} points in {self.regions} regions; dropped: {dropped}; cache {self.estimated_bytes / GiB:.2f} GiB"


def cache_margin(window: Sequence[int]) -> tuple[int, ...]:
    return tuple((w + 1) // 2 + 1 for w in window)


def estimate_cache_bytes(layers: LayerSet, regions: Sequence[Region], window: Sequence[int]) -> int:
    margin = cache_margin(window)
    per_voxel = sum(source.dtype.itemsize for _, source in layers.items())
    return sum(region.box.inflate(margin).size * per_voxel for region in regions)


LINE_ENDS_OUTSIDE = "line ends outside the cached region (line longer than the window)"


def select_points(
    synapses: Sequence[Synapse], region: Region, line_point: str, *, need_lines: bool, cache_box: Box | None = None
) -> tuple[list[tuple[Synapse, tuple[float, ...]]], list[tuple[Synapse, tuple[float, ...]]], Counter]:
    """(points inside the region, those of them kept, reasons for dropping some of the inside ones).

    Annotations outside the region (or unusable: NaN, wrong axes) are counted once, by `unplaced_reasons`.
    """
    inside, _ = points_in_box(synapses, region.box, line_point)
    reasons: Counter = Counter()
    kept = inside
    if need_lines:
        kept = [(s, p) for s, p in inside if s.end is not None]
        if len(inside) > len(kept):
            reasons["point annotations (line targets need lines)"] += len(inside) - len(kept)
        if cache_box is not None:  # line targets look up the segments under both ends in the cache
            lines = len(kept)
            kept = [(s, p) for s, p in kept if all(cache_box.contains(np.round(e)) for e in (s.start, s.end))]
            if lines > len(kept):
                reasons[LINE_ENDS_OUTSIDE] += lines - len(kept)
    return inside, kept, reasons


OUTSIDE = "outside every selected region"
UNPLACED = ("non-finite coordinate", "wrong number of axes", OUTSIDE)


def unplaced_reasons(synapses: Sequence[Synapse], regions: Sequence[Region], line_point: str) -> Counter:
    """Why the annotations in no region were dropped, each counted once: unusable coordinates
    ("non-finite coordinate", "wrong number of axes") or `OUTSIDE` every region."""
    reasons: Counter = Counter()
    for synapse in synapses:
        point = synapse.point(line_point)  # type: ignore[arg-type]
        if regions and len(point) != regions[0].box.ndim:
            reasons["wrong number of axes"] += 1
        elif not all(math.isfinite(v) for v in point):
            reasons["non-finite coordinate"] += 1
        elif not any(r.box.ndim == len(point) and r.box.contains(point) for r in regions):
            reasons[OUTSIDE] += 1
    return reasons


def cache_regions(
    layers: LayerSet,
    regions: Sequence[Region],
    synapses: Sequence[Synapse],
    window: Sequence[int],
    *,
    line_point: str = "midpoint",
    need_lines: bool = False,
    budget_bytes: int = 8 * GiB,
    progress: Callable[[str], None] | None = None,
    read: bool = True,
) -> tuple[list[CachedRegion], RegionCacheReport]:
    """Read every region once (each layer through its own chunked reader) and index its points.

    The memory estimate is checked against `budget_bytes` before anything is read. With
    `read=False` (a dry run) points are counted and the arrays are left empty.
    """
    estimate = estimate_cache_bytes(layers, regions, window)
    if estimate > budget_bytes:
        raise DatasetError(
            f"the region cache needs {estimate / GiB:.2f} GiB but the budget is {budget_bytes / GiB:.2f} GiB: "
            "use smaller regions, fewer layers, or raise training.memory_budget_gb"
        )
    margin = cache_margin(window)
    cached: list[CachedRegion] = []
    dropped: Counter = Counter()
    details = []
    for region in regions:
        box = region.box.inflate(margin)
        inside, kept, reasons = select_points(synapses, region, line_point, need_lines=need_lines, cache_box=box)
        dropped.update(reasons)
        arrays = {name: source.read(box) for name, source in layers.items()} if read else {}
        indexer = CachedPointIndexer.build([p for _, p in kept], window, region.box)
        cached.append(CachedRegion(region, box, arrays, [s for s, _ in kept], indexer))
        details.append({"name": region.name, "tags": sorted(region.tags), "points": len(kept), "box": [list(box.start), list(box.stop)]})
        if progress:
            progress(f"cached region {region.name or len(cached)} {box.shape}: {len(kept)} points")
    dropped.update(unplaced_reasons(synapses, regions, line_point))
    report = RegionCacheReport(len(cached), sum(len(c.indexer) for c in cached), dict(dropped), estimate, details)
    return cached, report


def check_layers_cover(layers: LayerSet, name: str) -> None:
    """All layers must have the image's dimensionality."""
    for key, source in layers.items():
        if source.ndim != layers.image.ndim:
            raise DatasetError(f"layer {key} ({source.path}) has {source.ndim} axes but {name} has {layers.image.ndim}")


def empty_points_error(report: RegionCacheReport, tags: Sequence[str]) -> DatasetError:
    return DatasetError(f"no synapse points inside the regions tagged {list(tags)} ({report.text()}): check the tags and coordinates")
