"""Resolve a point-window spec into opened volumes, synapses, regions and the two region caches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.annotations import (
    Region,
    Synapse,
    read_csv_synapses,
    read_precomputed_annotations,
    read_precomputed_regions,
    read_regions_json,
)
from ..data.point_windows import CachedRegion, LayerSet, cache_regions
from ..data.point_windows.region_cache import OUTSIDE, UNPLACED, estimate_cache_bytes, unplaced_reasons
from ..data.volumes import VolumeSource, check_resolution, open_volume
from ..project.errors import DatasetError
from .point_spec import LayerSpec, PointSpec

GiB = 1024**3


@dataclass
class PointInputs:
    spec_path: Path
    layers: LayerSet
    synapses: list[Synapse]
    train_regions: list[CachedRegion] = field(default_factory=list)
    val_regions: list[CachedRegion] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    cache_bytes: int = 0
    region_info: dict[str, list[Region]] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))

    def region_names(self, split: str) -> list[str]:
        return [r.name for r in self.region_info.get(split, [])]

    def point_count(self, split: str) -> int:
        regions = self.train_regions if split == "train" else self.val_regions
        return sum(len(r.indexer) for r in regions)


def resolve_location(base: Path, location: str) -> str:
    """Relative paths start at the spec's folder; URLs stay as they are."""
    if "://" in location:
        return location
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else (base / path))


def open_layers(spec: PointSpec, base: Path) -> tuple[LayerSet, str]:
    """(volumes by training key, location of the points layer)."""
    volumes: dict[str, VolumeSource] = {}
    points_location = ""
    for name, layer in spec.layers.items():
        key = spec.rename.get(name, name)
        if key == "points":
            points_location = resolve_location(base, layer.path)
            continue
        volumes[key] = _open(layer, base, spec)
    image = volumes.pop("img")
    masks = {k.removesuffix("_mask"): v for k, v in volumes.items() if k.endswith("_mask")}
    labels = {k: v for k, v in volumes.items() if not k.endswith("_mask")}
    for key, source in [("img", image), *labels.items()]:
        if source.shape != image.shape or source.origin != image.origin:
            raise DatasetError(f"layer {key} ({source.path}) covers {source.bounds} but img covers {image.bounds}: layers must be aligned")
    return LayerSet(image, labels, masks), points_location


def _open(layer: LayerSpec, base: Path, spec: PointSpec) -> VolumeSource:
    source = open_volume(
        resolve_location(base, layer.path),
        axis_order=spec.axis_order,
        source_axes=layer.source_axes,
        dataset=layer.dataset,
        scale=layer.scale,
        channel=layer.channel,
    )
    if source.resolution is not None:
        check_resolution(source, spec.resolution)
    return source


def read_synapses(location: str, spec: PointSpec) -> list[Synapse]:
    if location.lower().endswith((".csv", ".tsv")):
        return read_csv_synapses(location, spec.axis_order)
    return read_precomputed_annotations(location, spec.axis_order, spec.resolution)


def read_regions(spec: PointSpec, base: Path) -> list[Region]:
    location = resolve_location(base, spec.regions.path)
    if location.lower().endswith(".json"):
        return read_regions_json(location)
    return read_precomputed_regions(location, spec.axis_order, spec.resolution, spec.regions.tag_property)


def split_regions(regions: list[Region], spec: PointSpec) -> dict[str, list[Region]]:
    chosen = {
        "train": [r for r in regions if r.tags & set(spec.train_tags)],
        "val": [r for r in regions if r.tags & set(spec.val_tags)],
    }
    for split, tags in (("train", spec.train_tags), ("val", spec.val_tags)):
        if not chosen[split]:
            found = sorted({t for r in regions for t in r.tags})
            raise DatasetError(f"no region is tagged {tags} ({split}_tags); the regions have tags {found}")
    named = [Region(r.box, r.tags, r.name or f"region_{i}") for i, r in enumerate(regions)]
    by_box = {r.box: r for r in named}
    return {split: [by_box[r.box] for r in rs] for split, rs in chosen.items()}


def load_point_inputs(spec: PointSpec, base: Path, spec_path: Path, *, read: bool = True, progress: Callable[[str], None] | None = None) -> PointInputs:
    """Open everything the spec names; with `read`, cache the regions (estimate and budget first). A
    segmentation layer that label targets do not use (it is there for `nta assign-synapses`) is not cached."""
    layers, points_location = open_layers(spec, base)
    if spec.targets == "labels" and "segmentation" in layers.labels:
        layers = LayerSet(layers.image, {k: v for k, v in layers.labels.items() if k != "segmentation"}, layers.masks)
    synapses = read_synapses(points_location, spec)
    regions = split_regions(read_regions(spec, base), spec)
    budget = int(spec.training.memory_budget_gb * GiB)
    inputs = PointInputs(spec_path, layers, synapses, region_info=regions)
    inputs.cache_bytes = estimate_cache_bytes(layers, regions["train"] + regions["val"], spec.window_size)
    if inputs.cache_bytes > budget:
        raise DatasetError(
            f"the region cache needs {inputs.cache_bytes / GiB:.2f} GiB but training.memory_budget_gb is "
            f"{spec.training.memory_budget_gb}: use smaller or fewer regions, or raise the budget"
        )
    need_lines = spec.targets == "line_segments"
    dropped: Counter = Counter()
    for split in ("train", "val"):
        cached, report = cache_regions(
            layers,
            regions[split],
            synapses,
            spec.window_size,
            line_point=spec.line_point,
            need_lines=need_lines,
            budget_bytes=budget,
            progress=progress,
            read=read,
        )
        setattr(inputs, f"{split}_regions", cached)
        dropped.update({k: v for k, v in report.dropped.items() if k not in UNPLACED})  # counted once below
    unplaced = unplaced_reasons(synapses, regions["train"] + regions["val"], spec.line_point)
    if OUTSIDE in unplaced:
        unplaced["outside every train/val region"] = unplaced.pop(OUTSIDE)
    dropped.update(unplaced)
    inputs.dropped = dict(dropped)
    if read and (not inputs.point_count("train") or not inputs.point_count("val")):
        raise DatasetError(
            f"no synapse points in the {'train' if not inputs.point_count('train') else 'val'} regions "
            f"({len(synapses)} annotations read from {points_location}): check tags, axis_order and coordinates"
        )
    return inputs


def describe_inputs(inputs: PointInputs) -> dict[str, Any]:
    return {"layers": [f"{k}: {v.path}" for k, v in inputs.layers.items()], "synapses": len(inputs.synapses)}
