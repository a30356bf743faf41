"""Zarr v2/v3 arrays and groups, and OME-Zarr multiscales (0.4: top-level 'multiscales'; 0.5: 'ome')."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from napari_training_assistant.project.errors import DatasetError

from ._base import SOURCE_AXES, ArrayVolume, AxisMap

# Size of one unit in nanometres (OME-NGFF uses UDUNITS-2 names).
_NM_PER_UNIT = {
    "picometer": 1e-3,
    "angstrom": 0.1,
    "nanometer": 1.0,
    "nm": 1.0,
    "micrometer": 1e3,
    "micron": 1e3,
    "um": 1e3,
    "µm": 1e3,
    "millimeter": 1e6,
    "mm": 1e6,
    "centimeter": 1e7,
    "meter": 1e9,
    "m": 1e9,
}


def _multiscales(attrs: Mapping[str, Any]) -> list[dict] | None:
    ome = attrs.get("ome")
    found = ome.get("multiscales") if isinstance(ome, Mapping) else None
    found = found or attrs.get("multiscales")
    return list(found) if isinstance(found, Sequence) and found else None


def _ome_axes(multiscale: Mapping[str, Any], ndim: int, path: str) -> tuple[str, list[str | None]]:
    """The stored axes as letters of 'tczyx' and each axis' unit (None when not given)."""
    raw = multiscale.get("axes")
    if raw is None:  # OME-NGFF 0.1/0.2: always 5D t, c, z, y, x
        raw = list(SOURCE_AXES)
    names = [str(a.get("name", "") if isinstance(a, Mapping) else a).lower() for a in raw]
    units = [a.get("unit") if isinstance(a, Mapping) else None for a in raw]
    if (
        any(n not in SOURCE_AXES or len(n) != 1 for n in names)
        or len(set(names)) != len(names)
        or len(names) != ndim
    ):
        raise DatasetError(
            f"{path}: OME axes {names} cannot be mapped to t, c, z, y, x for a {ndim}-D array: pass source_axes (e.g. 'czyx')"
        )
    return "".join(names), units


def _scale_of(transforms: Any, ndim: int) -> list[float] | None:
    for t in transforms or ():
        if isinstance(t, Mapping) and t.get("type") == "scale" and isinstance(t.get("scale"), Sequence):
            values = [float(v) for v in t["scale"]]
            return values if len(values) == ndim else None
    return None


def _ome_resolution(
    multiscale: Mapping[str, Any], entry: Mapping[str, Any], axes: str, units: list, ndim: int
):
    """Voxel size in nm per stored axis (None on non-spatial axes), or None when not fully known."""
    level = _scale_of(entry.get("coordinateTransformations"), ndim)
    if level is None:
        return None
    overall = _scale_of(multiscale.get("coordinateTransformations"), ndim) or [1.0] * ndim
    out: list[float | None] = []
    for letter, unit, a, b in zip(axes, units, level, overall, strict=True):
        if letter not in "zyx":
            out.append(None)
        elif unit is None or str(unit).lower() not in _NM_PER_UNIT:
            return None
        else:
            out.append(a * b * _NM_PER_UNIT[str(unit).lower()])
    return out


def _pick_level(datasets: list[Mapping[str, Any]], scale: int | str, path: str) -> Mapping[str, Any]:
    paths = [str(d.get("path")) for d in datasets]
    if isinstance(scale, str):
        if scale in paths:
            return datasets[paths.index(scale)]
    elif not isinstance(scale, bool) and 0 <= scale < len(datasets):
        return datasets[scale]
    raise DatasetError(
        f"{path}: no scale {scale!r}: choose an index 0..{len(datasets) - 1} or a path of {paths}"
    )


def _children(group: Any) -> list[str]:
    try:
        return sorted(group.keys())
    except Exception:  # a remote store that cannot list
        return []


def open_zarr(
    location: str,
    *,
    axis_order: str,
    source_axes: str | None,
    dataset: str | None,
    scale: int | str,
    channel: int | None,
) -> ArrayVolume:
    """A Zarr array, `dataset` of a group, or a level of an OME-Zarr multiscale image.

    OME axes name the stored axes unless `source_axes` overrides them; voxel sizes come from the
    'scale' coordinateTransformations (dataset's times the multiscale's) with their units.
    The OME 'translation' is not used: Zarr volumes have origin 0.
    """
    import zarr

    where = f"{location}/{dataset}" if dataset else location
    try:
        node = zarr.open(location, mode="r")
    except Exception as exc:
        raise DatasetError(
            f"{location}: cannot be opened as Zarr ({exc}): give a Zarr v2/v3 array or group folder"
        ) from exc
    if dataset:
        try:
            node = node[dataset.strip("/")]
        except (KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(
                f"{location}: has no dataset {dataset!r}: choose one of {_children(node) if isinstance(node, zarr.Group) else []}"
            ) from exc

    multiscale = entry = None
    if isinstance(node, zarr.Group):
        found = _multiscales(node.attrs)
        if not found:
            raise DatasetError(
                f"{where}: is a Zarr group without OME multiscales metadata: name the array with dataset= (one of {_children(node)})"
            )
        multiscale = found[0]
        entry = _pick_level(list(multiscale.get("datasets", [])), scale, where)
        try:
            array = node[str(entry["path"])]
        except KeyError as exc:
            raise DatasetError(
                f"{where}: OME dataset {entry['path']!r} is missing: fix the multiscales metadata"
            ) from exc
    else:
        array = node
        if scale != 0:
            raise DatasetError(
                f"{where}: is a single Zarr array: leave scale at 0 or open its OME-Zarr group with scale="
            )
        multiscale, entry = _parent_multiscale(location, dataset)
    if not isinstance(array, zarr.Array):
        raise DatasetError(f"{where}: is not a Zarr array: name an array with dataset=")

    ndim = len(array.shape)
    resolution = None
    fmt = "zarr"
    if multiscale is not None and entry is not None:
        fmt = "ome-zarr"
        ome_axes, units = _ome_axes(multiscale, ndim, where)
        resolution = _ome_resolution(multiscale, entry, ome_axes, units, ndim)
        if source_axes and source_axes.lower() != ome_axes:
            resolution = None  # the metadata's units no longer describe these axes
        source_axes = source_axes or ome_axes
    axes = AxisMap.build(source_axes or axis_order, axis_order, array.shape, channel=channel, path=where)
    return ArrayVolume(array, axes, path=where, resolution=resolution, format=fmt)


def _parent_multiscale(location: str, dataset: str | None) -> tuple[Mapping | None, Mapping | None]:
    """The OME multiscale entry (and its dataset entry) of the group holding the opened array, if any."""
    import zarr

    if dataset and "/" in dataset.strip("/"):
        parent_key, name = dataset.strip("/").rsplit("/", 1)
        parent_location = location
    elif dataset:
        parent_key, name, parent_location = "", dataset.strip("/"), location
    else:
        parent_key, parent_location, name = (
            "",
            os.path.dirname(location.rstrip("/")),
            os.path.basename(location.rstrip("/")),
        )
    if not parent_location:
        return None, None
    try:
        parent = zarr.open_group(parent_location, mode="r")
        if parent_key:
            parent = parent[parent_key]
        found = _multiscales(parent.attrs) if isinstance(parent, zarr.Group) else None
    except Exception:
        return None, None
    for multiscale in found or ():
        for entry in multiscale.get("datasets", []):
            if str(entry.get("path")).strip("/") == name:
                return multiscale, entry
    return None, None
