"""Precomputed annotation reader against layers written by neuroglancer's own AnnotationWriter.

The writer (neuroglancer.write_annotations) only writes one unsharded spatial level with a single
cell, so the sharded and multi-level layers here are re-packed from its output: the annotation
bytes it wrote are copied unchanged into more cells / levels (with duplicates) and into
neuroglancer_uint64_sharded_v1 shards written by tensorstore's sharded kvstore.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from napari_training_assistant.data.annotations import (
    Synapse,
    compressed_morton_code,
    points_in_box,
    read_annotation_by_id,
    read_annotation_info,
    read_precomputed_annotations,
    read_precomputed_regions,
    read_related_annotations,
)
from napari_training_assistant.data.geometry import Box
from napari_training_assistant.project.errors import DatasetError

ts = pytest.importorskip("tensorstore")
neuroglancer = pytest.importorskip("neuroglancer")
write_annotations = pytest.importorskip("neuroglancer.write_annotations")

RES_ZYX = (40.0, 4.0, 4.0)  # nm per voxel, z y x
KINDS = ["excitatory", "inhibitory", "unknown"]


def _space():
    return neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[4, 4, 40])


def _properties():
    spec = neuroglancer.AnnotationPropertySpec
    return [
        spec(id="score", type="uint8", description="0..255"),
        spec(id="color", type="rgb"),
        spec(id="conf", type="float32"),
        spec(id="kind", type="uint16", enum_values=[0, 1, 2], enum_labels=KINDS),
        spec(id="delta", type="int8"),
    ]


def _points_expected(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    xyz = np.stack([rng.uniform(0, 200, n), rng.uniform(0, 150, n), rng.uniform(0, 30, n)], axis=1).astype(
        np.float32
    )
    rows = []
    for i, p in enumerate(xyz):
        rows.append(
            {
                "id": 1000 + 7 * i,
                "xyz": tuple(float(v) for v in p),
                "score": i % 256,
                "color": (i, 255 - i, 3),
                "conf": float(np.float32(i / 7)),
                "kind": i % 3,
                "delta": -i,
                "pre_segment": [5000 + i % 4],
                "post_segment": [6000 + i % 5, 7000] if i % 2 else [],
            }
        )
    return rows


def _write_points(path: Path, rows) -> None:
    writer = write_annotations.AnnotationWriter(
        coordinate_space=_space(),
        annotation_type="point",
        relationships=["pre_segment", "post_segment"],
        properties=_properties(),
    )
    for r in rows:
        writer.add_point(
            r["xyz"],
            id=r["id"],
            score=r["score"],
            color=r["color"],
            conf=r["conf"],
            kind=r["kind"],
            delta=r["delta"],
            pre_segment=r["pre_segment"],
            post_segment=r["post_segment"],
        )
    writer.write(path)


def _zyx(xyz, res_zyx=RES_ZYX, layer_xyz_nm=(4.0, 4.0, 40.0)):
    x, y, z = (c * s for c, s in zip(xyz, layer_xyz_nm, strict=True))
    return (z / res_zyx[0], y / res_zyx[1], x / res_zyx[2])


def _check_point(s: Synapse, r, relationships=True):
    assert s.id == r["id"]
    assert s.end is None
    np.testing.assert_allclose(s.start, _zyx(r["xyz"]), rtol=1e-6)
    assert s.properties == {k: r[k] for k in ("score", "color", "conf", "kind", "delta")}
    assert isinstance(s.properties["color"], tuple)
    if relationships:
        assert s.relationships == {"pre_segment": r["pre_segment"], "post_segment": r["post_segment"]}


# ------------------------------------------------------------------------ re-packing helpers
def _writer_records(layer: Path) -> tuple[dict[int, bytes], int]:
    """{id: encoded annotation bytes} from the writer's single spatial cell, and the rank."""
    info = json.loads((layer / "info").read_text())
    rank = len(info["dimensions"])
    data = (layer / info["spatial"][0]["key"] / "_".join("0" * rank)).read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    size = (len(data) - 8 - 8 * n) // n
    ids = struct.unpack_from(f"<{n}Q", data, 8 + n * size)
    return {i: data[8 + k * size : 8 + (k + 1) * size] for k, i in enumerate(ids)}, rank


def _chunk(records: dict[int, bytes], ids) -> bytes:
    ids = list(ids)
    return (
        struct.pack("<Q", len(ids)) + b"".join(records[i] for i in ids) + struct.pack(f"<{len(ids)}Q", *ids)
    )


def _geometry(encoded: bytes, rank: int, n_points: int) -> np.ndarray:
    return np.frombuffer(encoded, dtype="<f4", count=rank * n_points).reshape(n_points, rank)


def _multilevel(layer: Path, n_points: int) -> dict[str, dict[tuple[int, ...], list[int]]]:
    """Replace the writer's spatial index by 2 levels: level 0 = one cell holding every 3rd
    annotation; level 1 = a 2x2x2 grid holding every annotation in each cell its bounds touch
    (so ids repeat across levels and, for lines, across cells). Returns {level key: {cell: ids}}."""
    info = json.loads((layer / "info").read_text())
    records, rank = _writer_records(layer)
    lower = np.array(info["lower_bound"], dtype=np.float64)
    upper = np.array(info["upper_bound"], dtype=np.float64)
    # widen the bounds (the writer's are min of first / max of second corners only)
    for enc in records.values():
        g = _geometry(enc, rank, n_points)
        lower, upper = np.minimum(lower, g.min(axis=0)), np.maximum(upper, g.max(axis=0))
    upper = upper + 1.0
    grid = np.array([2] * rank)
    size = (upper - lower) / grid
    ids = sorted(records)
    cells: dict[tuple[int, ...], list[int]] = {}
    for i in ids:
        g = _geometry(records[i], rank, n_points)
        lo = np.clip(np.floor((g.min(axis=0) - lower) / size).astype(int), 0, grid - 1)
        hi = np.clip(np.floor((g.max(axis=0) - lower) / size).astype(int), 0, grid - 1)
        for c in np.ndindex(*(hi - lo + 1)):
            cells.setdefault(tuple(int(v) for v in lo + np.array(c)), []).append(i)
    levels = {
        "spatial0": {(0,) * rank: ids[::3]},
        "spatial1": cells,
    }
    info["lower_bound"], info["upper_bound"] = lower.tolist(), upper.tolist()
    info["spatial"] = [
        {
            "key": "spatial0",
            "grid_shape": [1] * rank,
            "chunk_size": (upper - lower).tolist(),
            "limit": len(ids) // 3 + 1,
        },
        {"key": "spatial1", "grid_shape": grid.tolist(), "chunk_size": size.tolist(), "limit": len(ids)},
    ]
    shutil.rmtree(layer / "spatial0")
    for key, level_cells in levels.items():
        (layer / key).mkdir()
        for c, members in level_cells.items():
            (layer / key / "_".join(map(str, c))).write_bytes(_chunk(records, members))
    (layer / "info").write_text(json.dumps(info))
    return levels


def _sharded_kv(path: Path, sharding: dict):
    return ts.KvStore.open(
        {
            "driver": "neuroglancer_uint64_sharded",
            "base": {"driver": "file", "path": str(path) + "/"},
            "metadata": sharding,
        }
    ).result()


SPATIAL_SHARDING = {
    "@type": "neuroglancer_uint64_sharded_v1",
    "preshift_bits": 0,
    "hash": "identity",
    "minishard_bits": 1,
    "shard_bits": 1,
    "minishard_index_encoding": "gzip",
    "data_encoding": "gzip",
}
ID_SHARDING = {
    "@type": "neuroglancer_uint64_sharded_v1",
    "preshift_bits": 1,
    "hash": "murmurhash3_x86_128",
    "minishard_bits": 2,
    "shard_bits": 2,
    "minishard_index_encoding": "gzip",
    "data_encoding": "raw",
}


def _reshard(layer: Path) -> None:
    """Move by_id, relationship indexes and the single-level spatial index into sharded form."""
    info = json.loads((layer / "info").read_text())
    for index in [info["by_id"], *info["relationships"]]:
        folder = layer / index["key"]
        entries = {int(p.name): p.read_bytes() for p in folder.iterdir()}
        shutil.rmtree(folder)
        kv = _sharded_kv(folder, ID_SHARDING)
        with ts.Transaction() as txn:
            for key, value in entries.items():
                kv.with_transaction(txn)[struct.pack(">Q", key)] = value
        index["sharding"] = ID_SHARDING
    for level in info["spatial"]:
        folder = layer / level["key"]
        cells = {tuple(int(v) for v in p.name.split("_")): p.read_bytes() for p in folder.iterdir()}
        shutil.rmtree(folder)
        kv = _sharded_kv(folder, SPATIAL_SHARDING)
        with ts.Transaction() as txn:
            for cell, value in cells.items():
                kv.with_transaction(txn)[
                    struct.pack(">Q", compressed_morton_code(cell, level["grid_shape"]))
                ] = value
        level["sharding"] = SPATIAL_SHARDING
    (layer / "info").write_text(json.dumps(info))


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture
def points_layer(tmp_path):
    rows = _points_expected()
    _write_points(tmp_path / "points", rows)
    return tmp_path / "points", rows


def test_writer_output_is_what_the_reader_assumes(points_layer):
    layer, rows = points_layer
    info = json.loads((layer / "info").read_text())
    assert info["dimensions"]["x"][1] == "m"  # the writer normalises units to metres
    assert [s["grid_shape"] for s in info["spatial"]] == [[1, 1, 1]]
    assert "sharding" not in info["by_id"] and (layer / "spatial0" / "0_0_0").exists()
    parsed = read_annotation_info(layer)
    assert parsed.annotation_type == "point" and parsed.dimension_names == ("x", "y", "z")
    np.testing.assert_allclose(parsed.scales_nm, (4, 4, 40))
    assert parsed.label_map("kind") == dict(enumerate(KINDS))
    assert parsed.label_map("score") == {}


# ------------------------------------------------------------------------------------- points
@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "sharded"])
def test_points_roundtrip(points_layer, sharded):
    layer, rows = points_layer
    if sharded:
        _reshard(layer)
        assert not (layer / "by_id" / str(rows[0]["id"])).exists()
        assert any(p.suffix == ".shard" for p in (layer / "spatial0").iterdir())
    synapses = read_precomputed_annotations(layer, "zyx", RES_ZYX, relationships=True)
    assert [s.id for s in synapses] == [r["id"] for r in rows]
    for s, r in zip(synapses, rows, strict=True):
        _check_point(s, r)
    plain = read_precomputed_annotations(layer, "zyx", RES_ZYX)
    assert all(s.relationships == {} for s in plain)
    r = rows[5]
    by_id = read_annotation_by_id(layer, r["id"], "zyx", RES_ZYX)
    assert by_id is not None
    _check_point(by_id, r)
    assert read_annotation_by_id(layer, 1, "zyx", RES_ZYX) is None
    native = read_annotation_by_id(layer, r["id"])  # layer order (x, y, z) and units
    np.testing.assert_allclose(native.start, r["xyz"], rtol=1e-6)
    related = read_related_annotations(layer, "pre_segment", 5001, "zyx", RES_ZYX)
    assert [s.id for s in related] == [q["id"] for q in rows if q["pre_segment"] == [5001]]
    assert [s.id for s in read_related_annotations(layer, "post_segment", 7000)] == [
        q["id"] for q in rows if 7000 in q["post_segment"]
    ]
    assert read_related_annotations(layer, "post_segment", 123) == []


def test_property_order_follows_alignment_groups_not_declaration(points_layer):
    # spec: 4-byte values, then 2-byte, then 1-byte, each group in declaration order; the writer
    # declares them already grouped, so declaring them interleaved must decode the same bytes
    layer, rows = points_layer
    info = json.loads((layer / "info").read_text())
    assert [p["id"] for p in info["properties"]] == ["conf", "kind", "score", "color", "delta"]
    by_id = {p["id"]: p for p in info["properties"]}
    info["properties"] = [by_id[k] for k in ("score", "conf", "color", "kind", "delta")]
    (layer / "info").write_text(json.dumps(info))
    for s, r in zip(
        read_precomputed_annotations(layer, "zyx", RES_ZYX, relationships=True), rows, strict=True
    ):
        _check_point(s, r)


def test_relative_index_keys(points_layer):
    layer, rows = points_layer
    info = json.loads((layer / "info").read_text())
    shutil.move(layer / "by_id", layer.parent / "ids")
    info["by_id"]["key"] = "../ids"
    (layer / "info").write_text(json.dumps(info))
    _check_point(read_annotation_by_id(f"file://{layer}", rows[3]["id"], "zyx", RES_ZYX), rows[3])


@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "sharded"])
def test_cells_enumerated_when_listing_is_unsupported(points_layer, monkeypatch, sharded):
    from napari_training_assistant.data.annotations import precomputed

    layer, rows = points_layer
    _multilevel(layer, 1)
    if sharded:
        _reshard(layer)
    monkeypatch.setattr(precomputed._Store, "list_keys", lambda self, kv: None)  # as over http
    got = read_precomputed_annotations(f"precomputed://{layer}", "zyx", RES_ZYX)
    assert [s.id for s in got] == [r["id"] for r in rows]


@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "sharded"])
def test_bbox_reads_only_intersecting_cells(tmp_path, sharded):
    rows = _points_expected(60, seed=3)
    layer = tmp_path / "points"
    _write_points(layer, rows)
    written = _multilevel(layer, 1)
    if sharded:
        _reshard(layer)
    assert len(written["spatial1"]) > 1
    everything = read_precomputed_annotations(layer, "zyx", RES_ZYX)
    assert [s.id for s in everything] == [r["id"] for r in rows]  # de-duplicated across levels
    for s, r in zip(everything, rows, strict=True):
        _check_point(s, r, relationships=False)
    bbox = Box((0, 0, 0), (15, 80, 120))
    got = read_precomputed_annotations(layer, "zyx", RES_ZYX, bbox=bbox)
    expected = [s.id for s in everything if bbox.contains(s.start)]
    assert 0 < len(expected) < len(rows)
    assert [s.id for s in got] == expected
    if not sharded:
        # corrupt the far cell of level 1: a bbox away from it never reads it, a full read does
        (layer / "spatial1" / "1_1_1").write_bytes(b"\x05")
        small = Box((0, 0, 0), (5, 10, 10))  # inside cell (0, 0, 0) of level 1
        assert [s.id for s in read_precomputed_annotations(layer, "zyx", RES_ZYX, bbox=small)] == [
            s.id for s in everything if small.contains(s.start)
        ]
        with pytest.raises(DatasetError, match="truncated"):
            read_precomputed_annotations(layer, "zyx", RES_ZYX)


# -------------------------------------------------------------------------------------- lines
def _write_lines(path: Path, n: int = 25):
    writer = write_annotations.AnnotationWriter(
        coordinate_space=_space(),
        annotation_type="line",
        relationships=["pre_segment", "post_segment"],
        properties=[
            neuroglancer.AnnotationPropertySpec(id="weight", type="float32"),
            neuroglancer.AnnotationPropertySpec(id="n", type="int16"),
        ],
    )
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        a = rng.uniform(0, 100, 3).astype(np.float32)
        b = (a + rng.uniform(-20, 20, 3)).astype(np.float32)
        rows.append((i + 1, tuple(map(float, a)), tuple(map(float, b)), float(np.float32(i * 0.5)), -i))
        writer.add_line(a, b, id=i + 1, weight=i * 0.5, n=-i, pre_segment=[100 + i], post_segment=[200 + i])
    writer.write(path)
    return rows


@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "sharded"])
def test_lines_roundtrip_multilevel(tmp_path, sharded):
    layer = tmp_path / "lines"
    rows = _write_lines(layer)
    written = _multilevel(layer, 2)
    if sharded:
        _reshard(layer)
    assert sum(len(v) for v in written["spatial1"].values()) > len(rows)  # lines spanning cells repeat
    synapses = read_precomputed_annotations(layer, "zyx", RES_ZYX, relationships=True)
    assert [s.id for s in synapses] == [r[0] for r in rows]
    for s, (i, a, b, weight, n) in zip(synapses, rows, strict=True):
        np.testing.assert_allclose(s.start, _zyx(a), rtol=1e-6)
        np.testing.assert_allclose(s.end, _zyx(b), rtol=1e-6)
        assert s.properties == {"weight": weight, "n": n}
        assert s.relationships == {"pre_segment": [99 + i], "post_segment": [199 + i]}
        np.testing.assert_allclose(s.point("midpoint"), (np.array(_zyx(a)) + _zyx(b)) / 2, rtol=1e-6)
    bbox = Box((0, 0, 0), (50, 60, 60))
    got = read_precomputed_annotations(layer, "zyx", RES_ZYX, bbox=bbox)
    kept, dropped = points_in_box(got, bbox, "start")
    assert [s.id for s, _ in kept] == [s.id for s in synapses if bbox.contains(s.start)]
    assert set(dropped) <= {"outside region"}


# ----------------------------------------------------------------------------- units, errors
@pytest.mark.parametrize(
    "dimensions",
    [
        {"x": [4, "nm"], "y": [4, "nm"], "z": [40, "nm"]},
        {"x": [0.004, "um"], "y": [0.004, "\u00b5m"], "z": [0.04, "\u03bcm"]},
        {"z": [4e-8, "m"], "x": [4e-9, "m"], "y": [4e-9, "m"]},
    ],
    ids=["nm", "um", "m-reordered"],
)
def test_units_converted(points_layer, dimensions):
    layer, rows = points_layer
    info = json.loads((layer / "info").read_text())
    if list(dimensions) != ["x", "y", "z"]:  # reorder the geometry too: rewrite via the writer
        writer = write_annotations.AnnotationWriter(
            neuroglancer.CoordinateSpace(names=["z", "x", "y"], units="nm", scales=[40, 4, 4]), "point"
        )
        for r in rows:
            x, y, z = r["xyz"]
            writer.add_point([z, x, y], id=r["id"])
        shutil.rmtree(layer)
        writer.write(layer)
        info = json.loads((layer / "info").read_text())
    info["dimensions"] = dimensions
    (layer / "info").write_text(json.dumps(info))
    got = read_precomputed_annotations(layer, "zyx", (80.0, 8.0, 2.0))
    for s, r in zip(got, rows, strict=True):
        x, y, z = r["xyz"]
        np.testing.assert_allclose(s.start, (z / 2, y / 2, x * 2), rtol=1e-5)


def test_errors_are_dataset_errors(tmp_path, points_layer):
    layer, _ = points_layer
    with pytest.raises(DatasetError, match="no `info`"):
        read_precomputed_annotations(tmp_path / "nowhere", "zyx", RES_ZYX)
    with pytest.raises(DatasetError, match="axis_order"):
        read_precomputed_annotations(layer, "cyx", RES_ZYX)
    with pytest.raises(DatasetError, match="resolution"):
        read_precomputed_annotations(layer, "zyx", (40.0, 4.0))
    info = json.loads((layer / "info").read_text())
    info["dimensions"]["x"] = [1, "s"]
    (layer / "info").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="not a length"):
        read_precomputed_annotations(layer, "zyx", RES_ZYX)
    info["dimensions"]["x"] = [4, "nm"]
    info["annotation_type"] = "POLYLINE"
    (layer / "info").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="POLYLINE"):
        read_precomputed_annotations(layer, "zyx", RES_ZYX)
    info["annotation_type"] = "POINT"  # any case
    (layer / "info").write_text(json.dumps(info))
    assert len(read_precomputed_annotations(layer, "zyx", RES_ZYX)) == 40
    (layer / "info").write_text(json.dumps({"@type": "neuroglancer_multiscale_volume"}))
    with pytest.raises(DatasetError, match="neuroglancer_annotations_v1"):
        read_annotation_info(layer)


def test_ellipsoid_centre_as_point(tmp_path):
    writer = write_annotations.AnnotationWriter(_space(), "ellipsoid")
    writer.add_ellipsoid([10, 20, 3], [2, 2, 1], id=3)
    writer.write(tmp_path / "e")
    (s,) = read_precomputed_annotations(tmp_path / "e", "zyx", RES_ZYX)
    assert s.end is None and s.start == pytest.approx((3, 20, 10))


# ------------------------------------------------------------------------------ Morton code
def test_compressed_morton_code_matches_tensorstore_sharded_volume(tmp_path):
    sharding = {
        "@type": "neuroglancer_uint64_sharded_v1",
        "preshift_bits": 0,
        "hash": "identity",
        "minishard_bits": 0,
        "shard_bits": 0,
        "minishard_index_encoding": "raw",
        "data_encoding": "raw",
    }
    grid = (5, 3, 2)
    arr = ts.open(
        {
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": str(tmp_path / "vol") + "/"},
            "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
            "scale_metadata": {
                "size": [4 * g for g in grid],
                "chunk_size": [4, 4, 4],
                "resolution": [1, 1, 1],
                "encoding": "raw",
                "sharding": sharding,
            },
            "create": True,
        }
    ).result()
    cells = [(3, 2, 1), (4, 0, 1), (1, 1, 0), (0, 2, 1)]
    for c in cells:
        arr[c[0] * 4 : c[0] * 4 + 4, c[1] * 4 : c[1] * 4 + 4, c[2] * 4 : c[2] * 4 + 4, :] = 1
    key = json.loads((tmp_path / "vol" / "info").read_text())["scales"][0]["key"]
    listed = _sharded_kv(tmp_path / "vol" / key, sharding).list().result()
    assert sorted(struct.unpack(">Q", k)[0] for k in listed) == sorted(
        compressed_morton_code(c, grid) for c in cells
    )
    assert compressed_morton_code((0, 0, 0), (1, 1, 1)) == 0
    assert (
        compressed_morton_code((1, 0, 0), (2, 2, 2)) == 1
        and compressed_morton_code((0, 0, 1), (2, 2, 2)) == 4
    )


# ----------------------------------------------------------------------------------- regions
@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "sharded"])
def test_precomputed_regions(tmp_path, sharded):
    writer = write_annotations.AnnotationWriter(
        _space(),
        "axis_aligned_bounding_box",
        properties=[
            neuroglancer.AnnotationPropertySpec(
                id="split", type="uint8", enum_values=[0, 1, 2], enum_labels=["train", "val", "test"]
            ),
            neuroglancer.AnnotationPropertySpec(id="fold", type="float32"),
        ],
    )
    writer.add_axis_aligned_bounding_box([0, 0, 0], [100, 80, 10], id=1, split=0, fold=2.0)
    writer.add_axis_aligned_bounding_box([100, 0, 0], [200, 80, 10], id=2, split=1, fold=3.5)
    writer.add_axis_aligned_bounding_box([0, 80, 10], [100, 160, 20], id=3, split=2, fold=0)
    writer.write(tmp_path / "boxes")
    if sharded:
        _reshard(tmp_path / "boxes")
    regions = read_precomputed_regions(tmp_path / "boxes", "zyx", RES_ZYX)
    assert [(r.name, r.box, r.tags) for r in regions] == [
        ("1", Box((0, 0, 0), (10, 80, 100)), frozenset({"train"})),
        ("2", Box((0, 0, 100), (10, 80, 200)), frozenset({"val"})),
        ("3", Box((10, 80, 0), (20, 160, 100)), frozenset({"test"})),
    ]
    by_fold = read_precomputed_regions(tmp_path / "boxes", "zyx", (40, 8, 8), tag_property="fold")
    assert [sorted(r.tags) for r in by_fold] == [["2"], ["3.5"], ["0"]]
    assert by_fold[1].box == Box((0, 0, 50), (10, 40, 100))
    with pytest.raises(DatasetError, match="no property 'tag'"):
        read_precomputed_regions(tmp_path / "boxes", "zyx", RES_ZYX, tag_property="tag")


def test_precomputed_regions_refuses_points(points_layer):
    layer, _ = points_layer
    with pytest.raises(DatasetError, match="axis_aligned_bounding_box"):
        read_precomputed_regions(layer, "zyx", RES_ZYX)
