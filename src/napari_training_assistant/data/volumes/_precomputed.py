"""Neuroglancer precomputed volumes through TensorStore, local or remote (gs://, s3://, http(s)://)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from napari_training_assistant.project.errors import DatasetError

from ._base import ArrayVolume, AxisMap

REMOTE_SCHEMES = ("gs", "s3", "http", "https")


def kvstore_spec(location: str) -> dict[str, Any]:
    """TensorStore kvstore spec of a folder: a local path or file:// URL -> 'file'; gs://bucket/path ->
    'gcs'; s3://bucket/path -> 's3'; http(s)://host/path -> 'http'. The path always ends in '/'."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # 1 letter: a Windows drive
        local = parts.path if scheme == "file" else location
        return {"driver": "file", "path": os.path.abspath(local).rstrip("/") + "/"}
    path = parts.path.strip("/")
    path = path + "/" if path else ""
    if scheme == "gs":
        return {"driver": "gcs", "bucket": parts.netloc, "path": path}
    if scheme == "s3":
        return {"driver": "s3", "bucket": parts.netloc, "path": path}
    if scheme in ("http", "https"):
        return {"driver": "http", "base_url": f"{scheme}://{parts.netloc}", "path": "/" + path}
    raise DatasetError(
        f"{location}: URL scheme {scheme!r} is not supported: use gs://, s3://, http:// or https://"
    )


INFO_TIMEOUT_S = 30.0  # seconds to wait for a volume's 'info' file


def read_info(location: str, kvstore: dict[str, Any]) -> dict[str, Any]:
    import tensorstore as ts

    try:
        store = ts.KvStore.open(kvstore).result(timeout=INFO_TIMEOUT_S)
        found = store.read("info").result(timeout=INFO_TIMEOUT_S)
    except ValueError as exc:  # bad spec, unreachable host, missing credentials, ...
        raise DatasetError(
            f"{location}: cannot read the precomputed 'info' file ({exc}): check the path, URL and credentials"
        ) from exc
    except TimeoutError as exc:  # TensorStore retries an unreachable host for minutes
        raise DatasetError(
            f"{location}: no answer within {INFO_TIMEOUT_S:g} s when reading the precomputed 'info' file: "
            "check the URL, the network and that the server is up"
        ) from exc
    if found.state != "value":
        raise DatasetError(f"{location}: has no precomputed 'info' file: give the folder that holds 'info'")
    try:
        info = json.loads(bytes(found.value))
    except ValueError as exc:
        raise DatasetError(
            f"{location}: the precomputed 'info' file is not valid JSON ({exc}): fix or re-create it"
        ) from exc
    if not isinstance(info, dict) or not isinstance(info.get("scales"), list) or not info["scales"]:
        raise DatasetError(f"{location}: the precomputed 'info' file lists no scales: fix or re-create it")
    return info


def _scale_index(info: dict[str, Any], scale: int | str, location: str) -> int:
    keys = [str(s.get("key")) for s in info["scales"]]
    if isinstance(scale, str) and scale in keys:
        return keys.index(scale)
    if isinstance(scale, int) and not isinstance(scale, bool) and 0 <= scale < len(keys):
        return scale
    raise DatasetError(
        f"{location}: no scale {scale!r}: choose an index 0..{len(keys) - 1} or a key of {keys}"
    )


class TensorStoreVolume(ArrayVolume):
    """An ArrayVolume over a (0-based, translated) TensorStore; `origin` keeps the absolute offset."""

    def _fetch(self, index: tuple[int | slice, ...]) -> np.ndarray:
        return self._array[index].read().result()


def open_precomputed(
    location: str, *, axis_order: str, source_axes: str | None, scale: int | str, channel: int | None
) -> TensorStoreVolume:
    """One scale of a precomputed volume. Stored axes are x, y, z, channel; `origin` is the scale's
    `voxel_offset` and `resolution` its voxel size in nm, both in `axis_order`."""
    import tensorstore as ts

    kvstore = kvstore_spec(location)
    try:
        ts.KvStore.Spec(kvstore)
    except ValueError as exc:
        raise DatasetError(
            f"{location}: is not a valid storage location ({exc}): check the bucket name and path"
        ) from exc
    info = read_info(location, kvstore)
    index = _scale_index(info, scale, location)
    spec = {"driver": "neuroglancer_precomputed", "kvstore": kvstore, "scale_index": index}
    try:
        store = ts.open(spec, read=True, open=True).result()
    except ValueError as exc:
        raise DatasetError(
            f"{location}: cannot open precomputed scale {index} ({exc}): check the 'info' file"
        ) from exc
    labels = ["c" if label == "channel" else label for label in store.domain.labels]
    stored_axes = "".join(labels) if all(len(label) == 1 for label in labels) else "xyzc"
    origin = list(store.domain.inclusive_min)
    resolution = info["scales"][index].get("resolution")
    per_axis_nm = None
    if isinstance(resolution, list) and len(resolution) == 3:
        per_axis_nm = [float(resolution["xyz".index(a)]) if a in "xyz" else None for a in stored_axes]
    if source_axes and source_axes.lower() != stored_axes:
        per_axis_nm = None  # the metadata's x, y, z no longer describe these axes
    axes = AxisMap.build(source_axes or stored_axes, axis_order, store.shape, channel=channel, path=location)
    return TensorStoreVolume(
        store[ts.d[:].translate_to[0]],
        axes,
        path=location,
        origin=origin,
        resolution=per_axis_nm,
        format="precomputed",
        dtype=store.dtype.numpy_dtype,
    )
