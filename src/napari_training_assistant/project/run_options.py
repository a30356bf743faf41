"""What a training run or a prediction is asked (CLI flags, widget fields, API arguments), validated.

Ranges come from the project's schemas (`TrainingSettings`) where a setting is stored there and are
declared here otherwise, once: the CLI builds its option checks from these fields too. A bad value
raises `InputError` naming its field; no torch here, so the CLI parser stays fast to build.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from numbers import Integral
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AfterValidator, Field, field_validator

from .devices import Device
from .schemas.project_config import PatchEdge, Seed, TrainingSettings
from .user_input import CheckedInputs, InputError, field_type

_START = re.compile(r"scratch|latest|best|(checkpoint|imported):\S+")


def _start_syntax(value: str) -> str:
    if not _START.fullmatch(value.strip()):
        raise ValueError("use scratch, latest, best, checkpoint:ID or imported:ID")
    return value.strip()


Start = Annotated[str, AfterValidator(_start_syntax)]
Epochs = field_type(TrainingSettings, "epochs")
BatchSize = field_type(TrainingSettings, "batch_size")  # int | None
LearningRate = field_type(TrainingSettings, "learning_rate")
Devices = field_type(TrainingSettings, "devices")
Precision = field_type(TrainingSettings, "precision")
TileEdge = Annotated[int, Ge(1)]  # voxels per axis of a prediction tile (clipped to the image)
NumNodes = Annotated[int, Ge(1), Le(1024)]
NumWorkers = Annotated[int, Ge(0), Le(256)]
SamplesPerEpoch = Annotated[int, Ge(1)]
Runtime = Literal["torch", "onnx"]  # what runs the network in a prediction (onnx: onnxruntime, the 'share' extra)


class TrainOptions(CheckedInputs):
    """`None` means: take the project's training settings, or let auto-configuration decide."""

    epochs: Epochs | None = None
    patch_size: list[PatchEdge] | None = Field(None, min_length=1, max_length=3, description="one value per spatial axis, or one for all")
    batch_size: BatchSize = None
    learning_rate: LearningRate | None = None
    start: Start | None = None  # scratch | latest | best | checkpoint:ID | imported:ID (default: the project's choice)
    device: Device | None = None  # auto | cpu | cuda | cuda:N | mps
    devices: Devices | None = None  # processes / GPUs per node (DDP when > 1)
    num_nodes: NumNodes = 1
    strategy: str | None = None  # default: ddp (subprocess launcher) for the CLI, ddp_spawn from Python
    resume: bool = False
    seed: Seed | None = None
    num_workers: NumWorkers = 0
    samples_per_epoch: SamplesPerEpoch | None = None
    precision: Precision | None = None
    run_benchmark: bool = True
    keep_architecture: bool = False  # True: auto-configuration never changes depth / width / levels

    def user_fixed(self) -> set[str]:
        return {name for name in ("epochs", "patch_size", "batch_size", "precision") if getattr(self, name) is not None}

    def patch_size_for(self, spatial_dims: str) -> list[int] | None:
        """The patch size per spatial axis of a '2d' / '3d' project (one value applies to every axis)."""
        return _per_axis(self.patch_size, spatial_dims, "patch_size", "the project")


class PredictOptions(CheckedInputs):
    """How an image is predicted tile by tile; `None` means: a default from the model."""

    tile_size: list[TileEdge] | None = Field(None, min_length=1, max_length=3, description="one value per spatial axis, or one for all")
    overlap: float = Field(0.5, ge=0, lt=1, description="share of a tile overlapping its neighbour")
    batch_size: BatchSize = None
    device: Device | None = None
    runtime: Runtime = Field("torch", description="PyTorch, or the network exported to ONNX and run by onnxruntime")

    @field_validator("tile_size", mode="before")
    @classmethod
    def _one_value(cls, value: Any) -> Any:
        return [value] if isinstance(value, Integral) and not isinstance(value, bool) else value

    def tile_for(self, spatial_dims: str, level_factors: Sequence[Sequence[int]] = ()) -> list[int] | None:
        """The tile per spatial axis; each at least what the model pools (the product of its levels' factors)."""
        tile = _per_axis(self.tile_size, spatial_dims, "tile_size", "the model")
        minimum = [math.prod(axis) for axis in zip(*level_factors, strict=True)]
        small = [(t, m) for t, m in zip(tile or (), minimum, strict=False) if t < m]
        if small:
            raise InputError(
                f"`tile_size` {tile} is smaller than the model pools ({list(minimum)} per axis): "
                f"use at least {max(m for _, m in small)}"
            )
        return tile


def _per_axis(values: list[int] | None, spatial_dims: str, field: str, owner: str) -> list[int] | None:
    dims = 3 if spatial_dims == "3d" else 2
    if values is None or len(values) == dims:
        return values
    if len(values) == 1:
        return values * dims
    raise InputError(f"`{field}` has {len(values)} values but {owner} is {spatial_dims}: give 1 or {dims}")


IN_MEMORY_VOXELS = 1 << 26  # above this many stored values an image is predicted block-wise (CLI and napari)

Probability = Annotated[float, Gt(0), Lt(1)]


class InstanceOptions(CheckedInputs):
    """Post-processing of an instance model's prediction (`predict.instances.InstanceSettings`); None: its default."""

    min_size: Annotated[int, Ge(1)] | None = None
    foreground_threshold: Probability | None = None
    boundary_threshold: Probability | None = None
    split_depth: Annotated[float, Ge(0), Lt(1000)] | None = Field(
        None, description="cores whose distance map dips deeper than this are split (0: never)"
    )


BlockEdge = Annotated[int, Ge(1)]
HaloEdge = Annotated[int, Ge(0)]
_ROI = re.compile(r"\s*-?\d*\s*:\s*-?\d*\s*(,\s*-?\d*\s*:\s*-?\d*\s*){1,2}")


def _roi_syntax(value: str) -> str:
    if not _ROI.fullmatch(value):
        raise ValueError("use start:stop per axis, e.g. 0:64,0:512,0:512 (z, y, x) or 0:1024,0:1024 (y, x)")
    return value.replace(" ", "")


class VolumeOptions(CheckedInputs):
    """How a volume of any size is predicted block by block on Dask (see `predict_volume`)."""

    block_shape: list[BlockEdge] | None = Field(None, min_length=1, max_length=3, description="one value per spatial axis, or one for all")
    halo: list[HaloEdge] | None = Field(None, min_length=1, max_length=3, description="one value per spatial axis, or one for all")
    roi: Annotated[str, AfterValidator(_roi_syntax)] | None = None
    probabilities: Literal["float16", "uint8", "float32"] | None = None
    labels: bool = True
    scale: str = Field("0", min_length=1, max_length=64, description="resolution level: index or OME dataset path")
    scheduler: str | None = Field(None, min_length=1, max_length=256, description="local, in-process or a scheduler address")
    workers: Annotated[int, Ge(1), Le(1024)] | None = None
    overwrite: bool = False

    @field_validator("block_shape", "halo", mode="before")
    @classmethod
    def _one_value(cls, value: Any) -> Any:
        return [value] if isinstance(value, Integral) and not isinstance(value, bool) else value

    def scale_level(self) -> int | str:
        """The scale as an index when it is a number, else a dataset path / precomputed key."""
        return int(self.scale) if self.scale.isdigit() else self.scale


class AssignOptions(CheckedInputs):
    """How synapse partners are assigned (`assign_synapses`)."""

    mode: Literal["max", "threshold", "dilate_nearest"] = "max"
    contact_radius: list[HaloEdge] | None = Field(None, min_length=3, max_length=3, description="voxels per axis around the synapse point")
    dilation: Annotated[int, Ge(0), Le(64)] = 0
    threshold: float = Field(0.5, gt=0, lt=1, description="probability a voxel must exceed (threshold mode)")
    chunk_points: Annotated[int, Ge(1), Le(1_000_000)] = 256
    scheduler: str | None = Field(None, min_length=1, max_length=256, description="local, in-process or a scheduler address")
    workers: Annotated[int, Ge(1), Le(1024)] | None = None
    device: Device | None = None
