"""Read image/mask arrays from common formats; write TIFFs atomically; hash arrays.

Readers: TIFF (tifffile), PNG/JPEG (Pillow; RGB stays H x W x 3), NPY, Zarr (plain array,
group + `dataset` key, OME-Zarr multiscales: full resolution). Every failure is a
`DatasetError` naming the path and the accepted formats.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError
from .storage import atomic_output
from .user_input import echo

ACCEPTED_FORMATS = (
    ".tif/.tiff, .png, .jpg/.jpeg, .npy, Zarr (.zarr array, group with a dataset key, or OME-Zarr)"
)
_TIFF = (".tif", ".tiff")
_PILLOW = (".png", ".jpg", ".jpeg")
_ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
READABLE_SUFFIXES = (*_TIFF, *_PILLOW, ".npy", ".zarr")
"""File name suffixes `read_array` reads (a folder with Zarr metadata is read too)."""


def _fail(path: Path, problem: str, fix: str = "") -> DatasetError:
    fix = fix or f"accepted formats: {ACCEPTED_FORMATS}"
    return DatasetError(f"{path}: {problem}; {fix}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- reading


def read_array(path: str | os.PathLike[str], *, dataset: str | None = None) -> np.ndarray:
    """Read one array from a TIFF, PNG/JPEG, NPY or Zarr/OME-Zarr file or folder.

    `dataset` names the array inside a Zarr group (for OME-Zarr the full-resolution level
    is used when it is not given).
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "file not found", f"check the path (accepted formats: {ACCEPTED_FORMATS})")
    if is_zarr(path):
        return _read_zarr(path, dataset)
    if dataset is not None:
        raise _fail(
            path, f"dataset {dataset!r} given but this is not a Zarr store", "drop the dataset argument"
        )
    if path.is_dir():
        raise _fail(path, "is a folder but not a Zarr store (no .zarray, .zgroup or zarr.json)")
    suffix = path.suffix.lower()
    if suffix in _TIFF:
        return read_tiff(path)
    if suffix in _PILLOW:
        return _read_pillow(path)
    if suffix == ".npy":
        return _read_npy(path)
    raise _fail(path, f"unknown file extension {path.suffix!r}")


def read_tiff(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a TIFF (first series, all pages) as one array."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file not found", f"check the path (accepted formats: {ACCEPTED_FORMATS})")
    try:
        return np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types on corrupt input
        raise _fail(path, f"cannot read as TIFF ({_reason(exc)})", "re-export it as TIFF") from exc


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return _pillow_to_array(img)
    except Image.DecompressionBombError as exc:
        raise _fail(path, "too many pixels for Pillow's safety limit", "convert it to TIFF") from exc
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise _fail(path, f"cannot read as {path.suffix} image ({_reason(exc)})") from exc


def _pillow_to_array(img: Any) -> np.ndarray:
    """Pixels as stored: gray H x W (8/16-bit), palette indices, RGB H x W x 3, RGBA H x W x 4."""
    if img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    arr = np.asarray(img)
    if img.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= np.iinfo(np.uint16).max:
        arr = arr.astype(np.uint16)  # 16-bit PNGs may open as 32-bit "I"
    return np.array(arr)


_NPY_FIX = "save it with numpy.save (no pickled objects)"


def _read_npy(path: Path) -> np.ndarray:
    """Check the header against the file before allocating anything: empty, truncated, object and
    gigantic-shape files are refused in one line."""
    shape, dtype, data_bytes = _npy_header(path)
    if dtype.hasobject:
        raise _fail(path, f"holds pickled Python objects (dtype {dtype}), not numbers", _NPY_FIX)
    needed = math.prod(shape) * dtype.itemsize
    if min(shape, default=0) < 0 or needed > data_bytes:
        raise _fail(
            path,
            f"its header says shape {echo(shape)} of {dtype} ({needed:,} bytes) but the file holds {data_bytes:,} "
            "bytes of data (truncated or damaged)",
            _NPY_FIX,
        )
    try:
        return np.load(path, allow_pickle=False)
    except MemoryError as exc:
        raise _fail(path, f"too large to load into memory ({needed / 2**30:.1f} GiB)", "crop it or save it as Zarr") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise _fail(path, f"cannot read as .npy ({_reason(exc)})", _NPY_FIX) from exc


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes after the header) of a .npy file, read from its header only."""
    from numpy.lib import format as npy

    try:
        with path.open("rb") as handle:
            version = npy.read_magic(handle)
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = reader(handle)
            return tuple(shape), dtype, os.fstat(handle.fileno()).st_size - handle.tell()
    except (OSError, ValueError, TypeError, EOFError, SyntaxError, OverflowError) as exc:
        raise _fail(path, f"cannot read as .npy ({_reason(exc)})", _NPY_FIX) from exc


# --------------------------------------------------------------------------- zarr


def is_zarr(path: Path) -> bool:
    """A .zarr path, or a folder with Zarr metadata."""
    if path.suffix.lower() == ".zarr":
        return True
    return path.is_dir() and any((path / marker).exists() for marker in _ZARR_MARKERS)


def _is_group(node: Any) -> bool:
    return hasattr(node, "array_keys")


def _read_zarr(path: Path, dataset: str | None) -> np.ndarray:
    import zarr

    if not path.is_dir():
        raise _fail(path, "a .zarr path must be a folder (zipped Zarr is not supported)", "unzip it first")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises various types for missing/corrupt metadata
        raise _fail(
            path, f"cannot open as Zarr ({_reason(exc)})", "check it is a Zarr array or group"
        ) from exc
    if not _is_group(node):
        if dataset:
            raise _fail(
                path,
                f"is a Zarr array, not a group, so dataset {dataset!r} does not apply",
                "drop the dataset argument",
            )
        return _load(path, node)
    return _load(path, _pick_array(path, node, dataset))


def _load(path: Path, node: Any) -> np.ndarray:
    try:
        return np.asarray(node[...])
    except Exception as exc:
        raise _fail(
            path, f"cannot read Zarr array data ({_reason(exc)})", "check the store is complete"
        ) from exc


def _pick_array(path: Path, group: Any, dataset: str | None) -> Any:
    if dataset:
        node = _child(path, group, dataset)
        return node if not _is_group(node) else _pick_array(path / dataset, node, None)
    try:
        level0 = multiscales_level0(group.attrs)
    except DatasetError as exc:
        raise _fail(path, str(exc).split(":")[0], "fix the metadata or pass dataset=...") from exc
    if level0 is not None:
        return _child(path, group, level0)
    if "bioformats2raw.layout" in group.attrs and "0" in _keys(group, "group_keys"):
        return _pick_array(path / "0", group["0"], None)
    names = _keys(group, "array_keys")
    if len(names) == 1:
        return group[names[0]]
    if not names:
        raise _fail(
            path, "Zarr group holds no arrays and no OME-Zarr multiscales", "point to the array folder"
        )
    raise _fail(
        path,
        f"Zarr group holds several arrays ({', '.join(names)}) and no OME-Zarr multiscales",
        "name the one to read with dataset=... (--image-dataset/--mask-dataset)",
    )


def _keys(group: Any, method: str) -> list[str]:
    return sorted(str(k) for k in getattr(group, method)())


def _child(path: Path, group: Any, name: str) -> Any:
    try:
        return group[name]
    except (KeyError, FileNotFoundError) as exc:
        names = _keys(group, "array_keys") + _keys(group, "group_keys")
        raise _fail(
            path, f"Zarr group has no {name!r}", f"available: {', '.join(names) or 'nothing'}"
        ) from exc


def multiscales_level0(attrs: Mapping[str, Any]) -> str | None:
    """Path of the full-resolution dataset from OME-Zarr metadata (0.4 top-level or 0.5 under "ome")."""
    ome = attrs.get("ome")
    multiscales = attrs.get("multiscales")
    if multiscales is None and isinstance(ome, Mapping):
        multiscales = ome.get("multiscales")
    if multiscales is None:
        return None
    try:
        return str(multiscales[0]["datasets"][0]["path"])
    except (LookupError, TypeError) as exc:
        raise DatasetError(
            "OME-Zarr multiscales metadata has no datasets[0].path: fix the metadata or pass dataset=..."
        ) from exc


# --------------------------------------------------------------------------- writing and hashing


def write_tiff(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write `array` as a zlib-compressed TIFF atomically (temp file, fsync, rename); return the path.

    H x W x 3/4 uint8/uint16 arrays are stored as RGB(A); everything else as gray pages.
    The shape round-trips through `read_tiff`.
    """
    import tifffile

    path = Path(path)
    array = np.ascontiguousarray(array)
    with atomic_output(path) as fh:
        tifffile.imwrite(fh, array, photometric=_photometric(array), compression="zlib")
    return path


def _photometric(array: np.ndarray) -> str:
    is_rgb = array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype in (np.uint8, np.uint16)
    return "rgb" if is_rgb else "minisblack"


def array_sha256(array: np.ndarray) -> str:
    """sha256 of dtype, shape and C-order bytes (little-endian): equal arrays hash equal in any file."""
    array = np.asarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()
