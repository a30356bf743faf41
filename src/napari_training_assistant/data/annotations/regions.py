"""Tagged regions (e.g. train / val / test boxes) from JSON, napari shapes or a precomputed layer.

All boxes are half-open voxel boxes ``[start, stop)`` in the caller's axis order.

JSON (``read_regions_json``): a list (or ``{"regions": [...]}``) of
``{"start": [z, y, x], "stop": [z, y, x], "tags": ["train"], "name": "optional"}`` with integer
voxel coordinates, ``stop > start`` on every axis and at least one tag.

napari Shapes (``regions_from_napari_shapes``): each shape's vertices must form an axis-aligned box;
its corners give ``start = min`` and ``stop = max`` (rounded to whole voxels):

* 'rectangle' / 'polygon' / 'path' with 4 vertices on a 2D image: a 2D box;
* 8 vertices (a 3D box drawn as a polygon/path or built in code): a 3D box;
* a 3D rectangle lies in one z plane (4 vertices sharing axis 0): its z extent comes from the
  shape's ``z_start`` and ``z_stop`` properties (``z_stop > z_start``); without them it is refused.

Tags come from a ``split`` property (one tag) or a ``tags`` property (a list, or a comma-separated
string); a ``name`` property names the region (default ``shape <i>``).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_training_assistant.data.geometry import Box
from napari_training_assistant.project.errors import DatasetError

from .precomputed import _read_layer
from .types import Region

__all__ = ["read_precomputed_regions", "read_regions_json", "regions_from_napari_shapes"]


# ------------------------------------------------------------------------------------------ JSON
def _int_list(value: Any) -> list[int] | None:
    if not isinstance(value, list) or not value:
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v != int(v):
            return None
        out.append(int(v))
    return out


def read_regions_json(path: str | Path) -> list[Region]:
    """Regions from a JSON file (format in the module docstring); errors name the region index."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"{path}: cannot read regions JSON ({exc}); check the path and the JSON syntax"
        ) from exc
    if isinstance(doc, Mapping) and "regions" in doc:
        doc = doc["regions"]
    if not isinstance(doc, list):
        raise DatasetError(
            f'{path}: expected a list of regions, got {type(doc).__name__}; write [{{"start": ..., ...}}]'
        )
    allowed = {"start", "stop", "tags", "name"}
    regions = []
    for i, item in enumerate(doc):
        where = f"{path}: region {i}"
        if not isinstance(item, Mapping):
            raise DatasetError(
                f'{where} is a {type(item).__name__}, not an object; write {{"start", "stop", "tags"}}'
            )
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise DatasetError(
                f"{where} has unknown key(s) {', '.join(unknown)}; use only {', '.join(sorted(allowed))}"
            )
        start, stop = _int_list(item.get("start")), _int_list(item.get("stop"))
        if start is None or stop is None:
            raise DatasetError(
                f"{where}: start and stop must be lists of integer voxel coordinates; got {item.get('start')!r}, {item.get('stop')!r}"
            )
        if len(start) != len(stop):
            raise DatasetError(
                f"{where}: start has {len(start)} axes, stop {len(stop)}; give both in the same axis order"
            )
        if any(b <= a for a, b in zip(start, stop, strict=True)):
            raise DatasetError(
                f"{where}: stop {stop} must be greater than start {start} on every axis; fix the corners"
            )
        tags = item.get("tags")
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t.strip() for t in tags):
            raise DatasetError(
                f'{where}: tags must be a non-empty list of strings, e.g. ["train"]; got {tags!r}'
            )
        name = item.get("name", f"region {i}")
        if not isinstance(name, str):
            raise DatasetError(f"{where}: name must be a string; got {name!r}")
        regions.append(Region(Box(tuple(start), tuple(stop)), frozenset(t.strip() for t in tags), name))
    return regions


# --------------------------------------------------------------------------------- napari shapes
def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _shape_tags(i: int, props: dict[str, Any]) -> frozenset[str]:
    tags: list[str] = []
    if not _missing(props.get("split")):
        tags.append(str(props["split"]).strip())
    raw = props.get("tags")
    if isinstance(raw, list | tuple | np.ndarray):
        items = [str(t) for t in raw]
    else:
        items = [] if _missing(raw) else str(raw).split(",")
    tags.extend(t.strip() for t in items if t.strip())
    if not tags:
        raise DatasetError(
            f"napari shapes: shape {i} has no tag; set its `split` property (e.g. train) or its `tags` property"
        )
    return frozenset(tags)


def _aligned_extent(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """(lo, hi, flat axes) when the vertices are exactly the corners of an axis-aligned box."""
    rounded = np.round(vertices, 6)
    levels = [np.unique(rounded[:, d]) for d in range(rounded.shape[1])]
    if any(len(u) > 2 for u in levels):
        return None
    corners = {tuple(c) for c in itertools.product(*levels)}
    if {tuple(v) for v in rounded} != corners or len(rounded) != len(corners):
        return None
    return rounded.min(axis=0), rounded.max(axis=0), [d for d, u in enumerate(levels) if len(u) == 1]


def regions_from_napari_shapes(
    data: Sequence[Any], shape_types: Sequence[str] | str, properties: Mapping[str, Any] | None = None
) -> list[Region]:
    """Regions from a napari Shapes layer (`data`, `shape_type`, `properties`/`features`); see the
    module docstring for the accepted shapes and properties."""
    types = [shape_types] * len(data) if isinstance(shape_types, str) else list(shape_types)
    if len(types) != len(data):
        raise DatasetError(
            f"napari shapes: {len(data)} shapes but {len(types)} shape types; pass data and shape_type together"
        )
    columns: dict[str, list[Any]] = {}
    for key, values in (properties or {}).items():
        column = list(values)
        if len(column) != len(data):
            raise DatasetError(
                f"napari shapes: property {key!r} has {len(column)} values for {len(data)} shapes; give one per shape"
            )
        columns[str(key)] = [v.item() if isinstance(v, np.generic) else v for v in column]
    regions = []
    for i, (vertices, kind) in enumerate(zip(data, types, strict=True)):
        v = np.asarray(vertices, dtype=np.float64)
        props = {k: c[i] for k, c in columns.items()}
        where = f"napari shapes: shape {i} ({kind})"
        if kind not in ("rectangle", "polygon", "path"):
            raise DatasetError(f"{where} cannot be a region; draw regions as rectangles (or 8-corner boxes)")
        if v.ndim != 2 or v.shape[1] not in (2, 3) or v.shape[0] not in (4, 8):
            raise DatasetError(
                f"{where} has vertices of shape {v.shape}; a region needs 4 (rectangle) or 8 (3D box) corners"
            )
        extent = _aligned_extent(v)
        if extent is None:
            raise DatasetError(
                f"{where} is not an axis-aligned rectangle/box (rotated or irregular); redraw it unrotated"
            )
        lo, hi, flat = extent
        if flat == [0] and v.shape[1] == 3 and v.shape[0] == 4:
            z0, z1 = props.get("z_start"), props.get("z_stop")
            if _missing(z0) or _missing(z1):
                raise DatasetError(
                    f"{where} is flat at z={lo[0]:g}; give it `z_start` and `z_stop` properties for its depth "
                    "or draw an 8-corner box"
                )
            lo, hi = lo.copy(), hi.copy()
            lo[0], hi[0] = float(z0), float(z1)
        elif flat:
            raise DatasetError(
                f"{where} has no extent on axis {flat[0]}; draw it with a non-zero size on every axis"
            )
        box = Box.from_sequences(lo, hi)
        if any(b <= a for a, b in zip(box.start, box.stop, strict=True)):
            raise DatasetError(
                f"{where} spans {box.start}..{box.stop}, empty after rounding to voxels; make it larger"
            )
        name = props.get("name")
        regions.append(Region(box, _shape_tags(i, props), f"shape {i}" if _missing(name) else str(name)))
    return regions


# ----------------------------------------------------------------------------------- precomputed
def read_precomputed_regions(
    path_or_url: str | Path,
    axis_order: str | Sequence[str],
    resolution: Sequence[float],
    tag_property: str = "split",
) -> list[Region]:
    """Regions from an AXIS_ALIGNED_BOUNDING_BOX precomputed layer: each box (corners converted to
    voxels, rounded) tagged by `tag_property` - an enum's label text, else the number as text
    (integral floats without ".0"). Region names are the annotation ids."""
    info, boxes = _read_layer(path_or_url, axis_order, resolution, None, False)
    if info.annotation_type != "axis_aligned_bounding_box":
        raise DatasetError(
            f"annotation layer {info.location}: holds {info.annotation_type} annotations; regions need an "
            "axis_aligned_bounding_box layer"
        )
    spec = next((p for p in info.properties if p.id == tag_property), None)
    if spec is None:
        raise DatasetError(
            f"annotation layer {info.location}: no property {tag_property!r} to tag regions; "
            f"pass tag_property= one of {[p.id for p in info.properties]}"
        )
    if spec.type in ("rgb", "rgba"):
        raise DatasetError(
            f"annotation layer {info.location}: property {tag_property!r} is a colour; use an enum or number property"
        )
    regions = []
    for b in boxes:
        assert b.end is not None
        lo = [min(p, q) for p, q in zip(b.start, b.end, strict=True)]
        hi = [max(p, q) for p, q in zip(b.start, b.end, strict=True)]
        box = Box.from_sequences(lo, hi)
        if any(s1 <= s0 for s0, s1 in zip(box.start, box.stop, strict=True)):
            raise DatasetError(
                f"annotation layer {info.location}: box {b.id} spans {box.start}..{box.stop} voxels, empty at this resolution; "
                "fix the box or the resolution"
            )
        value = b.properties[tag_property]
        if value in spec.enum_labels:
            tag = spec.enum_labels[value]
        elif isinstance(value, float) and value.is_integer():
            tag = str(int(value))
        else:
            tag = str(value)
        regions.append(Region(box, frozenset([tag]), str(b.id)))
    return regions
