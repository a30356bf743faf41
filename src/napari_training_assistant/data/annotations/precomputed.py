"""Reader for Neuroglancer precomputed annotation layers (``neuroglancer_annotations_v1``).

Implements the published format: an ``info`` JSON file naming the coordinate space
(``dimensions``), the annotation type, the property and relationship declarations, the ``by_id``
index and one or more ``spatial`` index levels. Every index is either unsharded (one file per
key: ``<key>/<x>_<y>_<z>`` for spatial cells, ``<key>/<id>`` for ``by_id`` and relationships) or
sharded (``neuroglancer_uint64_sharded_v1``, read through tensorstore's
``neuroglancer_uint64_sharded`` kvstore, keyed by the uint64 annotation id, segment id or, for
spatial cells, the compressed Morton code of the cell).

Binary encodings (all little-endian):

* one annotation: float32 geometry (``rank`` values for points, ``2 * rank`` for lines, boxes and
  ellipsoids: two corners / centre + radii), then the properties - first the 4-byte types
  (uint32, int32, float32), then the 2-byte ones (uint16, int16), then the 1-byte ones (uint8,
  int8, rgb, rgba), each group in declaration order - zero-padded to a multiple of 4 bytes;
* spatial cells and relationship index entries: uint64 count, the annotations, then their uint64 ids;
* ``by_id`` entries: one annotation followed, for each declared relationship, by a uint32 count and
  that many uint64 segment ids.

Coordinates come back as voxels of the caller's grid: ``voxel = coordinate * scale_nm /
resolution_nm`` per axis, reordered from the layer's dimension names (x, y, z) to the caller's
``axis_order``. Paths may be local folders or URLs (``gs://``, ``s3://``, ``http(s)://``,
``file://``; a leading ``precomputed://`` is ignored); all I/O goes through tensorstore kvstores.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import posixpath
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_training_assistant.data.geometry import Box
from napari_training_assistant.project.errors import DatasetError

from .types import Synapse

__all__ = [
    "ANNOTATION_TYPES",
    "AnnotationLayerInfo",
    "IndexSpec",
    "PropertySpec",
    "SpatialLevel",
    "compressed_morton_code",
    "read_annotation_by_id",
    "read_annotation_info",
    "read_precomputed_annotations",
    "read_related_annotations",
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

_MAX_CELLS = 1_000_000  # cells one level may enumerate before we ask for a bbox
_BATCH = 256  # concurrent kvstore reads

_TENSORSTORE_HINT = "install tensorstore (pip install 'napari-training-assistant[connectomics]')"


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


# -------------------------------------------------------------------------------------- storage
def _tensorstore():
    try:
        import tensorstore as ts
    except ImportError as exc:  # pragma: no cover - tensorstore is installed in tests
        raise DatasetError(f"reading precomputed annotations needs tensorstore: {_TENSORSTORE_HINT}") from exc
    return ts


class _Store:
    """kvstores of one layer: the root (for `info`) and one per index."""

    def __init__(self, path_or_url: str | Path) -> None:
        text = str(path_or_url)
        if text.startswith("precomputed://"):
            text = text[len("precomputed://") :]
        if text.startswith("file://"):
            text = text[len("file://") :]
        self._url = "://" in text
        if self._url:
            self.location = text.rstrip("/")
        else:
            self.location = str(Path(text).expanduser().resolve())
        self._ts = _tensorstore()
        self._open: dict[tuple[str, str], Any] = {}

    def _spec(self, sub: str) -> Any:
        """kvstore spec of the folder `sub` (a '/'-separated path, '..' allowed) below the layer."""
        if self._url:
            scheme, rest = self.location.split("://", 1)
            return f"{scheme}://{posixpath.normpath(f'{rest}/{sub}')}/"
        return {
            "driver": "file",
            "path": os.path.join(os.path.normpath(os.path.join(self.location, sub)), ""),
        }

    def kvstore(self, key: str, sharding: dict[str, Any] | None) -> Any:
        cache_key = (key, json.dumps(sharding, sort_keys=True))
        if cache_key not in self._open:
            spec = self._spec(key)
            if sharding is not None:
                spec = {"driver": "neuroglancer_uint64_sharded", "base": spec, "metadata": sharding}
            try:
                self._open[cache_key] = self._ts.KvStore.open(spec).result()
            except Exception as exc:
                raise _fail(
                    self.location,
                    f"cannot open index {key!r} ({_one_line(exc)})",
                    "check the path/URL, access and the sharding spec",
                ) from exc
        return self._open[cache_key]

    def read_many(
        self, kv: Any, keys: Sequence[str | bytes], what: str
    ) -> Iterator[tuple[str | bytes, bytes]]:
        """(key, value) for each key present; missing keys are skipped."""
        for i in range(0, len(keys), _BATCH):
            batch = keys[i : i + _BATCH]
            try:
                futures = [kv.read(k) for k in batch]
                results = [f.result() for f in futures]
            except Exception as exc:
                raise _fail(
                    self.location,
                    f"cannot read {what} ({_one_line(exc)})",
                    "check the path/URL and access rights",
                ) from exc
            for k, r in zip(batch, results, strict=True):
                if r.state == "value":
                    yield k, bytes(r.value)

    def list_keys(self, kv: Any) -> list[bytes] | None:
        try:
            return list(kv.list().result())
        except Exception:
            return None  # e.g. http: listing unsupported; caller enumerates


def _open_layer(path_or_url: str | Path) -> tuple[_Store, AnnotationLayerInfo]:
    store = _Store(path_or_url)
    root = store.kvstore("", None)
    found = list(store.read_many(root, ["info"], "info"))
    if not found:
        raise _fail(
            store.location,
            "no `info` file found",
            "point at the folder/URL of a Neuroglancer precomputed annotation layer",
        )
    return store, _parse_info(store.location, found[0][1])


# ------------------------------------------------------------------------------------- encoding
def compressed_morton_code(cell: Sequence[int], grid_shape: Sequence[int]) -> int:
    """Compressed Morton code of a grid cell: bits of each coordinate interleaved (dimension 0
    first, low bits first), skipping a dimension once its ceil(log2(grid_shape)) bits are used."""
    bits = [max(int(g) - 1, 0).bit_length() for g in grid_shape]
    code, out = 0, 0
    for bit in range(max(bits, default=0)):
        for d, nbits in enumerate(bits):
            if bit < nbits:
                code |= ((int(cell[d]) >> bit) & 1) << out
                out += 1
    return code


def _record_dtype(info: AnnotationLayerInfo) -> np.dtype:
    n_geometry = info.rank if info.annotation_type == "point" else 2 * info.rank
    names, formats, offsets = ["geometry"], [("<f4", (n_geometry,))], [0]
    offset = 4 * n_geometry
    for group in (4, 2, 1):
        for i, p in enumerate(info.properties):
            dtype, alignment = _PROPERTY_TYPES[p.type]
            if alignment == group:
                names.append(f"p{i}")
                formats.append(dtype)
                offsets.append(offset)
                offset += np.dtype(dtype).itemsize
    itemsize = -(-offset // 4) * 4
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


def _decode_multiple(location: str, what: str, data: bytes, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    if len(data) < 8:
        raise _fail(location, f"{what} is truncated ({len(data)} bytes)", "rewrite the layer")
    (count,) = struct.unpack_from("<Q", data)
    need = 8 + count * (dtype.itemsize + 8)
    if len(data) < need:
        raise _fail(
            location, f"{what} holds {len(data)} bytes, {count} annotations need {need}", "rewrite the layer"
        )
    records = np.frombuffer(data, dtype=dtype, count=count, offset=8)
    ids = np.frombuffer(data, dtype="<u8", count=count, offset=8 + count * dtype.itemsize)
    return records, ids


def _decode_single(
    location: str, what: str, data: bytes, dtype: np.dtype, relationships: Sequence[IndexSpec]
) -> tuple[np.ndarray, dict[str, list[int]]]:
    if len(data) < dtype.itemsize:
        raise _fail(location, f"{what} is truncated ({len(data)} bytes)", "rewrite the layer")
    record = np.frombuffer(data, dtype=dtype, count=1)
    offset = dtype.itemsize
    related: dict[str, list[int]] = {}
    for rel in relationships:
        if len(data) < offset + 4:
            raise _fail(location, f"{what} ends before relationship {rel.id!r}", "rewrite the layer")
        (count,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if len(data) < offset + 8 * count:
            raise _fail(location, f"{what} ends inside relationship {rel.id!r}", "rewrite the layer")
        related[rel.id] = [int(v) for v in np.frombuffer(data, dtype="<u8", count=count, offset=offset)]
        offset += 8 * count
    return record, related


def _python_value(value: Any, ptype: str) -> Any:
    if ptype in ("rgb", "rgba"):
        return tuple(int(v) for v in value)
    if ptype == "float32":
        return float(value)
    return int(value)


# ---------------------------------------------------------------------------------- coordinates
def _axes(axis_order: str | Sequence[str]) -> list[str]:
    return [a.lower() for a in axis_order]


class _Converter:
    """Layer coordinates <-> caller voxels (axis_order, resolution in nm)."""

    def __init__(
        self,
        info: AnnotationLayerInfo,
        axis_order: str | Sequence[str] | None,
        resolution: Sequence[float] | None,
    ):
        names = [n.lower() for n in info.dimension_names]
        axes = names if axis_order is None else _axes(axis_order)
        if sorted(axes) != sorted(names) or len(set(axes)) != len(axes):
            raise _fail(
                info.location,
                f"dimensions {list(info.dimension_names)} do not match axis_order {''.join(axes)!r}",
                "pass an axis_order naming exactly the layer's dimensions",
            )
        if resolution is None:
            res = [info.scales_nm[names.index(a)] for a in axes]
        else:
            res = [float(r) for r in resolution]
            if len(res) != len(axes) or not all(r > 0 and math.isfinite(r) for r in res):
                raise _fail(
                    info.location,
                    f"resolution {list(resolution)} does not give one positive nm size per axis of {''.join(axes)!r}",
                    "pass the voxel size in nm for each axis",
                )
        self.source = np.array([names.index(a) for a in axes])  # layer dimension of each caller axis
        self.factor = np.array([info.scales_nm[j] / r for j, r in zip(self.source, res, strict=True)])
        self.ndim = len(axes)

    def to_voxels(self, layer_points: np.ndarray) -> np.ndarray:
        """(..., rank) layer coordinates -> (..., rank) caller voxels."""
        return layer_points[..., self.source].astype(np.float64) * self.factor

    def to_layer(self, voxels: Sequence[float]) -> np.ndarray:
        out = np.empty(self.ndim)
        out[self.source] = np.asarray(voxels, dtype=np.float64) / self.factor
        return out


def _to_synapses(
    info: AnnotationLayerInfo,
    conv: _Converter,
    records: np.ndarray,
    ids: Sequence[int],
    related: Sequence[dict[str, list[int]]] | None = None,
) -> list[Synapse]:
    geometry = np.asarray(records["geometry"], dtype=np.float64)
    two_points = info.annotation_type != "point"
    points = geometry.reshape(len(records), 2 if two_points else 1, info.rank)
    voxels = conv.to_voxels(points)
    columns = [(p, records[f"p{i}"]) for i, p in enumerate(info.properties)]
    out = []
    for row, annotation_id in enumerate(ids):
        start = tuple(float(v) for v in voxels[row, 0])
        end = (
            tuple(float(v) for v in voxels[row, 1])
            if info.annotation_type in ("line", "axis_aligned_bounding_box")
            else None
        )
        props = {p.id: _python_value(column[row], p.type) for p, column in columns}
        out.append(Synapse(int(annotation_id), start, end, props, dict(related[row]) if related else {}))
    return out


def _in_bbox(synapse: Synapse, bbox: Box) -> bool:
    if synapse.end is None:
        return bbox.contains(synapse.start)
    lo = [min(a, b) for a, b in zip(synapse.start, synapse.end, strict=True)]
    hi = [max(a, b) for a, b in zip(synapse.start, synapse.end, strict=True)]
    return all(l_ < s1 and h >= s0 for l_, h, s0, s1 in zip(lo, hi, bbox.start, bbox.stop, strict=True))


# ------------------------------------------------------------------------------------- spatial
def _cell_ranges(
    info: AnnotationLayerInfo, level: SpatialLevel, query: tuple[np.ndarray, np.ndarray] | None
) -> list[range]:
    if query is None:
        return [range(g) for g in level.grid_shape]
    lo, hi = query
    ranges = []
    for d, (g, size) in enumerate(zip(level.grid_shape, level.chunk_size, strict=True)):
        origin = info.lower_bound[d]
        # a cell is [origin + i*size, origin + (i+1)*size]; boundaries count on both sides
        first = max(math.ceil((lo[d] - origin) / size) - 1, 0)
        stop = min(math.ceil((hi[d] - origin) / size), g)
        ranges.append(range(first, max(stop, first)))
    return ranges


def _level_keys(
    store: _Store, info: AnnotationLayerInfo, level: SpatialLevel, kv: Any, query
) -> list[str | bytes]:
    if query is None:
        listed = store.list_keys(kv)
        if listed is not None:
            if level.sharding is not None:
                return [k for k in listed if len(k) == 8]
            keys = []
            for k in listed:
                name = k.decode("utf-8", "replace")
                parts = name.split("_")
                if len(parts) == info.rank and all(p.isdigit() for p in parts):
                    keys.append(name)
            return keys
    ranges = _cell_ranges(info, level, query)
    count = math.prod(len(r) for r in ranges)
    if count > _MAX_CELLS:
        raise _fail(
            store.location,
            f"spatial level {level.key!r} would need {count} cell reads",
            "pass a smaller bbox",
        )
    cells = itertools.product(*ranges)
    if level.sharding is not None:
        return [struct.pack(">Q", compressed_morton_code(c, level.grid_shape)) for c in cells]
    return ["_".join(str(i) for i in c) for c in cells]


def _read_spatial(store: _Store, info: AnnotationLayerInfo, query) -> tuple[np.ndarray, np.ndarray]:
    """All annotations of all levels (cells intersecting `query` only), de-duplicated by id."""
    dtype = _record_dtype(info)
    all_records, all_ids = [np.zeros(0, dtype=dtype)], [np.zeros(0, dtype="<u8")]
    for level in info.spatial:
        kv = store.kvstore(level.key, level.sharding)
        keys = _level_keys(store, info, level, kv, query)
        for key, data in store.read_many(kv, keys, f"spatial level {level.key!r}"):
            records, ids = _decode_multiple(store.location, f"spatial cell {level.key}/{key!r}", data, dtype)
            all_records.append(records)
            all_ids.append(ids)
    records, ids = np.concatenate(all_records), np.concatenate(all_ids)
    unique_ids, first = np.unique(ids, return_index=True)
    return records[first], unique_ids


# ---------------------------------------------------------------------------------- public API
def read_annotation_info(path_or_url: str | Path) -> AnnotationLayerInfo:
    """Parse a layer's ``info`` (units converted to nm, annotation type lower-cased)."""
    return _open_layer(path_or_url)[1]


def _by_id_records(
    store: _Store, info: AnnotationLayerInfo, ids: Sequence[int]
) -> dict[int, tuple[np.ndarray, dict[str, list[int]]]]:
    if info.by_id is None:
        raise _fail(
            store.location,
            "the info declares no by_id index",
            "read relationships from a layer written with by_id",
        )
    kv = store.kvstore(info.by_id.key, info.by_id.sharding)
    keys: list[str | bytes] = [struct.pack(">Q", i) if info.by_id.sharding else str(i) for i in ids]
    by_key = dict(zip(keys, ids, strict=True))
    dtype = _record_dtype(info)
    out = {}
    for key, data in store.read_many(kv, keys, f"by_id index {info.by_id.key!r}"):
        out[by_key[key]] = _decode_single(
            store.location, f"by_id entry {by_key[key]}", data, dtype, info.relationships
        )
    return out


def _read_layer(
    path_or_url: str | Path,
    axis_order: str | Sequence[str] | None,
    resolution: Sequence[float] | None,
    bbox: Box | None,
    relationships: bool,
) -> tuple[AnnotationLayerInfo, list[Synapse]]:
    store, info = _open_layer(path_or_url)
    conv = _Converter(info, axis_order, resolution)
    if not info.spatial:
        raise _fail(
            store.location, "the info declares no spatial index", "write the layer with a spatial index"
        )
    query = None
    if bbox is not None:
        if bbox.ndim != conv.ndim:
            raise _fail(
                store.location,
                f"bbox {bbox} has {bbox.ndim} axes, the layer {conv.ndim}",
                "pass a bbox in axis_order",
            )
        a, b = conv.to_layer(bbox.start), conv.to_layer(bbox.stop)
        query = (np.minimum(a, b), np.maximum(a, b))
    records, ids = _read_spatial(store, info, query)
    related = None
    if relationships and info.relationships:
        found = _by_id_records(store, info, [int(i) for i in ids])
        related = [found[int(i)][1] if int(i) in found else {} for i in ids]
    synapses = _to_synapses(info, conv, records, ids, related)
    if bbox is not None:
        synapses = [s for s in synapses if _in_bbox(s, bbox)]
    return info, synapses


def read_precomputed_annotations(
    path_or_url: str | Path,
    axis_order: str | Sequence[str],
    resolution: Sequence[float],
    *,
    bbox: Box | None = None,
    relationships: bool = False,
) -> list[Synapse]:
    """All annotations of a precomputed layer as Synapses (sorted by id), in voxels of `axis_order`
    at `resolution` (nm per axis).

    Every spatial index level is read and annotations are de-duplicated by id. Points give
    `end=None`; lines and axis-aligned boxes give `start`/`end` (the two stored corners);
    ellipsoids give their centre as a point. With `bbox` (voxels, axis_order) only the spatial
    cells intersecting it are read, and annotations are kept when their point (points/ellipsoids)
    lies in it or the bounds of their two points intersect it (lines/boxes; use `points_in_box`
    for the exact per-point decision). Properties are decoded by type (rgb/rgba -> tuples; enums
    keep their stored value: see `read_annotation_info(...).label_map(id)`). Relationships come
    from the by_id index when `relationships=True` (one read per annotation), else stay empty.
    """
    return _read_layer(path_or_url, axis_order, resolution, bbox, relationships)[1]


def read_annotation_by_id(
    path_or_url: str | Path,
    annotation_id: int,
    axis_order: str | Sequence[str] | None = None,
    resolution: Sequence[float] | None = None,
) -> Synapse | None:
    """One annotation from the by_id index with its properties and relationships, or None when the
    id is absent. Without axis_order/resolution coordinates stay in the layer's own order and units."""
    store, info = _open_layer(path_or_url)
    conv = _Converter(info, axis_order, resolution)
    found = _by_id_records(store, info, [int(annotation_id)])
    if int(annotation_id) not in found:
        return None
    record, related = found[int(annotation_id)]
    return _to_synapses(info, conv, record, [int(annotation_id)], [related])[0]


def read_related_annotations(
    path_or_url: str | Path,
    relationship: str,
    segment_id: int,
    axis_order: str | Sequence[str] | None = None,
    resolution: Sequence[float] | None = None,
) -> list[Synapse]:
    """Annotations listed under `segment_id` in a relationship index (e.g. all synapses of one
    neuron), sorted by id; relationships are not filled (the index does not store them)."""
    store, info = _open_layer(path_or_url)
    conv = _Converter(info, axis_order, resolution)
    specs = {r.id: r for r in info.relationships}
    if relationship not in specs:
        raise _fail(store.location, f"no relationship {relationship!r}", f"choose one of {sorted(specs)}")
    spec = specs[relationship]
    kv = store.kvstore(spec.key, spec.sharding)
    key: str | bytes = struct.pack(">Q", int(segment_id)) if spec.sharding else str(int(segment_id))
    dtype = _record_dtype(info)
    for _, data in store.read_many(kv, [key], f"relationship index {spec.key!r}"):
        records, ids = _decode_multiple(
            store.location, f"relationship entry {spec.key}/{segment_id}", data, dtype
        )
        order = np.argsort(ids, kind="stable")
        return _to_synapses(info, conv, records[order], ids[order])
    return []
