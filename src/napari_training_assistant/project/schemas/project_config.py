"""`project_config.json`: identity, training settings, auto-configuration decisions, UI state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..devices import DEVICE_HELP, Device
from .base import VersionedModel, drop_unknown_keys


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AugmentationSettings(_Strict):
    flips: bool = True
    rot90: bool = True
    intensity_jitter: bool = True
    elastic: bool = False


PatchEdge = Annotated[int, Field(ge=1, le=4096)]
"""Voxels per axis of a training patch."""
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""A random seed (the range numpy and Lightning accept)."""


class TrainingSettings(_Strict):
    """Core training parameters; `None` means "let auto-configuration decide"."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    epochs: int = Field(20, ge=1, le=100_000)
    batch_size: int | None = Field(None, ge=1, le=4096)
    patch_size: list[PatchEdge] | None = Field(
        None, min_length=1, max_length=3, description="spatial patch size, e.g. [256, 256] or [32, 128, 128]"
    )
    learning_rate: float = Field(1e-3, gt=0, lt=10)
    weight_decay: float = Field(1e-4, ge=0, lt=1)
    normalization: Literal["percentile", "minmax", "zscore", "none"] = "percentile"
    foreground_oversampling: float = Field(1 / 3, ge=0, le=1)
    augmentation: AugmentationSettings = Field(default_factory=AugmentationSettings)
    val_fraction: float = Field(0.2, ge=0, lt=1, description="share of non-benchmark pairs used for validation")
    device: Device = Field("auto", description=DEVICE_HELP)
    devices: int = Field(1, ge=1, le=1024)
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = "auto"
    seed: Seed = 0
    training_mode: Literal["pairs", "point_windows"] = Field("pairs", description="the mode of the last run started (Train tab, nta train, nta train-points)")
    resume_every_s: float = Field(
        60.0, ge=1, le=86_400, allow_inf_nan=False, description="seconds of training between saves of the resume state (also saved every epoch)"
    )


class AutoConfigDecision(_Strict):
    setting: str
    value: Any
    reason: str
    source: Literal["auto", "user"] = "auto"


class UiState(_Strict):
    """What the napari widget restores on reopen."""

    selected_layers: dict[str, str] = Field(default_factory=dict, description="role -> napari layer name")
    train_tab: dict[str, str] = Field(default_factory=dict, description="the Train tab's last settings (train.* keys)")
    active_tab: str | None = None


class ProjectConfig(VersionedModel):
    kind: Literal["napari-training-assistant-project"] = "napari-training-assistant-project"
    project_name: str = Field(min_length=1, max_length=200)
    created_at: datetime
    created_with: str = Field("", description="tool version that created the project")
    notes: str = ""
    class_names: list[str] = Field(
        default_factory=lambda: ["background", "foreground"],
        description="class id -> name; index 0 is background",
    )
    benchmark_every: int = Field(5, ge=2, le=1000, description="auto split: one pair in N is benchmark")
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    auto_configuration_decisions: list[AutoConfigDecision] = Field(default_factory=list)
    ui: UiState = Field(default_factory=UiState)

    SCHEMA_VERSION: ClassVar[int] = 2
    MIGRATIONS: ClassVar = {0: lambda d: _from_v0(d), 1: lambda d: _from_v1(d)}


def _from_v0(data: dict[str, Any]) -> dict[str, Any]:
    """napari-training-assistant 0.2.0 wrote `name` and flat UI state without versions."""
    data = dict(data)
    if "project_name" not in data and "name" in data:
        data["project_name"] = data.pop("name")
    layers = {k: v for k, v in data.items() if k.endswith("_layer") and isinstance(v, str)}
    data = drop_unknown_keys(data, ProjectConfig)
    if layers:
        data["ui"] = {"selected_layers": {k.removesuffix("_layer"): v for k, v in layers.items()}}
    data.setdefault("created_at", datetime.now().astimezone().isoformat())
    data.setdefault("project_name", "project")
    return data


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the Train tab's settings (train.* keys) among the selected layers: they move to
    `ui.train_tab`."""
    ui = data.get("ui")
    if not isinstance(ui, dict) or not isinstance(ui.get("selected_layers"), dict):
        return data  # nothing to move (validation reports a malformed file)
    layers = dict(ui["selected_layers"])
    moved = {key: layers.pop(key) for key in list(layers) if key.startswith("train.")}
    return {**data, "ui": {**ui, "selected_layers": layers, "train_tab": {**moved, **(ui.get("train_tab") or {})}}}
