"""`ProjectFiles`: what the project's managers (dataset, checkpoints, history, imported weights,
predictions) need of their project. `TrainingProject` provides it; the managers depend on this
protocol, never on `TrainingProject`, so imports point one way (`training_project` -> managers)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar

from .layout import ProjectLayout
from .schemas import ArchitectureConfig, DatasetManifest, ProjectConfig, VersionedModel
from .storage import ProjectLock

M = TypeVar("M", bound=VersionedModel)


class ProjectFiles(Protocol):
    """A project folder's root, layout, lock and validated reads (files are read fresh on each access)."""

    root: Path
    layout: ProjectLayout
    locked: ProjectLock

    def read(self, path: Path, schema: type[M]) -> M: ...

    @property
    def config(self) -> ProjectConfig: ...

    @property
    def architecture(self) -> ArchitectureConfig: ...

    @property
    def manifest(self) -> DatasetManifest: ...
