"""Where every file of a Training Project Folder lives (the seed's layout, verbatim)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .paths import check_id, check_relative_path, confine, relative_to_root
from .schemas import (
    ArchitectureConfig,
    CheckpointRegistry,
    DatasetManifest,
    ModelRegistry,
    PredictionRegistry,
    ProjectConfig,
    Sam3Config,
    StartingWeightsConfig,
    TrainingRunHistory,
    VersionedModel,
)

BENCHMARK_COLUMNS: tuple[str, ...] = (
    "checkpoint_id",
    "parent_id",
    "timestamp",
    "n_images",
    "dice",
    "iou",
    "dice_per_class",
    "iou_per_class",
    "delta_dice",
    "delta_iou",
    "benchmark_sha256",
    # object matching at IoU 0.5 and averaged over 0.5:0.95 (binary models: connected components)
    "instance_accuracy_50",
    "instance_accuracy_mean",
    "instance_f1_50",
    "instance_f1_mean",
    "instance_panoptic_quality_50",
    "instance_panoptic_quality_mean",
)
ASSIGNMENT_COLUMNS: tuple[str, ...] = (
    "kind",
    "n_synapses",
    "assign_mode",
    "pre_accuracy",
    "post_accuracy",
    "both_accuracy",
    "baseline_both_accuracy",
)
"""Columns of assignment rows (`kind` "assignment", `nta assign-synapses --evaluate`); segmentation rows leave them
empty and read without them."""
BENCHMARK_COLUMNS = BENCHMARK_COLUMNS + ASSIGNMENT_COLUMNS


@dataclass(frozen=True)
class ProjectLayout:
    root: Path

    @property
    def project_config(self) -> Path:
        return self.root / "project_config.json"

    @property
    def architecture_config(self) -> Path:
        return self.root / "architecture" / "architecture_config.json"

    @property
    def sam3_config(self) -> Path:
        return self.root / "sam3" / "sam3_config.json"

    @property
    def images_dir(self) -> Path:
        return self.root / "dataset" / "images"

    @property
    def masks_dir(self) -> Path:
        return self.root / "dataset" / "masks"

    @property
    def manifest(self) -> Path:
        return self.root / "dataset" / "manifest.json"

    @property
    def imported_dir(self) -> Path:
        return self.root / "models" / "imported"

    @property
    def model_registry(self) -> Path:
        return self.root / "models" / "model_registry.json"

    @property
    def starting_weights(self) -> Path:
        return self.root / "models" / "starting_weights_config.json"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def checkpoint_registry(self) -> Path:
        return self.checkpoints_dir / "checkpoints.json"

    @property
    def latest_checkpoint(self) -> Path:
        return self.checkpoints_dir / "latest.pt"

    @property
    def predictions_dir(self) -> Path:
        return self.root / "predictions"

    @property
    def prediction_registry(self) -> Path:
        return self.predictions_dir / "predictions.json"

    @property
    def history_dir(self) -> Path:
        return self.root / "history"

    @property
    def training_runs(self) -> Path:
        return self.history_dir / "training_runs.json"

    @property
    def benchmark_history(self) -> Path:
        return self.history_dir / "benchmark_history.csv"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def training_log(self) -> Path:
        return self.logs_dir / "training.log"

    @property
    def lock_file(self) -> Path:
        return self.root / ".nta.lock"

    def folders(self) -> list[Path]:
        return [
            self.architecture_config.parent,
            self.sam3_config.parent,
            self.images_dir,
            self.masks_dir,
            self.imported_dir,
            self.checkpoints_dir,
            self.predictions_dir,
            self.history_dir,
            self.logs_dir,
        ]

    def json_files(self) -> dict[Path, type[VersionedModel]]:
        """Every JSON file with the schema that validates it."""
        return {
            self.project_config: ProjectConfig,
            self.architecture_config: ArchitectureConfig,
            self.sam3_config: Sam3Config,
            self.manifest: DatasetManifest,
            self.model_registry: ModelRegistry,
            self.starting_weights: StartingWeightsConfig,
            self.checkpoint_registry: CheckpointRegistry,
            self.training_runs: TrainingRunHistory,
            self.prediction_registry: PredictionRegistry,
        }

    def run_dir(self, run_id: str) -> Path:
        """Per-run artefacts: metrics.csv, curves.png, last.ckpt (for --resume), montages."""
        try:
            check_id(run_id, "run id")
        except ValueError as exc:
            from .paths import PathOutsideProjectError

            raise PathOutsideProjectError(f"{exc}; history/training_runs.json was edited by hand: run `nta doctor {self.root}`") from None
        return confine(self.root, f"history/runs/{run_id}")

    def relative(self, path: Path) -> str:
        """The project-relative POSIX path a record stores for `path` (which must be inside)."""
        return relative_to_root(self.root, path)

    def absolute(self, relative: str) -> Path:
        """The path on disk of a record's relative path: refused unless inside the project (symlinks
        resolved), so no record can make the tool read, write or delete a file elsewhere."""
        return confine(self.root, relative)

    def removable(self, relative: str) -> Path:
        """The entry a record names, for deleting it: its folder must be inside the project (symlinks
        resolved); the entry itself may be a link, and deleting a link never touches its target."""
        parent, _, name = relative.rpartition("/")
        folder = confine(self.root, parent) if parent else self.root
        confine(self.root, relative) if not (folder / name).is_symlink() else check_relative_path(self.root, relative)
        return folder / name
