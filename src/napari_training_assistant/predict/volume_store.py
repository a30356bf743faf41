"""The output of a block-wise prediction: one Zarr folder holding OME-Zarr 0.4 images and a block record.

    OUT.zarr/
      .zattrs               {"nta_prediction": {"fingerprint": ..., "status": "running" | "complete", ...}}
      labels/               OME-Zarr multiscale label image (levels 0, 1, ...; axes [c,] [z,] y, x)
      probabilities/        OME-Zarr multiscale image (axes c, [z,] y, x), float16, uint8 (0..255) or float32
      nta_blocks            uint8 array, one element (and one chunk) per block: 1 predicted, 2 skipped,
                            3 relabelled (instance models: final ids written by the stitching pass)
      nta_stitch/           instance models only (see `instance_stitching`): objects (ids per block) and,
                            per axis a, front_a / beyond_a: the labels of a thin slab on each side of
                            every block face, one face after the other along a

A block writes its part of every level, then its `nta_blocks` element: a block whose element is set
is complete, so a run that is killed and started again skips it. Levels are nearest-neighbour
halvings (every other voxel), for viewing. Zarr v2 files (OME-Zarr 0.4) for the widest reader
support (napari-ome-zarr, Neuroglancer, Fiji/MoBIE, tensorstore).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..project.errors import DatasetError
from .block_plan import BlockPlan

ATTRIBUTE = "nta_prediction"
BLOCKS = "nta_blocks"
STITCH = "nta_stitch"
PREDICTED, SKIPPED, RELABELLED = 1, 2, 3
PROBABILITY_DTYPES = ("float16", "uint8", "float32")


class OutputInUse(DatasetError):
    """The output folder holds something else than this prediction (refused without `overwrite`)."""


@dataclass(frozen=True)
class OutputLayout:
    """What is written: labels (with a channel axis for multilabel models) and/or probabilities."""

    labels: bool
    labels_channels: int  # 0: no channel axis (binary, multiclass)
    labels_dtype: str
    probabilities: str | None  # "float16" | "uint8" | None
    channels: int  # model output channels
    spatial_axes: str  # "yx" or "zyx"
    slabs: tuple[int, ...] = ()  # instance models: slab width per axis at block faces (0: one block on that axis)

    @property
    def images(self) -> dict[str, tuple[int, str]]:
        """name -> (channels, dtype) of every image written (channels 0: none)."""
        out: dict[str, tuple[int, str]] = {}
        if self.labels:
            out["labels"] = (self.labels_channels, self.labels_dtype)
        if self.probabilities:
            out["probabilities"] = (self.channels, self.probabilities)
        return out


def fingerprint_json(fingerprint: Mapping[str, Any]) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


class VolumeStore:
    """An open output folder (see the module docstring)."""

    def __init__(self, path: Path, plan: BlockPlan, layout: OutputLayout, group: Any) -> None:
        self.path, self.plan, self.layout, self._group = path, plan, layout, group
        self._arrays = {
            (name, level): group[f"{name}/{level}"] for name in layout.images for level in range(plan.levels)
        }
        self._blocks = group[BLOCKS]

    # ---- create / resume ----------------------------------------------------------------------

    @classmethod
    def create_or_resume(
        cls,
        path: Path,
        plan: BlockPlan,
        layout: OutputLayout,
        fingerprint: Mapping[str, Any],
        *,
        scale: Sequence[float] | None,
        translation: Sequence[float] | None,
        unit: str | None,
        overwrite: bool,
    ) -> tuple[VolumeStore, dict[str, Any]]:
        """The store for this prediction and its attributes: a new one, or the half-done one of an
        earlier run with the same fingerprint. Anything else at `path` is refused unless `overwrite`."""
        import zarr

        path = Path(path)
        existing = read_attributes(path)
        if existing is not None and fingerprint_json(existing.get("fingerprint", {})) == fingerprint_json(fingerprint) and not overwrite:
            group = zarr.open_group(str(path), mode="r+", zarr_format=2)
            return cls(path, plan, layout, group), existing
        if path.exists() and not overwrite:
            what = "a different prediction" if existing is not None else "other data"
            raise OutputInUse(
                f"{path}: already holds {what}: choose another output, or pass --overwrite (overwrite=True) to replace it"
            )
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        for name, (channels, dtype) in layout.images.items():
            _create_image(group, name, plan, channels, dtype, layout.spatial_axes, scale, translation, unit, label=name == "labels")
        if layout.slabs:
            _create_stitch_arrays(group, plan, layout.slabs)
        group.create_array(BLOCKS, shape=(plan.count,), chunks=(1,), dtype="uint8", fill_value=0)
        attributes = {"fingerprint": dict(fingerprint), "status": "running", "blocks": plan.count}
        group.attrs[ATTRIBUTE] = attributes
        return cls(path, plan, layout, group), attributes

    @classmethod
    def open(cls, path: Path, plan: BlockPlan, layout: OutputLayout) -> VolumeStore:
        import zarr

        return cls(Path(path), plan, layout, zarr.open_group(str(path), mode="r+", zarr_format=2))

    def read_attributes(self) -> dict[str, Any]:
        return dict(self._group.attrs.get(ATTRIBUTE, {}))

    def update_attributes(self, **values: Any) -> None:
        attributes = dict(self._group.attrs.get(ATTRIBUTE, {}))
        attributes.update(values)
        self._group.attrs[ATTRIBUTE] = attributes

    # ---- blocks -------------------------------------------------------------------------------

    def block_states(self) -> np.ndarray:
        """0 (to do), PREDICTED or SKIPPED per block."""
        return np.asarray(self._blocks[:])

    def write_block(self, index: int, probabilities: np.ndarray, labels: np.ndarray | None, faces: Any = None) -> None:
        """Write the block's probabilities (C, *block) and labels into every pyramid level (and, for an
        instance model, its `instance_stitching.BlockInstances` face slabs and object count first)."""
        if faces is not None:
            self._write_faces(index, faces)
        for name, data in (("labels", labels), ("probabilities", self._probability_values(probabilities))):
            if name not in self.layout.images or data is None:
                continue
            self._write_levels(name, index, data)
        self._blocks[index] = PREDICTED

    def _write_levels(self, name: str, index: int, data: np.ndarray) -> None:
        for level in range(self.plan.levels):
            step = 2**level
            part = data[(Ellipsis, *(slice(None, None, step),) * len(self.plan.shape))]
            self._arrays[name, level][(Ellipsis, *self.plan.level_slices(index, level))] = part

    # ---- instance stitching (see `instance_stitching`) ----------------------------------------

    def _write_faces(self, index: int, faces: Any) -> None:
        for kind, slabs in (("front", faces.front), ("beyond", faces.beyond)):
            for axis, slab in slabs.items():
                self._group[f"{STITCH}/{kind}_{axis}"][self._face_slices(index, axis, kind)] = slab
        self._group[f"{STITCH}/objects"][index] = faces.objects

    def _face_slices(self, index: int, axis: int, kind: str) -> tuple[slice, ...]:
        """Where block `index`'s slab at its low face (front) or beyond its high face lies in the face array."""
        width = self.layout.slabs[axis]
        face = self.plan.position(index)[axis] - (1 if kind == "front" else 0)
        out = list(self.plan.out_slices(index))
        out[axis] = slice(face * width, (face + 1) * width)
        return tuple(out)

    def face_slabs(self, index: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels of block `index` beyond its high face on `axis`, the next block's labels in the same slab),
        both in block-local ids."""
        beyond = self._group[f"{STITCH}/beyond_{axis}"][self._face_slices(index, axis, "beyond")]
        front = self._group[f"{STITCH}/front_{axis}"][self._face_slices(index, axis, "beyond")]
        return np.asarray(beyond), np.asarray(front)

    def block_objects(self) -> np.ndarray:
        """Objects (local ids 1..n) per block; 0 for blocks skipped or not yet predicted."""
        return np.asarray(self._group[f"{STITCH}/objects"][:]).astype(np.int64)

    def relabel_block(self, index: int, lookup: np.ndarray) -> None:
        """Replace the block's local ids by `lookup[id]` in every level, then mark it RELABELLED."""
        local = np.asarray(self._arrays["labels", 0][self.plan.out_slices(index)])
        self._write_levels("labels", index, lookup[local].astype(self.layout.labels_dtype, copy=False))
        self._blocks[index] = RELABELLED

    def mark_skipped(self, index: int) -> None:
        self._blocks[index] = SKIPPED

    def _probability_values(self, probabilities: np.ndarray) -> np.ndarray | None:
        kind = self.layout.probabilities
        if kind is None:
            return None
        if kind == "uint8":
            return np.rint(np.clip(probabilities, 0.0, 1.0) * 255.0).astype(np.uint8)
        return probabilities.astype(kind)


def read_attributes(path: Path) -> dict[str, Any] | None:
    """The prediction attributes of an existing output folder, or None."""
    attrs_file = path / ".zattrs"
    if not attrs_file.is_file():
        return None
    try:
        attributes = json.loads(attrs_file.read_text()).get(ATTRIBUTE)
    except (OSError, ValueError, AttributeError):
        return None
    return attributes if isinstance(attributes, dict) else None


def _create_stitch_arrays(group: Any, plan: BlockPlan, slabs: Sequence[int]) -> None:
    stitch = group.create_group(STITCH)
    stitch.create_array("objects", shape=(plan.count,), chunks=(1,), dtype="uint32", fill_value=0)
    for axis, width in enumerate(slabs):
        if not width:
            continue
        shape = [*plan.shape]
        shape[axis] = (plan.grid[axis] - 1) * width
        chunks = [*plan.chunk]
        chunks[axis] = width
        for kind in ("front", "beyond"):
            stitch.create_array(f"{kind}_{axis}", shape=tuple(shape), chunks=tuple(chunks), dtype="uint32", fill_value=0)


def _create_image(
    group: Any,
    name: str,
    plan: BlockPlan,
    channels: int,
    dtype: str,
    spatial_axes: str,
    scale: Sequence[float] | None,
    translation: Sequence[float] | None,
    unit: str | None,
    *,
    label: bool,
) -> None:
    image = group.create_group(name)
    lead = (channels,) if channels else ()
    datasets = []
    for level in range(plan.levels):
        chunk = plan.level_chunk(level)
        image.create_array(
            str(level),
            shape=(*lead, *plan.level_shape(level)),
            chunks=(*((1,) if channels else ()), *chunk),
            dtype=dtype,
            fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        voxel = [float(s) * 2**level for s in (scale or (1.0,) * len(spatial_axes))]
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [*((1.0,) if channels else ()), *voxel]}]
        if translation is not None and any(translation):
            shift = [float(t) for t in translation]  # level voxel i is level-0 voxel i * 2**level
            transforms.append({"type": "translation", "translation": [*((0.0,) if channels else ()), *shift]})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    axes = ([{"name": "c", "type": "channel"}] if channels else []) + [
        {"name": a, "type": "space", **({"unit": unit} if unit else {})} for a in spatial_axes
    ]
    image.attrs["multiscales"] = [{"version": "0.4", "name": name, "axes": axes, "datasets": datasets}]
    if label and not channels:
        image.attrs["image-label"] = {"version": "0.4"}
