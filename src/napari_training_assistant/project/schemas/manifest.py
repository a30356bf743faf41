"""`dataset/manifest.json`: every accepted image/mask pair, auditable."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import ProjectPath, RecordId, VersionedModel

Split = Literal["train", "val", "benchmark"]
PairSource = Literal["manual", "sam3_preview", "imported", "corrected_prediction"]
MaskModeName = Literal["binary", "target-class", "multiclass", "label-map", "multilabel", "instance"]


class PairRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    pair_id: RecordId
    image_path: ProjectPath = Field(description="relative to the project folder")
    mask_path: ProjectPath
    image_layer: str | None = None
    mask_layer: str | None = None
    source_files: dict[str, str] = Field(default_factory=dict, description="original file of image/mask")
    spatial_dims: Literal["2d", "3d"]
    image_shape: list[int] = Field(description="saved image shape, channel axis first when present")
    mask_shape: list[int]
    image_channels: int | None = Field(None, description="None: no channel axis")
    image_dtype: str
    mask_dtype: str
    slice_index: int | None = Field(None, description="slice of a stack this 2D pair was taken from")
    mask_mode: MaskModeName
    source_labels: list[int]
    saved_labels: list[int]
    target_class_name: str | None = None
    label_transform: str
    source: PairSource = "manual"
    prompts: list[dict[str, Any]] = Field(default_factory=list, description="SAM3 prompts that made the mask")
    correction: dict[str, Any] | None = Field(
        None, description="corrected_prediction: the prediction and checkpoint it came from and what the user changed"
    )
    suggestion: dict[str, Any] | None = Field(
        None, description="`nta suggest` had ranked this image (rank, scores, checkpoint) before it was added"
    )
    created_at: datetime
    image_sha256: str
    mask_sha256: str
    split: Split
    split_assigned_by: Literal["auto", "user"] = "auto"
    used_by_checkpoints: list[RecordId] = Field(default_factory=list)


class RemovedPair(BaseModel):
    """Kept so that checkpoint history naming a removed pair stays readable."""

    model_config = ConfigDict(extra="forbid")

    pair_id: RecordId
    removed_at: datetime
    image_sha256: str
    mask_sha256: str
    split: Split
    used_by_checkpoints: list[RecordId] = Field(default_factory=list)


class DatasetManifest(VersionedModel):
    pairs: list[PairRecord] = Field(default_factory=list)
    removed_pairs: list[RemovedPair] = Field(default_factory=list)
    next_pair_number: int = Field(1, ge=1)

    MIGRATIONS: ClassVar = {0: lambda d: {k: v for k, v in d.items() if k in ("pairs", "removed_pairs", "next_pair_number")}}

    def get(self, pair_id: str) -> PairRecord | None:
        return next((p for p in self.pairs if p.pair_id == pair_id), None)
