"""TIFF volumes (a multi-page stack: z = page), read page/strip/tile-wise, never whole."""

from __future__ import annotations

from pathlib import Path

from napari_training_assistant.project.errors import DatasetError

from ._base import ArrayVolume, AxisMap


def open_tiff(
    path: Path, *, axis_order: str, source_axes: str | None, scale: int | str, channel: int | None
) -> ArrayVolume:
    """Series 0 of a TIFF file; `scale` picks a pyramid level. Uncompressed contiguous data is
    memory-mapped; anything else goes through tifffile's Zarr view, which decodes only the
    pages, strips or tiles a box touches."""
    import tifffile
    import zarr

    name = str(path)
    if isinstance(scale, bool) or not isinstance(scale, int):
        raise DatasetError(
            f"{name}: scale {scale!r} must be a pyramid level number (0 = full resolution) for a TIFF"
        )
    try:
        tif = tifffile.TiffFile(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"{name}: cannot be read as TIFF ({exc}): check that the file is a complete TIFF"
        ) from exc
    try:
        series = tif.series[0]
        if not 0 <= scale < len(series.levels):
            raise DatasetError(
                f"{name}: has {len(series.levels)} pyramid level(s): choose scale 0..{len(series.levels) - 1}"
            )
        level = series.levels[scale]
        axes = AxisMap.build(
            source_axes or axis_order,
            axis_order,
            level.shape,
            channel=channel,
            path=name,
            hint=f"TIFF axes {series.axes!r}",
        )
        closers: list = [tif]
        if level.dataoffset is not None:  # uncompressed and contiguous: a read-only memory map
            try:
                array = tifffile.memmap(path, series=0, level=scale, mode="r")
            except ValueError:
                array = None
        else:
            array = None
        if array is None:
            store = tif.aszarr(series=0, level=scale)
            closers.append(store)
            array = zarr.open_array(store, mode="r")
    except BaseException:
        tif.close()
        raise
    return ArrayVolume(array, axes, path=name, format="tiff", closers=closers)
