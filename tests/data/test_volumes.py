"""Volume sources: every format reads boxes inside, across the border (zero fill) and outside."""

from __future__ import annotations

import functools
import http.server
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_training_assistant.data.geometry import Box
from napari_training_assistant.data.volumes import (
    ArrayVolume,
    check_resolution,
    detect_format,
    estimate_bytes,
    kvstore_spec,
    open_volume,
)
from napari_training_assistant.project.errors import DatasetError

SHAPE = (20, 30, 40)  # z, y, x
PATTERN = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
PAD = 32
BOXES = [
    Box((2, 3, 4), (9, 17, 25)),  # inside
    Box((-3, -5, 30), (5, 10, 47)),  # across the border
    Box((25, 0, 0), (30, 5, 5)),  # fully outside
    Box((-10, -10, -10), (-2, -1, -3)),  # fully outside, negative
    Box((0, 0, 0), SHAPE),  # everything
    Box((4, 4, 4), (4, 9, 9)),  # empty
]


def expected(volume: np.ndarray, box: Box, origin=(0, 0, 0)) -> np.ndarray:
    """The box cut from a zero-padded copy: an independent reference for zero fill."""
    padded = np.pad(volume, PAD)
    return padded[
        tuple(slice(a - o + PAD, b - o + PAD) for a, b, o in zip(box.start, box.stop, origin, strict=True))
    ]


def assert_reads(vol, volume=PATTERN, origin=(0, 0, 0), boxes=BOXES) -> None:
    for box in boxes:
        box = Box(
            tuple(a + o for a, o in zip(box.start, origin, strict=True)),
            tuple(b + o for b, o in zip(box.stop, origin, strict=True)),
        )
        got = vol.read(box)
        assert got.shape == box.shape and got.dtype == vol.dtype
        np.testing.assert_array_equal(got, expected(volume, box, origin), err_msg=str(box))


def one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


# ------------------------------------------------------------------ in-memory arrays
def test_array_volume_reads_boxes_with_zero_fill():
    vol = open_volume(PATTERN)
    assert isinstance(vol, ArrayVolume) and vol.format == "array"
    assert (
        vol.shape == SHAPE and vol.dtype == np.uint16 and vol.origin == (0, 0, 0) and vol.resolution is None
    )
    assert vol.bounds == Box((0, 0, 0), SHAPE)
    assert_reads(vol)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-PAD, 40 + PAD), min_size=6, max_size=6))
def test_array_volume_any_box(edges):
    start = tuple(min(a, b) for a, b in zip(edges[:3], edges[3:], strict=True))
    stop = tuple(max(a, b) for a, b in zip(edges[:3], edges[3:], strict=True))
    start = tuple(max(s, -PAD) for s in start)
    stop = tuple(min(s, n + PAD) for s, n in zip(stop, SHAPE, strict=True))
    stop = tuple(max(a, b) for a, b in zip(start, stop, strict=True))
    box = Box(start, stop)
    np.testing.assert_array_equal(open_volume(PATTERN).read(box), expected(PATTERN, box))


def test_source_axes_xyz_are_reordered_to_zyx():
    vol = open_volume(PATTERN.transpose(2, 1, 0), source_axes="xyz")
    assert vol.shape == SHAPE
    assert_reads(vol)


def test_axis_order_xyz_on_zyx_data():
    vol = open_volume(PATTERN, axis_order="xyz", source_axes="zyx")
    assert vol.shape == SHAPE[::-1]
    assert_reads(
        vol, PATTERN.transpose(2, 1, 0), boxes=[Box((1, 2, 3), (30, 9, 8)), Box((-2, -2, -2), (5, 5, 5))]
    )


def test_channel_and_time_axes():
    data = np.stack([PATTERN, PATTERN + 1])[None]  # t, c, z, y, x
    assert_reads(open_volume(data, source_axes="tczyx", channel=1), PATTERN + 1)
    with pytest.raises(DatasetError) as exc:
        open_volume(data, source_axes="tczyx")
    one_line(exc, "2 channels", "channel=0..1")
    with pytest.raises(DatasetError) as exc:
        open_volume(data, source_axes="tczyx", channel=2)
    one_line(exc, "channel 2 is out of range")
    with pytest.raises(DatasetError) as exc:
        open_volume(PATTERN, channel=0)
    one_line(exc, "no channel axis")
    with pytest.raises(DatasetError) as exc:
        open_volume(np.stack([PATTERN, PATTERN]), source_axes="tzyx")
    one_line(exc, "axis 't' has size 2")


def test_two_d_axis_order_drops_a_size_one_z():
    vol = open_volume(PATTERN[3:4], axis_order="yx", source_axes="zyx")
    assert vol.shape == SHAPE[1:]
    np.testing.assert_array_equal(vol.read(Box((-1, 2), (5, 45))), np.pad(PATTERN[3], 8)[7:13, 10:53])


def test_multiscale_list_and_dask():
    levels = [PATTERN, PATTERN[::2, ::2, ::2]]
    assert_reads(open_volume(levels, scale=1), levels[1], boxes=[Box((-1, 2, 3), (6, 9, 30))])
    da = pytest.importorskip("dask.array")
    vol = open_volume(da.from_array(PATTERN, chunks=8))
    assert_reads(vol, boxes=BOXES[:3])


# ------------------------------------------------------------------ TIFF
def test_uncompressed_tiff_is_memory_mapped(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, PATTERN)
    with open_volume(path) as vol:
        assert vol.format == "tiff" and vol.shape == SHAPE and isinstance(vol._array, np.memmap)
        assert_reads(vol)


def test_compressed_tiff_reads_only_the_tiles_a_box_touches(tmp_path, monkeypatch):
    from tifffile.zarr import ZarrTiffStore

    path = tmp_path / "stack.tiff"
    tifffile.imwrite(path, PATTERN, compression="zlib", tile=(16, 16))  # 20 pages x 2 x 3 tiles
    keys: list[str] = []
    original = ZarrTiffStore.get

    async def counting_get(self, key, *args, **kwargs):
        keys.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(ZarrTiffStore, "get", counting_get)
    with open_volume(str(path)) as vol:
        assert not isinstance(vol._array, np.memmap)
        keys.clear()
        np.testing.assert_array_equal(vol.read(Box((3, 2, 2), (5, 10, 10))), PATTERN[3:5, 2:10, 2:10])
        chunks = [k for k in keys if "zarr" not in k and not k.startswith(".z")]
        assert 0 < len(chunks) <= 2  # 2 pages x 1 tile of 120
        assert_reads(vol)


def test_tiff_rgb_channel_and_xyz_pages(tmp_path):
    rgb = np.stack([PATTERN, PATTERN + 1, PATTERN + 2], axis=-1).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    with open_volume(tmp_path / "rgb.tif", source_axes="zyxc", channel=2) as vol:
        assert_reads(vol, PATTERN + 2, boxes=BOXES[:3])
    tifffile.imwrite(tmp_path / "xyz.tif", PATTERN.transpose(2, 1, 0))
    with open_volume(tmp_path / "xyz.tif", source_axes="xyz") as vol:
        assert_reads(vol, boxes=BOXES[:3])
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "rgb.tif")
    one_line(exc, "rgb.tif", "4 dimensions", "TIFF axes")


# ------------------------------------------------------------------ Zarr
@pytest.fixture
def zarr_keys(monkeypatch):
    """Keys of chunk reads through zarr's LocalStore."""
    keys: list[str] = []
    original = zarr.storage.LocalStore.get

    async def counting_get(self, key, *args, **kwargs):
        keys.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", counting_get)
    return keys


def test_zarr_v3_array_reads_only_intersecting_chunks(tmp_path, zarr_keys):
    path = tmp_path / "vol.zarr"
    # 3 x 4 x 5 chunks
    zarr.create_array(path, shape=SHAPE, chunks=(8, 8, 8), dtype=PATTERN.dtype)[:] = PATTERN
    vol = open_volume(path)
    assert vol.format == "zarr" and vol.shape == SHAPE and vol.resolution is None
    zarr_keys.clear()
    np.testing.assert_array_equal(vol.read(Box((9, 9, 9), (15, 15, 20))), PATTERN[9:15, 9:15, 9:20])
    chunk_keys = {k for k in zarr_keys if k.rsplit("/", 1)[-1] != "zarr.json"}
    assert chunk_keys == {"c/1/1/1", "c/1/1/2"}
    assert_reads(vol)


def test_zarr_group_with_dataset_and_errors(tmp_path):
    path = tmp_path / "container.zarr"
    group = zarr.open_group(path, mode="w")
    group.create_array("volumes/raw", shape=SHAPE[::-1], chunks=(16, 16, 16), dtype=PATTERN.dtype)[:] = (
        PATTERN.T
    )
    assert_reads(open_volume(path, dataset="volumes/raw", source_axes="xyz"))
    assert_reads(open_volume(path / "volumes" / "raw", source_axes="xyz"), boxes=BOXES[:2])
    with pytest.raises(DatasetError) as exc:
        open_volume(path)
    one_line(exc, "container.zarr", "dataset=", "volumes")
    with pytest.raises(DatasetError) as exc:
        open_volume(path, dataset="labels")
    one_line(exc, "container.zarr", "no dataset 'labels'", "volumes")
    with pytest.raises(DatasetError) as exc:
        open_volume(path, dataset="volumes/raw", scale=1)
    one_line(exc, "leave scale at 0")


def _write_ome(path: Path, zarr_format: int, *, channels: bool = False) -> None:
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    axes = [{"name": "z", "type": "space", "unit": "nanometer"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "yx"
    ]
    levels = [PATTERN, PATTERN[::2, ::2, ::2]]
    if channels:
        axes.insert(0, {"name": "c", "type": "channel"})
        levels = [np.stack([lv, lv + 1]) for lv in levels]
    datasets = []
    for i, level in enumerate(levels):
        group.create_array(str(i), shape=level.shape, chunks=(8,) * level.ndim, dtype=level.dtype)[:] = level
        factors = [1.0] * channels + [40.0 * 2**i, 0.004 * 2**i, 0.004 * 2**i]
        datasets.append({"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": factors}]})
    multiscales = [{"axes": axes, "datasets": datasets, "name": "raw"}]
    if zarr_format == 2:
        group.attrs.update({"multiscales": [{"version": "0.4", **multiscales[0]}]})
    else:
        group.attrs.update({"ome": {"version": "0.5", "multiscales": multiscales}})


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_levels_resolution_and_channels(tmp_path, zarr_format):
    path = tmp_path / "img.ome.zarr"
    _write_ome(path, zarr_format)
    vol = open_volume(path)
    assert vol.format == "ome-zarr" and vol.shape == SHAPE
    assert vol.resolution == pytest.approx((40.0, 4.0, 4.0))
    assert check_resolution(vol, (40, 4, 4)) is True
    assert_reads(vol)
    small = open_volume(path, scale="1", axis_order="xyz")
    assert small.resolution == pytest.approx((8.0, 8.0, 80.0))
    assert_reads(small, PATTERN[::2, ::2, ::2].transpose(2, 1, 0), boxes=[Box((-2, 3, 1), (30, 9, 8))])
    direct = open_volume(path / "1")  # the level array itself: OME metadata from its group
    assert direct.format == "ome-zarr" and direct.resolution == pytest.approx((80.0, 8.0, 8.0))
    with pytest.raises(DatasetError) as exc:
        open_volume(path, scale=2)
    one_line(exc, "img.ome.zarr", "no scale 2")

    coloured = tmp_path / "colour.zarr"
    _write_ome(coloured, zarr_format, channels=True)
    assert_reads(open_volume(coloured, channel=1), PATTERN + 1, boxes=BOXES[:3])
    with pytest.raises(DatasetError) as exc:
        open_volume(coloured)
    one_line(exc, "colour.zarr", "2 channels")


def test_ome_zarr_inside_a_container_by_dataset(tmp_path):
    path = tmp_path / "container.zarr"
    zarr.open_group(path, mode="w")
    _write_ome(path / "em", 3)
    vol = open_volume(path, dataset="em", scale=1)
    assert vol.resolution == pytest.approx((80.0, 8.0, 8.0))
    assert_reads(vol, PATTERN[::2, ::2, ::2], boxes=BOXES[:2])
    assert open_volume(path, dataset="em/0").resolution == pytest.approx((40.0, 4.0, 4.0))


# ------------------------------------------------------------------ Neuroglancer precomputed
OFFSET_XYZ = (100, 200, 10)
ORIGIN_ZYX = OFFSET_XYZ[::-1]


@pytest.fixture
def precomputed(tmp_path) -> Path:
    """A 2-channel uint16 volume, chunks 8^3, voxel_offset (100, 200, 10), resolution (4, 4, 40),
    plus an unwritten second scale '8_8_40'."""
    ts = pytest.importorskip("tensorstore")
    path = tmp_path / "vol"
    base = {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(path) + "/"}}
    store = ts.open(
        {
            **base,
            "multiscale_metadata": {"type": "image", "data_type": "uint16", "num_channels": 2},
            "scale_metadata": {
                "size": list(SHAPE[::-1]),
                "resolution": [4, 4, 40],
                "encoding": "raw",
                "chunk_size": [8, 8, 8],
                "voxel_offset": list(OFFSET_XYZ),
            },
        },
        create=True,
        delete_existing=True,
    ).result()
    store.write(np.stack([PATTERN, PATTERN + 1]).transpose(3, 2, 1, 0)).result()  # x, y, z, channel
    ts.open(
        {
            **base,
            "scale_metadata": {
                "size": [20, 15, 20],
                "resolution": [8, 8, 40],
                "encoding": "raw",
                "chunk_size": [8, 8, 8],
                "voxel_offset": [50, 100, 10],
            },
        },
        create=True,
        open=True,
    ).result()
    return path


def test_precomputed_absolute_coordinates_channel_and_resolution(precomputed):
    vol = open_volume(precomputed, channel=0)
    assert vol.format == "precomputed" and vol.shape == SHAPE and vol.dtype == np.uint16
    assert vol.origin == ORIGIN_ZYX and vol.bounds == Box(
        ORIGIN_ZYX, tuple(o + n for o, n in zip(ORIGIN_ZYX, SHAPE, strict=True))
    )
    assert vol.resolution == (40.0, 4.0, 4.0)
    assert_reads(vol, origin=ORIGIN_ZYX)
    assert_reads(
        open_volume(f"precomputed://{precomputed}", channel=1),
        PATTERN + 1,
        origin=ORIGIN_ZYX,
        boxes=BOXES[:3],
    )
    xyz = open_volume(precomputed / "info", axis_order="xyz", channel=1)
    assert xyz.origin == OFFSET_XYZ and xyz.resolution == (4.0, 4.0, 40.0)
    np.testing.assert_array_equal(
        xyz.read(Box((98, 201, 12), (103, 205, 14))),
        expected(PATTERN + 1, Box((12, 201, 98), (14, 205, 103)), ORIGIN_ZYX).transpose(2, 1, 0),
    )
    assert check_resolution(vol, (40, 4, 4.002)) is True
    with pytest.raises(DatasetError) as exc:
        check_resolution(vol, (40, 8, 8))
    one_line(exc, str(precomputed), "z=40, y=4, x=4", "z=40, y=8, x=8")
    with pytest.raises(DatasetError) as exc:
        open_volume(precomputed)
    one_line(exc, "2 channels", "channel=")


def test_precomputed_scales(precomputed):
    by_key = open_volume(f"file://{precomputed}", scale="8_8_40", channel=0)
    by_index = open_volume(precomputed, scale=1, channel=0)
    assert by_key.origin == by_index.origin == (10, 100, 50) and by_key.shape == (20, 15, 20)
    assert by_key.resolution == (40.0, 8.0, 8.0)
    assert not by_key.read(by_key.bounds).any()  # nothing written at this scale: fill value
    with pytest.raises(DatasetError) as exc:
        open_volume(precomputed, scale="16_16_40")
    one_line(exc, "no scale '16_16_40'", "4_4_40", "8_8_40")


def test_precomputed_reads_only_intersecting_chunks(precomputed):
    """Corrupt every chunk file the box does not touch: the box still reads, the whole volume does not."""
    # z, y, x: touches chunks x 100-108 & 108-116, y 200-208 & 208-216, z 10-18
    box = Box((12, 205, 103), (15, 210, 110))
    touched = 0
    for chunk in (precomputed / "4_4_40").iterdir():
        ranges = [tuple(map(int, r.split("-"))) for r in chunk.name.split("_")]  # x, y, z
        hits = all(
            a < hi and lo < b for (a, b), lo, hi in zip(ranges, box.start[::-1], box.stop[::-1], strict=True)
        )
        touched += hits
        if not hits:
            chunk.write_bytes(b"not a chunk")
    assert touched == 4
    vol = open_volume(precomputed, channel=0)
    np.testing.assert_array_equal(vol.read(box), expected(PATTERN, box, ORIGIN_ZYX))
    with pytest.raises(ValueError):
        vol.read(vol.bounds)


def test_precomputed_over_loopback_http(precomputed):
    handler = functools.partial(_QuietHandler, directory=str(precomputed.parent))
    server = _LoopbackServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/vol"
        vol = open_volume(url, channel=1)
        assert vol.origin == ORIGIN_ZYX
        assert_reads(vol, PATTERN + 1, origin=ORIGIN_ZYX, boxes=BOXES[:2])
    finally:
        server.shutdown()
        server.server_close()


class _LoopbackServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # TensorStore opens many connections at once


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_kvstore_specs_for_urls(tmp_path):
    assert kvstore_spec("gs://my-bucket/em/raw") == {
        "driver": "gcs",
        "bucket": "my-bucket",
        "path": "em/raw/",
    }
    assert kvstore_spec("s3://my-bucket/em/raw/") == {
        "driver": "s3",
        "bucket": "my-bucket",
        "path": "em/raw/",
    }
    assert kvstore_spec("https://example.org:8080/data/em") == {
        "driver": "http",
        "base_url": "https://example.org:8080",
        "path": "/data/em/",
    }
    assert kvstore_spec(str(tmp_path)) == {"driver": "file", "path": str(tmp_path) + "/"}
    assert detect_format("precomputed://gs://my-bucket/em") == ("precomputed", "gs://my-bucket/em")
    assert detect_format("s3://my-bucket/em.zarr") == ("zarr", "s3://my-bucket/em.zarr")
    assert detect_format("https://example.org/em") == ("precomputed", "https://example.org/em")


# ------------------------------------------------------------------ errors and helpers
def test_errors_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "missing.tif")
    one_line(exc, "missing.tif", "no such file", "accepted:")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "notes.txt")
    one_line(exc, "notes.txt", "unknown volume format", "precomputed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "empty")
    one_line(exc, "empty", "unknown volume format")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "broken.tif")
    one_line(exc, "broken.tif", "TIFF")
    (tmp_path / "bad.zarr").mkdir()
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "bad.zarr")
    one_line(exc, "bad.zarr", "Zarr")
    (tmp_path / "bad_info").mkdir()
    (tmp_path / "bad_info" / "info").write_text("{not json")
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "bad_info")
    one_line(exc, "bad_info", "not valid JSON")
    with pytest.raises(DatasetError) as exc:
        open_volume(PATTERN[0])
    one_line(exc, "2 dimensions", "source_axes")
    with pytest.raises(DatasetError) as exc:
        open_volume(PATTERN, axis_order="zyq")
    one_line(exc, "axis_order 'zyq'")
    tifffile.imwrite(tmp_path / "ok.tif", PATTERN)
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "ok.tif", dataset="raw")
    one_line(exc, "ok.tif", "dataset=")
    with pytest.raises(DatasetError) as exc:
        open_volume(tmp_path / "ok.tif", scale=1)
    one_line(exc, "ok.tif", "1 pyramid level")
    with pytest.raises(DatasetError) as exc:
        open_volume("ftp://host/volume")
    one_line(exc, "ftp://host/volume", "unknown URL scheme")
    with pytest.raises(ValueError):
        open_volume(PATTERN).read(Box((0, 0), (1, 1)))


def test_estimate_bytes_and_resolution_checks():
    assert estimate_bytes(Box((0, 0, 0), (10, 20, 30)), np.uint16) == 12_000
    assert estimate_bytes((4, 4), "float32") == 64
    vol = open_volume(PATTERN)
    assert check_resolution(vol, (40, 4, 4)) is False  # unknown voxel size: not checked
    with pytest.raises(DatasetError) as exc:
        check_resolution(vol, (4, 4))
    one_line(exc, "2 values", "'zyx'")


def test_reads_are_copies_and_path_volumes_pickle_by_path(tmp_path, precomputed):
    source = PATTERN.copy()
    got = open_volume(source).read(Box((0, 0, 0), (2, 2, 2)))
    got[...] = 7
    np.testing.assert_array_equal(source, PATTERN)
    in_memory = pickle.loads(pickle.dumps(open_volume(source)))
    assert_reads(in_memory, boxes=BOXES[:2])
    tifffile.imwrite(tmp_path / "c.tif", PATTERN, compression="zlib")
    for vol in (open_volume(tmp_path / "c.tif"), open_volume(precomputed, channel=1, axis_order="xyz")):
        again = pickle.loads(pickle.dumps(vol))
        assert type(again) is type(vol) and again.origin == vol.origin and again.shape == vol.shape
        np.testing.assert_array_equal(again.read(vol.bounds), vol.read(vol.bounds))
        vol.close()
        again.close()
