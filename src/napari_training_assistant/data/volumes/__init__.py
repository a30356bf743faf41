"""Large 3D volumes read region by region: in-memory arrays, TIFF, Zarr / OME-Zarr, Neuroglancer precomputed.

`open_volume` gives a `VolumeSource` whose `read(box)` returns the voxels of a `Box` in `axis_order`
(e.g. z, y, x), zero-filled where the box leaves the volume, reading only the chunks it touches.

Coordinates: boxes are ABSOLUTE voxel coordinates of the opened scale, as in Neuroglancer. A
precomputed volume's data starts at its `voxel_offset` (`source.origin`, reordered to `axis_order`);
arrays, TIFF and Zarr start at 0. `source.shape` is the spatial shape and `source.resolution` the
voxel size in nm (both in `axis_order`; resolution None when the format does not say).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from napari_training_assistant.data.geometry import Box
from napari_training_assistant.project.errors import DatasetError

from ._base import ArrayVolume, AxisMap, VolumeSource, check_axis_order
from ._precomputed import REMOTE_SCHEMES, kvstore_spec, open_precomputed
from ._tiff import open_tiff
from ._zarr import open_zarr

__all__ = [
    "ACCEPTED_FORMATS",
    "ArrayVolume",
    "AxisMap",
    "VolumeSource",
    "check_resolution",
    "detect_format",
    "estimate_bytes",
    "kvstore_spec",
    "open_volume",
]

ACCEPTED_FORMATS = (
    "accepted: numpy/dask arrays, .tif/.tiff files, Zarr v2/v3 arrays or groups (with dataset=) incl. OME-Zarr, "
    "Neuroglancer precomputed folders or URLs (precomputed://, gs://, s3://, http(s)://)"
)
_TIFF_SUFFIXES = (".tif", ".tiff")
_ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def detect_format(location: str) -> tuple[str, str]:
    """('tiff' | 'zarr' | 'precomputed', location without any 'precomputed://' / 'zarr://' prefix)."""
    text = str(location)
    lowered = text.lower()
    for prefix, kind in (
        ("precomputed://", "precomputed"),
        ("zarr://", "zarr"),
        ("zarr2://", "zarr"),
        ("zarr3://", "zarr"),
    ):
        if lowered.startswith(prefix):
            return kind, text[len(prefix) :]
    scheme = urlsplit(text).scheme.lower()
    if scheme == "file":
        return detect_format(urlsplit(text).path)
    if scheme in REMOTE_SCHEMES:
        tail = lowered.rstrip("/")
        if tail.endswith(".zarr") or ".zarr/" in tail:
            return "zarr", text
        if tail.endswith(_TIFF_SUFFIXES):
            raise DatasetError(
                f"{text}: remote TIFF files are not read in place: download the file or convert it to Zarr"
            )
        return "precomputed", text
    if len(scheme) > 1:
        raise DatasetError(f"{text}: unknown URL scheme {scheme!r}: {ACCEPTED_FORMATS}")
    path = Path(text)
    if not path.exists():
        raise DatasetError(f"{text}: no such file or folder: check the path ({ACCEPTED_FORMATS})")
    if path.is_file():
        if path.suffix.lower() in _TIFF_SUFFIXES:
            return "tiff", text
        if path.name == "info":
            return "precomputed", str(path.parent)
    elif (path / "info").is_file():
        return "precomputed", text
    elif path.suffix.lower() == ".zarr" or any((path / m).is_file() for m in _ZARR_MARKERS):
        return "zarr", text
    raise DatasetError(f"{text}: unknown volume format: {ACCEPTED_FORMATS}")


def _array_volume(
    data: Any, *, axis_order: str, source_axes: str | None, scale: int | str, channel: int | None
) -> ArrayVolume:
    levels = None
    if (
        isinstance(data, Sequence)
        and not isinstance(data, str | bytes)
        and len(data)
        and all(getattr(d, "ndim", 0) >= 1 for d in data)
    ):
        levels = list(data)  # a multiscale list, as napari multiscale layers hold
    if levels is not None:
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < len(levels):
            raise DatasetError(
                f"<array>: no scale {scale!r}: the multiscale data has levels 0..{len(levels) - 1}"
            )
        data = levels[scale]
    elif scale != 0:
        raise DatasetError(
            f"<array>: scale {scale!r} needs multiscale data (a list of arrays): leave scale at 0"
        )
    if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
        try:
            data = np.asarray(data)
        except (TypeError, ValueError) as exc:
            raise DatasetError(
                f"<{type(data).__name__}>: cannot be used as an array ({exc}): {ACCEPTED_FORMATS}"
            ) from exc
    shape = tuple(int(n) for n in data.shape)
    name = f"<{type(data).__name__} {shape}>"
    axes = AxisMap.build(source_axes or axis_order, axis_order, shape, channel=channel, path=name)
    return ArrayVolume(data, axes, path=name, format="array")


def open_volume(
    source: Any,
    *,
    axis_order: str = "zyx",
    source_axes: str | None = None,
    dataset: str | None = None,
    scale: int | str = 0,
    channel: int | None = None,
) -> VolumeSource:
    """Open a volume for box-wise reading in `axis_order`.

    source: an array-like (numpy, dask, zarr, napari layer data incl. a multiscale list), a path to a
        .tif/.tiff file, a Zarr array/group folder (v2 or v3, OME-Zarr 0.4/0.5), or a Neuroglancer
        precomputed folder/URL (with an `info` file; 'precomputed://' prefix optional; gs://, s3://,
        http(s):// go to TensorStore's gcs, s3 and http kvstore drivers).
    source_axes: the stored axis order as letters of 't', 'c', 'z', 'y', 'x' (e.g. 'xyz', 'czyx').
        Default: `axis_order` for arrays, TIFF and plain Zarr; OME axes for OME-Zarr; 'xyzc' for
        precomputed. A 'c' axis is reduced to `channel` (or must have size 1); any other axis not in
        `axis_order` (e.g. 't') must have size 1.
    dataset: the array (or OME multiscale group) inside a Zarr group.
    scale: the resolution level: an index (0 = full resolution), an OME dataset path or a precomputed
        scale key (e.g. '8_8_40').
    """
    axis_order = check_axis_order(axis_order)
    if isinstance(source, VolumeSource):
        if source.axis_order != axis_order:
            raise DatasetError(
                f"{source.path}: is open in axis_order {source.axis_order!r}, not {axis_order!r}: open it again"
            )
        return source
    if not isinstance(source, str | os.PathLike):
        if dataset is not None:
            raise DatasetError(
                "<array>: dataset= names an array inside a Zarr group: leave it unset for in-memory data"
            )
        return _array_volume(
            source, axis_order=axis_order, source_axes=source_axes, scale=scale, channel=channel
        )
    kind, location = detect_format(os.fspath(source))
    if dataset is not None and kind != "zarr":
        raise DatasetError(
            f"{location}: dataset= applies only to Zarr groups: leave it unset for {kind} data"
        )
    options = {"axis_order": axis_order, "source_axes": source_axes, "scale": scale, "channel": channel}
    if kind == "zarr":
        volume: VolumeSource = open_zarr(location, dataset=dataset, **options)
    elif kind == "tiff":
        volume = open_tiff(Path(location), **options)
    else:
        volume = open_precomputed(location, **options)
    volume._reopen = (_reopen, (os.fspath(source), {**options, "dataset": dataset}))
    return volume


def _reopen(source: str, options: dict[str, Any]) -> VolumeSource:
    return open_volume(source, **options)


def estimate_bytes(box: Box | Sequence[int], dtype: Any) -> int:
    """Bytes of a box (or a shape) of `dtype` held in memory."""
    shape = box.shape if isinstance(box, Box) else tuple(box)
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def check_resolution(source: VolumeSource, expected: Sequence[float], rtol: float = 1e-3) -> bool:
    """Compare the source's voxel size (nm, `axis_order`) with the spec's `expected` one.

    Returns True when they agree, False when the source does not know its voxel size; raises
    DatasetError naming both when they differ.
    """
    expected = tuple(float(v) for v in expected)
    if len(expected) != source.ndim:
        raise DatasetError(
            f"{source.path}: resolution {list(expected)} has {len(expected)} values but axis_order "
            f"{source.axis_order!r} has {source.ndim}: give one voxel size per axis"
        )
    if source.resolution is None:
        return False
    if not np.allclose(source.resolution, expected, rtol=rtol, atol=0.0):
        found = ", ".join(f"{a}={v:g}" for a, v in zip(source.axis_order, source.resolution, strict=True))
        wanted = ", ".join(f"{a}={v:g}" for a, v in zip(source.axis_order, expected, strict=True))
        raise DatasetError(
            f"{source.path}: voxel size is {found} nm but the spec says {wanted} nm: "
            "fix the spec's resolution or open another scale"
        )
    return True
