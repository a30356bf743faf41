"""The one prepared run: everything a run needs, resolved before anything is written. What differs between
pair training and point windows lives in its `data` part (`plan.PairData` | `point_run.PointData`), a tagged
union on `kind`; the module, trainer, loaders, records and checkpoint are built the same way for both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler

from ..project import TrainingProject
from ..project.schemas import AutoConfigDecision
from .events import CancelToken, Listener
from .module import SegmentationModule
from .options import TrainOptions
from .starting import StartingPoint
from .trainer_factory import build_trainer


class RunData(Protocol):
    """The data part of a run: pairs of the project, or point windows of a spec."""

    kind: str  # "pairs" | "point_windows"
    train_dataset: Dataset
    val_dataset: Dataset
    val_note: str

    def train_sampler(self) -> Sampler | None: ...

    def settings_record(self, run: PreparedRun) -> dict[str, Any]: ...

    def checkpoint_metadata(self) -> dict[str, Any]: ...

    def registration_fields(self) -> dict[str, Any]: ...

    def dataset_hold(self) -> tuple[str | None, list[str]]: ...

    def pair_versions(self) -> dict[str, tuple[str, str, str]]: ...

    def point_counts(self) -> dict[str, Any] | None: ...

    def summary(self, run: PreparedRun) -> str: ...


@dataclass
class PreparedRun:
    project: TrainingProject
    options: TrainOptions
    run_id: str
    data: RunData
    architecture: dict[str, Any]
    architecture_changed: bool
    start: StartingPoint
    accelerator: str
    device_indices: list[int] | None
    module: SegmentationModule
    epochs: int
    batch_size: int
    precision: str
    num_workers: int
    planned_devices: int
    decisions: list[AutoConfigDecision] | None = None  # None: the run plans nothing (point windows)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.data.kind

    @property
    def devices(self) -> int:
        return len(self.device_indices) if self.device_indices else (self.options.devices or self.planned_devices)

    @property
    def val_note(self) -> str:
        return self.data.val_note

    @property
    def train_dataset(self) -> Dataset:
        return self.data.train_dataset

    @property
    def val_dataset(self) -> Dataset:
        return self.data.val_dataset

    @property
    def train_loader(self) -> DataLoader:
        sampler = self.data.train_sampler()
        dataset = self.train_dataset
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=False,
            drop_last=len(dataset) >= 2 * self.batch_size,
        )

    @property
    def val_loader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=self.batch_size, shuffle=False, num_workers=0)

    def build_trainer(self, *, listener: Listener, cancel: CancelToken, launcher: str) -> L.Trainer:
        return build_trainer(self, listener=listener, cancel=cancel, launcher=launcher)

    def settings_record(self) -> dict[str, Any]:
        return self.data.settings_record(self)

    def checkpoint_metadata(self) -> dict[str, Any]:
        """What prediction needs to treat images as training did, and the loss the run used."""
        return {**self.data.checkpoint_metadata(), "loss": self.module.loss_fn.config()}

    def registration_fields(self) -> dict[str, Any]:
        return self.data.registration_fields()

    def dataset_hold(self) -> tuple[str | None, list[str]]:
        return self.data.dataset_hold()

    def pair_versions(self) -> dict[str, tuple[str, str, str]]:
        return self.data.pair_versions()

    def point_counts(self) -> dict[str, Any] | None:
        return self.data.point_counts()

    def summary(self) -> str:
        return self.data.summary(self)

    def record_decisions(self, project: TrainingProject) -> None:
        """Write the plan's decisions (when the run planned) and an architecture it changed into the project."""
        if self.decisions is not None:
            decisions = self.decisions

            def change(config) -> None:
                config.auto_configuration_decisions = decisions

            project.update_config(change)
        if self.architecture_changed:
            project.set_architecture(self.architecture)
