"""The ``info`` JSON of a Neuroglancer precomputed annotation layer (``neuroglancer_annotations_v1``).

The info names the coordinate space (``dimensions``, converted here to nm per unit), the annotation
type, the property and relationship declarations, the ``by_id`` index and one or more ``spatial``
index levels; each index is unsharded or sharded (``neuroglancer_uint64_sharded_v1``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from napari_training_assistant.project.errors import DatasetError

__all__ = [
    "ANNOTATION_TYPES",
    "AnnotationLayerInfo",
    "IndexSpec",
    "PropertySpec",
    "SpatialLevel",
]

ANNOTATION_TYPES = ("point", "line", "axis_aligned_bounding_box", "ellipsoid")

# property type -> (numpy dtype of one value, alignment group in bytes)
_PROPERTY_TYPES: dict[str, tuple[Any, int]] = {
    "uint32": ("<u4", 4),
    "int32": ("<i4", 4),
    "float32": ("<f4", 4),
    "uint16": ("<u2", 2),
    "int16": ("<i2", 2),
    "uint8": ("u1", 1),
    "int8": ("i1", 1),
    "rgb": (("u1", (3,)), 1),
    "rgba": (("u1", (4,)), 1),
}

# length unit -> nanometres per unit
_UNIT_NM = {
    "km": 1e12,
    "m": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "\u00b5m": 1e3,  # micro sign
    "\u03bcm": 1e3,  # greek mu
    "nm": 1.0,
    "pm": 1e-3,
}


# ----------------------------------------------------------------------------------------- info
@dataclass(frozen=True)
class PropertySpec:
    """One declared annotation property; `enum_labels` maps enum value -> label (empty if none)."""

    id: str
    type: str
    description: str | None = None
    enum_labels: dict[Any, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexSpec:
    """A `by_id` or relationship index: its key (sub-folder) and sharding spec (None = unsharded)."""

    key: str
    sharding: dict[str, Any] | None = None
    id: str = ""  # relationship id; "" for by_id


@dataclass(frozen=True)
class SpatialLevel:
    key: str
    grid_shape: tuple[int, ...]
    chunk_size: tuple[float, ...]
    limit: int
    sharding: dict[str, Any] | None = None


@dataclass(frozen=True)
class AnnotationLayerInfo:
    """The parsed ``info`` of an annotation layer (annotation_type lower-cased)."""

    location: str
    annotation_type: str
    dimension_names: tuple[str, ...]
    scales_nm: tuple[float, ...]
    lower_bound: tuple[float, ...]
    upper_bound: tuple[float, ...]
    properties: tuple[PropertySpec, ...]
    relationships: tuple[IndexSpec, ...]
    by_id: IndexSpec | None
    spatial: tuple[SpatialLevel, ...]

    @property
    def rank(self) -> int:
        return len(self.dimension_names)

    def label_map(self, property_id: str) -> dict[Any, str]:
        """Enum value -> label for one property ({} when the property is not an enum)."""
        for p in self.properties:
            if p.id == property_id:
                return dict(p.enum_labels)
        raise DatasetError(
            f"annotation layer {self.location} has no property {property_id!r}: "
            f"choose one of {[p.id for p in self.properties]}"
        )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _fail(location: str, what: str, fix: str) -> DatasetError:
    return DatasetError(f"annotation layer {location}: {what}; {fix}")


def _unit_nm(location: str, name: str, unit: Any) -> float:
    if not isinstance(unit, str) or unit.strip() not in _UNIT_NM:
        raise _fail(
            location,
            f"dimension {name!r} has unit {unit!r}, not a length",
            f"use one of {', '.join(_UNIT_NM)} in the info's dimensions",
        )
    return _UNIT_NM[unit.strip()]


def _parse_sharding(location: str, where: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("@type") != "neuroglancer_uint64_sharded_v1":
        raise _fail(
            location,
            f"{where} has sharding {value!r}",
            "expected a neuroglancer_uint64_sharded_v1 sharding spec or none",
        )
    return dict(value)


def _parse_info(location: str, raw: bytes) -> AnnotationLayerInfo:
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(location, f"info is not JSON ({_one_line(exc)})", "point at the layer's folder") from exc
    if not isinstance(info, Mapping) or info.get("@type") != "neuroglancer_annotations_v1":
        kind = info.get("@type") if isinstance(info, Mapping) else type(info).__name__
        raise _fail(
            location,
            f"info has @type {kind!r}, not 'neuroglancer_annotations_v1'",
            "point at a precomputed annotation layer, not an image/segmentation volume",
        )
    try:
        dims = info["dimensions"]
        names = tuple(str(n) for n in dims)
        scales = []
        for n in names:
            scale, unit = dims[n]
            scales.append(float(scale) * _unit_nm(location, n, unit))
        rank = len(names)
        atype = str(info["annotation_type"]).lower()
        if atype not in ANNOTATION_TYPES:
            raise _fail(
                location,
                f"annotation_type {info['annotation_type']!r} is not supported",
                f"use one of {', '.join(ANNOTATION_TYPES)}",
            )
        lower = tuple(float(v) for v in info["lower_bound"])
        upper = tuple(float(v) for v in info["upper_bound"])
        props = []
        for p in info.get("properties") or []:
            ptype = str(p["type"]).lower()
            if ptype not in _PROPERTY_TYPES:
                raise _fail(
                    location,
                    f"property {p.get('id')!r} has type {p['type']!r}",
                    f"expected one of {', '.join(_PROPERTY_TYPES)}",
                )
            values, labels = p.get("enum_values"), p.get("enum_labels")
            if (values is None) != (labels is None) or (values is not None and len(values) != len(labels)):
                raise _fail(
                    location,
                    f"property {p['id']!r} has mismatched enum_values/enum_labels",
                    "give both lists with one label per value",
                )
            enum = dict(zip(values or [], labels or [], strict=True))
            props.append(PropertySpec(str(p["id"]), ptype, p.get("description"), enum))
        rels = tuple(
            IndexSpec(
                str(r["key"]),
                _parse_sharding(location, f"relationship {r['id']!r}", r.get("sharding")),
                str(r["id"]),
            )
            for r in info.get("relationships") or []
        )
        by_id_raw = info.get("by_id")
        by_id = (
            IndexSpec(str(by_id_raw["key"]), _parse_sharding(location, "by_id", by_id_raw.get("sharding")))
            if by_id_raw
            else None
        )
        levels = []
        for i, s in enumerate(info.get("spatial") or []):
            level = SpatialLevel(
                str(s["key"]),
                tuple(int(v) for v in s["grid_shape"]),
                tuple(float(v) for v in s["chunk_size"]),
                int(s.get("limit", 0)),
                _parse_sharding(location, f"spatial level {i}", s.get("sharding")),
            )
            if len(level.grid_shape) != rank or len(level.chunk_size) != rank:
                raise _fail(location, f"spatial level {i} is not of rank {rank}", "fix grid_shape/chunk_size")
            levels.append(level)
        if len(lower) != rank or len(upper) != rank:
            raise _fail(location, f"lower_bound/upper_bound are not of rank {rank}", "fix the info")
    except DatasetError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(
            location, f"info is malformed ({type(exc).__name__}: {exc})", "fix or regenerate the info file"
        ) from exc
    return AnnotationLayerInfo(
        location, atype, names, tuple(scales), lower, upper, tuple(props), rels, by_id, tuple(levels)
    )
