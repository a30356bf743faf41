"""`TrainingProject`: create or open a Training Project Folder and read or update its files."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .._version import __version__
from .checkpoints import CheckpointStore
from .clock import now
from .dataset import Dataset
from .errors import NotAProjectError, ProjectError
from .history import History, write_benchmark_header
from .imported import ImportedModels
from .layout import ProjectLayout
from .paths import confine
from .predictions import Predictions
from .schemas import (
    ArchitectureConfig,
    DatasetManifest,
    ProjectConfig,
    Sam3Config,
    StartingWeightsConfig,
    VersionedModel,
    default_architecture,
)
from .storage import ProjectLock, atomic_write_bytes, read_model, write_model

M = TypeVar("M", bound=VersionedModel)


class TrainingProject:
    """A folder on disk that is the persistent workspace of the segmentation loop.

    Files are read fresh on every access (they are small), so a napari session and a CLI process
    working on one project always see each other's updates; every read-modify-write holds the
    project lock. Sub-managers: `dataset`, `checkpoints`, `imported_models`, `history`, `predictions`.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.layout = ProjectLayout(self.root)
        self.locked = ProjectLock(self.layout.lock_file)
        self.history = History(self)
        self.dataset = Dataset(self, self.history)
        self.checkpoints = CheckpointStore(self, self.dataset)
        self.imported_models = ImportedModels(self)
        self.predictions = Predictions(self)

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        path: str | Path,
        name: str | None = None,
        *,
        spatial_dims: str = "2d",
        output_mode: str = "binary",
        num_classes: int = 2,
        class_names: list[str] | None = None,
        architecture: dict[str, Any] | None = None,
        allow_non_empty: bool = False,
    ) -> TrainingProject:
        """Create a new project folder (the only call that creates anything on disk)."""
        root = Path(path).expanduser()
        layout = ProjectLayout(root)
        if layout.project_config.exists():
            raise ProjectError(f"{root} is already a Training Project Folder: open it instead (nta status {root})")
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} is a file: choose a folder path for the project")
        if root.is_dir() and any(root.iterdir()) and not allow_non_empty:
            raise ProjectError(f"{root} is not empty: choose a new or empty folder (or pass --force to use it anyway)")
        arch = _initial_architecture(spatial_dims, output_mode, num_classes, architecture)
        names = class_names or _default_class_names(arch)
        if class_names and len(class_names) != len(_default_class_names(arch)):
            from .user_input import InputError

            raise InputError(
                f"`class_names`: {len(class_names)} class name(s) given but a {arch.output_mode} project with this architecture "
                f"has {len(_default_class_names(arch))} classes (background first; one per channel for multilabel)"
            )
        config = ProjectConfig(
            project_name=name or root.resolve().name or "project",
            created_at=now(),
            created_with=__version__,
            class_names=names,
        )
        try:
            for folder in layout.folders():
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create the project folder {root}: {exc.strerror or exc}; choose a folder path you can write to") from None
        project = cls(root)
        with project.locked():
            for file, schema in layout.json_files().items():
                if file == layout.project_config:
                    continue
                write_model(file, arch if schema is ArchitectureConfig else schema())
            if not layout.benchmark_history.exists():
                write_benchmark_header(layout.benchmark_history)
            if not layout.training_log.exists():
                atomic_write_bytes(layout.training_log, b"")
            # project_config.json last: a folder is a project only once everything else exists
            write_model(layout.project_config, config)
        return project

    @classmethod
    def open(cls, path: str | Path) -> TrainingProject:
        """Open an existing project; never creates anything in a folder that is not one."""
        root = Path(path).expanduser()
        if not root.exists():
            raise NotAProjectError(f"{root} does not exist: create a project with `nta init {root}`")
        if not root.is_dir():
            raise NotAProjectError(f"{root} is a file, not a Training Project Folder")
        project = cls(root)
        if not project.layout.project_config.exists():
            raise NotAProjectError(
                f"{root} is not a Training Project Folder (no project_config.json): "
                f"create one with `nta init {root}` or choose the project's folder"
            )
        _ = project.config  # validates project_config.json now, with a clear error
        return project

    @staticmethod
    def is_project(path: str | Path) -> bool:
        return ProjectLayout(Path(path)).project_config.is_file()

    # ----------------------------------------------------------------- typed file access
    def read(self, path: Path, schema: type[M]) -> M:
        """A project file, validated; refused when it is a link that leaves the project."""
        confine(self.root, self.layout.relative(path))
        return read_model(path, schema, self.root)

    def write(self, path: Path, model: VersionedModel) -> None:
        with self.locked():
            write_model(path, model)

    @contextlib.contextmanager
    def editing(self, path: Path, schema: type[M]) -> Iterator[M]:
        """Read-modify-write under the project lock: `with project.editing(file, Schema) as doc: ...`."""
        with self.locked():
            doc = self.read(path, schema)
            yield doc
            write_model(path, doc)

    def update(self, path: Path, schema: type[M], change: Callable[[M], None]) -> M:
        with self.editing(path, schema) as doc:
            change(doc)
        return doc

    @property
    def config(self) -> ProjectConfig:
        return self.read(self.layout.project_config, ProjectConfig)

    @property
    def name(self) -> str:
        return self.config.project_name

    @property
    def architecture(self) -> ArchitectureConfig:
        return self.read(self.layout.architecture_config, ArchitectureConfig)

    def set_architecture(self, architecture: ArchitectureConfig | dict[str, Any]) -> ArchitectureConfig:
        """Save the architecture; class names follow a changed class / channel count (names kept where
        the count allows, defaults for the rest), so target-class choices never go stale."""
        arch = ArchitectureConfig.model_validate(
            architecture.model_dump() if isinstance(architecture, ArchitectureConfig) else architecture
        )
        with self.locked():
            self.write(self.layout.architecture_config, arch)
            names = self.config.class_names
            defaults = _default_class_names(arch)
            if len(names) != len(defaults):
                fitted = [*names[: len(defaults)], *defaults[len(names) :]]

                def change(config: ProjectConfig) -> None:
                    config.class_names = fitted

                self.update_config(change)
        return arch

    @property
    def sam3(self) -> Sam3Config:
        return self.read(self.layout.sam3_config, Sam3Config)

    @property
    def manifest(self) -> DatasetManifest:
        return self.read(self.layout.manifest, DatasetManifest)

    @property
    def starting_weights(self) -> StartingWeightsConfig:
        return self.read(self.layout.starting_weights, StartingWeightsConfig)

    def set_starting_weights(self, spec: str) -> StartingWeightsConfig:
        """`scratch`, `latest`, `best` (kept as the checkpoint it is now), `checkpoint:ID` or `imported:ID`;
        the target must exist."""
        choice = parse_start(spec)
        if choice.checkpoint_id == "best":
            choice = StartingWeightsConfig(choice="checkpoint", checkpoint_id=self.checkpoints.get("best").checkpoint_id)
        if choice.checkpoint_id and self.checkpoints.registry.get(choice.checkpoint_id) is None:
            raise ProjectError(f"no checkpoint {choice.checkpoint_id!r} in this project: see `nta checkpoints {self.root}`")
        if choice.imported_model_id and self.imported_models.registry.get(choice.imported_model_id) is None:
            raise ProjectError(f"no imported model {choice.imported_model_id!r}: import one with `nta import-weights`")
        choice = choice.model_copy(update={"chosen_at": now()})
        self.write(self.layout.starting_weights, choice)
        return choice

    def set_training_mode(self, mode: str) -> None:
        """Remember the training mode of the run being started: `pairs` or `point_windows`."""

        def change(config: ProjectConfig) -> None:
            config.training.training_mode = mode  # type: ignore[assignment]  # checked against the Literal

        self.update_config(change)

    def update_config(self, change: Callable[[ProjectConfig], None]) -> ProjectConfig:
        return self.update(self.layout.project_config, ProjectConfig, change)

    def update_sam3(self, change: Callable[[Sam3Config], None]) -> Sam3Config:
        return self.update(self.layout.sam3_config, Sam3Config, change)

    def __repr__(self) -> str:
        return f"TrainingProject({str(self.root)!r})"


def parse_start(spec: str) -> StartingWeightsConfig:
    kind, _, target = spec.partition(":")
    if kind in ("scratch", "latest") and not target:
        return StartingWeightsConfig(choice=kind)
    if kind == "checkpoint" and target:
        return StartingWeightsConfig(choice="checkpoint", checkpoint_id=target)
    if kind == "best" and not target:  # the checkpoint `best` names when the run starts
        return StartingWeightsConfig(choice="checkpoint", checkpoint_id="best")
    if kind == "imported" and target:
        return StartingWeightsConfig(choice="imported", imported_model_id=target)
    from .user_input import InputError, echo

    raise InputError(f"`start` {echo(spec)} not understood: use scratch, latest, best, checkpoint:ID or imported:ID")


def _initial_architecture(spatial_dims, output_mode, num_classes, overrides) -> ArchitectureConfig:
    from pydantic import ValidationError

    try:
        return default_architecture(spatial_dims, output_mode, num_classes, **(overrides or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "architecture"
        raise ProjectError(f"architecture field '{field}': {err['msg']}") from None
    except ValueError as exc:
        raise ProjectError(str(exc)) from None


def _default_class_names(arch: ArchitectureConfig) -> list[str]:
    if arch.output_mode == "multiclass":
        return ["background"] + [f"class_{i}" for i in range(1, arch.num_classes)]
    if arch.output_mode == "multilabel":
        return [f"channel_{i}" for i in range(arch.output_channels)]
    return ["background", "foreground"]
