"""The VolumeSource interface, the mapping from stored axes to `axis_order`, and ArrayVolume."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_training_assistant.data.geometry import Box
from napari_training_assistant.project.errors import DatasetError

SPATIAL_AXES = "zyx"
SOURCE_AXES = "tczyx"


def check_axis_order(axis_order: str) -> str:
    """`axis_order` in lower case: each of z, y, x at most once (e.g. 'zyx', 'xyz', 'yx')."""
    order = str(axis_order).lower()
    if not order or len(set(order)) != len(order) or any(a not in SPATIAL_AXES for a in order):
        raise DatasetError(
            f"axis_order {axis_order!r} is not valid: use each of z, y, x at most once, e.g. 'zyx'"
        )
    return order


@dataclass(frozen=True)
class AxisMap:
    """How the axes of a stored array (`source_axes`, e.g. 'czyx') map to `axis_order` (e.g. 'zyx').

    Stored axes that are not in `axis_order` are held at one index: the chosen channel for 'c', 0 for
    any other axis (which must have size 1: 't', or 'z' when `axis_order` is 'yx').
    """

    source_axes: str
    axis_order: str
    shape: tuple[int, ...]  # spatial shape in axis_order
    fixed: tuple[tuple[int, int], ...]  # (stored dim, index) pairs

    @classmethod
    def build(
        cls,
        source_axes: str,
        axis_order: str,
        stored_shape: Sequence[int],
        *,
        channel: int | None,
        path: str,
        hint: str = "",
    ) -> AxisMap:
        axes = str(source_axes).lower()
        stored_shape = tuple(int(n) for n in stored_shape)
        hint = f" ({hint})" if hint else ""
        if len(set(axes)) != len(axes) or any(a not in SOURCE_AXES for a in axes):
            raise DatasetError(
                f"{path}: source_axes {source_axes!r} is not valid: use each of t, c, z, y, x at most once, e.g. 'czyx'"
            )
        if len(axes) != len(stored_shape):
            raise DatasetError(
                f"{path}: has {len(stored_shape)} dimensions (shape {stored_shape}) but source axes {axes!r} name "
                f"{len(axes)}{hint}: pass source_axes with one letter of t, c, z, y, x per stored dimension"
            )
        missing = [a for a in axis_order if a not in axes]
        if missing:
            raise DatasetError(
                f"{path}: stored axes {axes!r} lack {''.join(missing)!r} of axis_order {axis_order!r}{hint}: "
                "fix source_axes or axis_order"
            )
        if channel is not None and "c" not in axes:
            raise DatasetError(
                f"{path}: channel={channel} was given but the data has no channel axis (axes {axes!r}): leave channel unset"
            )
        fixed = []
        for dim, (letter, size) in enumerate(zip(axes, stored_shape, strict=True)):
            if letter in axis_order:
                continue
            if letter == "c" and channel is not None:
                if not 0 <= int(channel) < size:
                    raise DatasetError(
                        f"{path}: channel {channel} is out of range: the data has {size} channels (0..{size - 1})"
                    )
                fixed.append((dim, int(channel)))
            elif size == 1:
                fixed.append((dim, 0))
            elif letter == "c":
                raise DatasetError(f"{path}: has {size} channels: choose one with channel=0..{size - 1}")
            else:
                raise DatasetError(
                    f"{path}: axis {letter!r} has size {size} but is not in axis_order {axis_order!r}: "
                    "only a size-1 axis can be dropped; extract one index first"
                )
        shape = tuple(stored_shape[axes.index(a)] for a in axis_order)
        return cls(axes, axis_order, shape, tuple(fixed))

    def index(self, box: Box) -> tuple[int | slice, ...]:
        """The index into the stored array for a box in `axis_order`, local (0-based) coordinates."""
        fixed = dict(self.fixed)
        out: list[int | slice] = []
        for dim, letter in enumerate(self.source_axes):
            if dim in fixed:
                out.append(fixed[dim])
            else:
                i = self.axis_order.index(letter)
                out.append(slice(box.start[i], box.stop[i]))
        return tuple(out)

    def arrange(self, data: np.ndarray) -> np.ndarray:
        """Transpose what `index` selected (spatial axes in stored order) into `axis_order`."""
        kept = [a for dim, a in enumerate(self.source_axes) if dim not in dict(self.fixed)]
        return np.transpose(data, [kept.index(a) for a in self.axis_order])

    def to_axis_order(self, per_stored_axis: Sequence[Any]) -> tuple[Any, ...]:
        """Pick the entries of a per-stored-axis sequence (offsets, voxel sizes) in `axis_order`."""
        return tuple(per_stored_axis[self.source_axes.index(a)] for a in self.axis_order)


class VolumeSource(ABC):
    """A spatial volume read box by box, in `axis_order` (e.g. z, y, x).

    Box coordinates are ABSOLUTE voxel coordinates at the opened scale, as in Neuroglancer: voxel
    `origin` (a precomputed volume's `voxel_offset`; 0 for arrays, TIFF and Zarr) is the first stored
    voxel, so the stored data covers `bounds` = [origin, origin + shape). `read` zero-fills the part
    of a box outside `bounds` and reads only the stored chunks the box intersects.
    """

    format: str = "volume"
    _reopen: Any = None  # (callable, args) that opens this volume again: set by open_volume for paths

    def __init__(
        self,
        *,
        path: str,
        shape: Sequence[int],
        dtype: Any,
        axis_order: str,
        origin: Sequence[int] | None = None,
        resolution: Sequence[float] | None = None,
    ) -> None:
        self.path = str(path)
        self.axis_order = axis_order
        self.shape: tuple[int, ...] = tuple(int(n) for n in shape)
        dtype = np.dtype(dtype)
        self.dtype: np.dtype = dtype.newbyteorder("=") if dtype.byteorder not in "=|" else dtype
        self.origin: tuple[int, ...] = (
            tuple(int(o) for o in origin) if origin is not None else (0,) * len(self.shape)
        )
        self.resolution: tuple[float, ...] | None = (
            tuple(float(r) for r in resolution) if resolution is not None else None
        )

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def bounds(self) -> Box:
        return Box(self.origin, tuple(o + n for o, n in zip(self.origin, self.shape, strict=True)))

    def read(self, box: Box) -> np.ndarray:
        """The voxels of `box` (absolute coordinates), shape `box.shape`, zeros outside `bounds`."""
        if box.ndim != self.ndim:
            raise ValueError(
                f"box {box} has {box.ndim} axes but {self.path} has {self.ndim} ({self.axis_order})"
            )
        inside = box.intersect(self.bounds)
        if inside is None:
            return np.zeros(box.shape, self.dtype)
        local = Box(
            tuple(a - o for a, o in zip(inside.start, self.origin, strict=True)),
            tuple(b - o for b, o in zip(inside.stop, self.origin, strict=True)),
        )
        data = np.asarray(self._read_local(local), dtype=self.dtype)
        if inside == box:  # never hand out a view of the caller's (or a memory-mapped) array
            owned = data.flags.owndata and data.flags.c_contiguous and data.flags.writeable
            return data if owned else np.array(data, order="C")
        out = np.zeros(box.shape, self.dtype)
        out[inside.slices(box.start)] = data
        return out

    @abstractmethod
    def _read_local(self, box: Box) -> np.ndarray:
        """The voxels of a box inside [0, shape) (origin subtracted), in `axis_order`."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A volume opened from a path pickles as that path and its options (for DataLoader workers):
        unpickling opens it again; in-memory volumes pickle their data."""
        return self._reopen if self._reopen is not None else super().__reduce_ex__(protocol)

    def close(self) -> None:  # noqa: B027 - a default no-op, deliberately not abstract
        """Release open files (a no-op for in-memory data)."""

    def __enter__(self) -> VolumeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, format={self.format!r}, axis_order={self.axis_order!r}, "
            f"shape={self.shape}, dtype={self.dtype}, origin={self.origin}, resolution={self.resolution})"
        )


class ArrayVolume(VolumeSource):
    """Any sliceable array (numpy, memmap, zarr, dask, ...) read lazily one box at a time.

    `origin` and `resolution` are per stored axis (they are reordered to `axis_order` here).
    """

    format = "array"

    def __init__(
        self,
        array: Any,
        axes: AxisMap,
        *,
        path: str,
        origin: Sequence[int] | None = None,
        resolution: Sequence[float] | None = None,
        format: str | None = None,
        dtype: Any = None,
        closers: Sequence[Any] = (),
    ) -> None:
        super().__init__(
            path=path,
            shape=axes.shape,
            dtype=array.dtype if dtype is None else dtype,
            axis_order=axes.axis_order,
            origin=axes.to_axis_order(origin) if origin is not None else None,
            resolution=axes.to_axis_order(resolution) if resolution is not None else None,
        )
        if format is not None:
            self.format = format
        self._array = array
        self._axes = axes
        self._closers = list(closers)

    @property
    def channel_count(self) -> int:
        """Entries of the stored channel axis 'c' (1 without one)."""
        axes = self._axes.source_axes
        return int(self._array.shape[axes.index("c")]) if "c" in axes else 1

    def _fetch(self, index: tuple[int | slice, ...]) -> np.ndarray:
        return np.asarray(self._array[index])

    def _read_local(self, box: Box) -> np.ndarray:
        return self._axes.arrange(self._fetch(self._axes.index(box)))

    def close(self) -> None:
        while self._closers:
            self._closers.pop().close()
