"""Checkpoint registry, imported-model registry, starting-weight choice and training-run history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .base import ProjectPath, RecordId, VersionedModel

CheckpointStatus = Literal["completed", "cancelled", "failed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CheckpointRecord(_Strict):
    checkpoint_id: RecordId
    parent_id: RecordId | None = None
    status: CheckpointStatus = "completed"
    training_mode: str = "pairs"
    dataset_pair_ids: list[RecordId] = Field(default_factory=list)
    image_count: int = 0
    patch_count: int = 0
    split: dict[str, list[str]] = Field(default_factory=dict, description="split name -> pair ids")
    metrics: dict[str, Any] = Field(default_factory=dict, description="losses, dice, iou, ...")
    timestamp: datetime
    path: ProjectPath = Field(description="relative to the project folder")
    file_sha256: str
    architecture: dict[str, Any]
    starting_weights: dict[str, Any] = Field(default_factory=dict)
    architecture_summary: dict[str, Any] = Field(default_factory=dict)
    manifest_sha256: str | None = Field(None, description="sha256 of the dataset content the run saw (pairs, hashes, splits)")
    run_id: RecordId | None = None
    settings: dict[str, Any] = Field(default_factory=dict, description="resolved training settings of the run")


class CheckpointRegistry(VersionedModel):
    checkpoints: list[CheckpointRecord] = Field(default_factory=list)
    latest: RecordId | None = Field(None, description="checkpoint id that latest.pt holds")
    next_number: int = Field(1, ge=1)

    MIGRATIONS: ClassVar = {0: lambda d: {"checkpoints": [], "latest": None, "next_number": 1}}

    def get(self, checkpoint_id: str) -> CheckpointRecord | None:
        return next((c for c in self.checkpoints if c.checkpoint_id == checkpoint_id), None)


class ImportedModel(_Strict):
    model_id: RecordId
    name: str
    source_filename: str
    path: ProjectPath = Field(description="relative to the project folder")
    sha256: str
    format: Literal["pt", "safetensors"]
    architecture: dict[str, Any]
    imported_at: datetime
    tensor_count: int
    key_prefix_stripped: str = ""
    package: dict[str, Any] | None = Field(
        None, description="the bioimage.io package the weights came from: name, id, version, authors, sha256, lineage"
    )


class ModelRegistry(VersionedModel):
    models: list[ImportedModel] = Field(default_factory=list)
    next_number: int = Field(1, ge=1)

    def get(self, model_id: str) -> ImportedModel | None:
        return next((m for m in self.models if m.model_id == model_id), None)


class StartingWeightsConfig(VersionedModel):
    choice: Literal["scratch", "latest", "checkpoint", "imported"] = "scratch"
    checkpoint_id: RecordId | None = None
    imported_model_id: RecordId | None = None
    chosen_at: datetime | None = Field(
        None, description="when it was chosen (nta start, the Train tab, Continue training from this); None: never"
    )

    @model_validator(mode="after")
    def _target_named(self) -> StartingWeightsConfig:
        if self.choice == "checkpoint" and not self.checkpoint_id:
            raise ValueError("choice 'checkpoint' needs checkpoint_id")
        if self.choice == "imported" and not self.imported_model_id:
            raise ValueError("choice 'imported' needs imported_model_id")
        return self

    def describe(self) -> str:
        if self.choice == "checkpoint":
            return f"checkpoint:{self.checkpoint_id}"
        if self.choice == "imported":
            return f"imported:{self.imported_model_id}"
        return self.choice


RunStatus = Literal["running", "completed", "cancelled", "failed", "interrupted"]


class RunHeartbeat(_Strict):
    """The process that runs a training run, and when it last said so."""

    pid: int = Field(ge=0)
    host: str
    boot_id: str = ""
    updated_at: datetime


class TrainingRun(_Strict):
    run_id: RecordId
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_s: float | None = None
    checkpoint_id: RecordId | None = None
    parent_id: RecordId | None = None
    reason: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    heartbeat: RunHeartbeat | None = None
    manifest_sha256: str | None = Field(None, description="dataset content when the run started (pairs, hashes, splits)")
    held_pairs: list[RecordId] = Field(default_factory=list, description="pairs the run trains or validates on")


class TrainingRunHistory(VersionedModel):
    runs: list[TrainingRun] = Field(default_factory=list)


class PredictionRecord(_Strict):
    prediction_id: RecordId
    path: ProjectPath = Field(description="relative to the project folder: the label image")
    probabilities_path: ProjectPath | None = None
    source: str = Field(description="image file or napari layer the prediction was made from")
    checkpoint_id: RecordId
    created_at: datetime
    shape: list[int]
    parameters: dict[str, Any] = Field(default_factory=dict, description="tile size, overlap, device, threshold, ...")
    duration_s: float | None = None


class PredictionRegistry(VersionedModel):
    predictions: list[PredictionRecord] = Field(default_factory=list)
    next_number: int = Field(1, ge=1)
