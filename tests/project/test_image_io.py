"""Reading arrays from TIFF/PNG/JPEG/NPY/Zarr/OME-Zarr, atomic TIFF writes, array hashes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_training_assistant.project.errors import DatasetError
from napari_training_assistant.project.image_io import (
    ACCEPTED_FORMATS,
    array_sha256,
    multiscales_level0,
    read_array,
    read_tiff,
    write_tiff,
)

RNG = np.random.default_rng(42)
ZARR3 = int(zarr.__version__.split(".")[0]) >= 3
ZARR_FORMATS = [2, 3] if ZARR3 else [2]


def _group(path, zarr_format):
    if ZARR3:
        return zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    return zarr.open_group(str(path), mode="w")


def _put(group, name, data):
    if hasattr(group, "create_array"):  # zarr 3
        group.create_array(name, data=data, chunks=data.shape)
    else:  # zarr 2
        group.array(name, data, chunks=data.shape)


# --------------------------------------------------------------------------- tiff


@pytest.mark.parametrize(
    "array",
    [
        RNG.integers(0, 255, (16, 12), dtype=np.uint8),
        RNG.integers(0, 65535, (3, 16, 12), dtype=np.uint16),  # channel-first or stack
        RNG.integers(0, 255, (16, 12, 3), dtype=np.uint8),  # RGB
        RNG.random((2, 4, 16, 12)).astype(np.float32),
        RNG.integers(-100, 100, (4, 8, 8)).astype(np.int16),
        RNG.integers(0, 2, (8, 8)).astype(bool),
    ],
    ids=["u8-2d", "u16-3d", "rgb", "f32-4d", "i16", "bool"],
)
def test_tiff_round_trip(tmp_path, array):
    path = write_tiff(tmp_path / "sub" / "a.tif", array)
    assert path == tmp_path / "sub" / "a.tif"
    back = read_tiff(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    np.testing.assert_array_equal(read_array(path), array)
    assert array_sha256(back) == array_sha256(array)


def test_write_tiff_is_atomic_and_compressed(tmp_path):
    path = tmp_path / "mask.tif"
    write_tiff(path, np.ones((64, 64), np.uint8))
    write_tiff(path, np.zeros((64, 64), np.uint8))  # replaces
    assert [p.name for p in tmp_path.iterdir()] == ["mask.tif"]  # no temp file left
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert not read_tiff(path).any()
    assert os.stat(path).st_mode & 0o044  # readable like any other file, not mkstemp's 0600


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "a.tif"
    write_tiff(path, np.ones((4, 4), np.uint8))

    def crash(fh, *args, **kwargs):
        fh.write(b"II*\x00 half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_tiff(path, np.zeros((4, 4), np.uint8))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]
    assert read_tiff(path).all()


def test_array_sha256_depends_on_values_dtype_and_shape():
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert array_sha256(a) == array_sha256(a.copy())
    assert array_sha256(a) == array_sha256(np.asfortranarray(a))
    assert array_sha256(a) == array_sha256(a.astype(">u2"))
    assert array_sha256(a) != array_sha256(a.astype(np.int32))
    assert array_sha256(a) != array_sha256(a.reshape(4, 3))
    b = a.copy()
    b[0, 0] = 1
    assert array_sha256(a) != array_sha256(b)
    assert len(array_sha256(a)) == 64


# --------------------------------------------------------------------------- png, jpeg, npy


def test_png_8bit_gray(tmp_path):
    array = RNG.integers(0, 255, (10, 7), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "g8.png")
    back = read_array(tmp_path / "g8.png")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, array)


def test_png_16bit_gray(tmp_path):
    array = RNG.integers(0, 65535, (10, 7), dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "g16.PNG")
    back = read_array(tmp_path / "g16.PNG")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, array)


def test_png_rgb_stays_hwc(tmp_path):
    array = RNG.integers(0, 255, (10, 7, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "rgb.png")
    back = read_array(tmp_path / "rgb.png")
    assert back.shape == (10, 7, 3)
    np.testing.assert_array_equal(back, array)


def test_png_palette_keeps_indices(tmp_path):
    labels = RNG.integers(0, 4, (6, 6), dtype=np.uint8)
    img = Image.new("P", labels.shape[::-1])
    img.putdata(labels.ravel().tolist())
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    img.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_array(tmp_path / "pal.png"), labels)


def test_jpeg(tmp_path):
    array = np.full((16, 16, 3), 128, np.uint8)
    Image.fromarray(array).save(tmp_path / "a.jpg")
    back = read_array(tmp_path / "a.jpg")
    assert back.shape == (16, 16, 3)
    assert abs(int(back.mean()) - 128) <= 2


def test_npy(tmp_path):
    array = RNG.random((3, 5, 5))
    np.save(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), array)


# --------------------------------------------------------------------------- zarr


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
def test_zarr_plain_array(tmp_path, zarr_format):
    array = RNG.integers(0, 9, (4, 6, 5), dtype=np.uint16)
    kwargs = {"zarr_format": zarr_format} if ZARR3 else {}
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=array.shape, dtype=array.dtype, **kwargs)
    z[...] = array
    np.testing.assert_array_equal(read_array(tmp_path / "a.zarr"), array)


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
def test_zarr_group_with_dataset(tmp_path, zarr_format):
    group = _group(tmp_path / "g.zarr", zarr_format)
    image = RNG.integers(0, 255, (6, 5), dtype=np.uint8)
    labels = RNG.integers(0, 3, (6, 5), dtype=np.uint8)
    _put(group, "image", image)
    _put(group.require_group("labels"), "cells", labels)
    np.testing.assert_array_equal(read_array(tmp_path / "g.zarr", dataset="image"), image)
    np.testing.assert_array_equal(read_array(tmp_path / "g.zarr", dataset="labels/cells"), labels)
    _put(group, "other", image)
    with pytest.raises(DatasetError, match=r"holds several arrays \(image, other\)"):
        read_array(tmp_path / "g.zarr")
    with pytest.raises(DatasetError, match="Zarr group has no 'missing'; available: image, other, labels"):
        read_array(tmp_path / "g.zarr", dataset="missing")


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
def test_zarr_group_several_arrays_lists_names(tmp_path, zarr_format):
    group = _group(tmp_path / "g.zarr", zarr_format)
    for name in ("raw", "mask", "pred"):
        _put(group, name, np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError) as info:
        read_array(tmp_path / "g.zarr")
    message = str(info.value)
    assert "several arrays (mask, pred, raw)" in message
    assert "dataset=" in message


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
def test_zarr_group_single_array_is_unambiguous(tmp_path, zarr_format):
    group = _group(tmp_path / "one.zarr", zarr_format)
    _put(group, "only", np.ones((3, 3), np.uint8))
    assert read_array(tmp_path / "one.zarr").shape == (3, 3)


def _ome_attrs(version: str) -> dict:
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    datasets = [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]},
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 2.0]}]},
    ]
    return {"multiscales": [{"version": version, "axes": axes, "datasets": datasets}]}


@pytest.mark.parametrize("zarr_format", ZARR_FORMATS)
def test_ome_zarr_04_returns_full_resolution(tmp_path, zarr_format):
    group = _group(tmp_path / "img.ome.zarr", zarr_format)
    group.attrs.update(_ome_attrs("0.4"))
    level0 = RNG.integers(0, 255, (16, 16), dtype=np.uint8)
    _put(group, "0", level0)
    _put(group, "1", level0[::2, ::2].copy())
    back = read_array(tmp_path / "img.ome.zarr")
    assert back.shape == (16, 16)
    np.testing.assert_array_equal(back, level0)
    assert read_array(tmp_path / "img.ome.zarr", dataset="1").shape == (8, 8)


@pytest.mark.skipif(not ZARR3, reason="OME-Zarr 0.5 is Zarr v3")
def test_ome_zarr_05_attributes_under_ome(tmp_path):
    group = _group(tmp_path / "img.zarr", 3)
    group.attrs.update({"ome": {"version": "0.5", **_ome_attrs("0.5")}})
    level0 = RNG.integers(0, 255, (8, 8), dtype=np.uint8)
    _put(group, "0", level0)
    _put(group, "1", level0[::2, ::2].copy())
    np.testing.assert_array_equal(read_array(tmp_path / "img.zarr"), level0)


def test_bioformats2raw_layout_and_group_dataset(tmp_path):
    root = _group(tmp_path / "b2r.zarr", 2)
    root.attrs["bioformats2raw.layout"] = 3
    image = root.require_group("0")
    image.attrs.update(_ome_attrs("0.4"))
    level0 = RNG.integers(0, 255, (8, 8), dtype=np.uint8)
    _put(image, "0", level0)
    _put(image, "1", level0[::2, ::2].copy())
    np.testing.assert_array_equal(read_array(tmp_path / "b2r.zarr"), level0)
    np.testing.assert_array_equal(read_array(tmp_path / "b2r.zarr", dataset="0"), level0)


def test_multiscales_level0_metadata():
    assert multiscales_level0({}) is None
    assert multiscales_level0(_ome_attrs("0.4")) == "0"
    assert multiscales_level0({"ome": _ome_attrs("0.5")}) == "0"
    with pytest.raises(DatasetError, match=r"no datasets\[0\]\.path"):
        multiscales_level0({"multiscales": [{"datasets": []}]})


def test_broken_ome_metadata_names_path(tmp_path):
    group = _group(tmp_path / "bad.zarr", 2)
    group.attrs["multiscales"] = [{"version": "0.4"}]
    _put(group, "0", np.zeros((2, 2), np.uint8))
    with pytest.raises(DatasetError, match=r"bad\.zarr: OME-Zarr multiscales metadata has no datasets"):
        read_array(tmp_path / "bad.zarr")


def test_zarr_errors(tmp_path):
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(2, 2), dtype="u1")
    z[...] = 1
    with pytest.raises(DatasetError, match="is a Zarr array, not a group, so dataset 'x' does not apply"):
        read_array(tmp_path / "a.zarr", dataset="x")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(DatasetError, match=r"empty\.zarr: cannot open as Zarr"):
        read_array(tmp_path / "empty.zarr")
    (tmp_path / "file.zarr").write_bytes(b"PK")
    with pytest.raises(DatasetError, match="must be a folder"):
        read_array(tmp_path / "file.zarr")
    _group(tmp_path / "nothing.zarr", 2)
    with pytest.raises(DatasetError, match="holds no arrays"):
        read_array(tmp_path / "nothing.zarr")


# --------------------------------------------------------------------------- errors


def test_missing_file_names_path_and_formats(tmp_path):
    with pytest.raises(DatasetError) as info:
        read_array(tmp_path / "nope.tif")
    message = str(info.value)
    assert str(tmp_path / "nope.tif") in message
    assert "file not found" in message
    assert ACCEPTED_FORMATS in message
    with pytest.raises(DatasetError, match="file not found"):
        read_tiff(tmp_path / "nope.tif")


def test_unknown_extension(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(
        DatasetError, match=r"a\.bmp: unknown file extension '\.bmp'; accepted formats: \.tif"
    ):
        read_array(tmp_path / "a.bmp")


@pytest.mark.parametrize(("name", "what"), [("a.tif", "TIFF"), ("a.png", ".png image"), ("a.npy", ".npy")])
def test_unreadable_files(tmp_path, name, what):
    (tmp_path / name).write_bytes(b"this is not an image")
    with pytest.raises(DatasetError) as info:
        read_array(tmp_path / name)
    message = str(info.value)
    assert f"cannot read as {what}" in message
    assert name in message
    assert "\n" not in message


def test_pickled_npy_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="no pickled objects"):
        read_array(tmp_path / "obj.npy")


def _npy_with_header(path, header: str, data: bytes = b"") -> None:
    """A version 1.0 .npy file with a hand-written header dict."""
    text = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1") + data)


def test_damaged_npy_files_are_one_line_errors(tmp_path):
    """Each used to escape as EOFError, MemoryError or a numpy ValueError with a traceback."""
    np.save(tmp_path / "good.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    good = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "truncated.npy").write_bytes(good[:-5])
    (tmp_path / "cut_header.npy").write_bytes(good[:20])
    _npy_with_header(tmp_path / "huge.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000, 1000000), }", b"\0" * 16)
    _npy_with_header(tmp_path / "negative.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 5), }", b"\0" * 16)
    _npy_with_header(tmp_path / "nonsense.npy", "{'descr': 'zz9', 'fortran_order': False, 'shape': (2,), }")
    expected = {
        "empty.npy": "cannot read as .npy (ValueError: EOF: reading magic string",
        "truncated.npy": "header says shape (3, 4) of float32 (48 bytes) but the file holds 43 bytes of data",
        "cut_header.npy": "cannot read as .npy (ValueError: EOF: reading array header",
        "huge.npy": "(8,000,000,000,000,000,000 bytes) but the file holds 16 bytes",
        "negative.npy": "header says shape (-1, 5)",
        "nonsense.npy": "cannot read as .npy",
    }
    for name, fragment in expected.items():
        with pytest.raises(DatasetError) as info:
            read_array(tmp_path / name)
        message = str(info.value)
        assert fragment in message and name in message and "\n" not in message, message
    assert read_array(tmp_path / "good.npy").shape == (3, 4)


def test_plain_folder_and_dataset_on_tiff(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(DatasetError, match="is a folder but not a Zarr store"):
        read_array(tmp_path / "folder")
    write_tiff(tmp_path / "a.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(DatasetError, match="dataset 'x' given but this is not a Zarr store"):
        read_array(tmp_path / "a.tif", dataset="x")
