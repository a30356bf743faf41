"""Reader for Neuroglancer precomputed annotation layers (``neuroglancer_annotations_v1``).

Implements the published format: an ``info`` JSON file (parsed in `precomputed_info`) naming the
coordinate space, the annotation type, the property and relationship declarations, the ``by_id``
index and one or more ``spatial`` index levels. Every index is either unsharded (one file per
key: ``<key>/<x>_<y>_<z>`` for spatial cells, ``<key>/<id>`` for ``by_id`` and relationships) or
sharded (``neuroglancer_uint64_sharded_v1``, read through tensorstore's
``neuroglancer_uint64_sharded`` kvstore, keyed by the uint64 annotation id, segment id or, for
spatial cells, the compressed Morton code of the cell). The binary encodings are decoded in
`precomputed_codec`.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_training_assistant.data.geometry import Box
from napari_training_assistant.project.errors import DatasetError

from .precomputed_codec import (
    _decode_multiple,
    _decode_single,
    _python_value,
    _record_dtype,
    compressed_morton_code,
)
from .precomputed_info import (
    ANNOTATION_TYPES,
    AnnotationLayerInfo,
    IndexSpec,
    PropertySpec,
    SpatialLevel,
    _fail,
    _one_line,
    _parse_info,
)
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

_MAX_CELLS = 1_000_000  # cells one level may enumerate before we ask for a bbox
_BATCH = 256  # concurrent kvstore reads

_TENSORSTORE_HINT = "install tensorstore (pip install 'napari-training-assistant[connectomics]')"


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
