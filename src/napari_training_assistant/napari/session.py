"""The widget's shared state: which project is open, with signals the tabs subscribe to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psygnal import Signal

from ..project import TrainingProject
from ..project.status import project_status


class ProjectSession:
    """Holds the open `TrainingProject` (or None). Tabs never talk to each other, only to the session.

    `project_changed(project | None)`: another project was opened (or closed).
    `project_updated()`: the open project's files changed (pairs added, a run finished, ...).
    `busy_changed(bool)`: a long task (training, prediction) started or ended.
    `checkpoint_selected(str | None)`: a checkpoint was chosen for prediction (Checkpoints tab).
    """

    project_changed = Signal(object)
    project_updated = Signal()
    busy_changed = Signal(bool)
    checkpoint_selected = Signal(object)

    def __init__(self) -> None:
        self.project: TrainingProject | None = None
        self.busy = False
        self.selected_checkpoint: str | None = None

    def open(self, path: str | Path) -> TrainingProject:
        project = TrainingProject.open(path)
        self._set(project)
        return project

    def create(self, path: str | Path, name: str | None = None, **options: Any) -> TrainingProject:
        project = TrainingProject.create(path, name, **options)
        self._set(project)
        return project

    def close(self) -> None:
        self._set(None)

    def _set(self, project: TrainingProject | None) -> None:
        self.project = project
        self.selected_checkpoint = None  # checkpoint ids belong to one project
        self.project_changed.emit(project)

    def select_checkpoint(self, checkpoint_id: str | None) -> None:
        """Remember the checkpoint to predict with (None: the latest) and tell the tabs."""
        self.selected_checkpoint = checkpoint_id
        self.checkpoint_selected.emit(checkpoint_id)

    def updated(self) -> None:
        self.project_updated.emit()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.busy_changed.emit(busy)

    def status(self) -> dict[str, Any] | None:
        return project_status(self.project) if self.project is not None else None

    def remember(self, *, tab: str | None = None, layers: dict[str, str] | None = None, train_tab: dict[str, str] | None = None) -> None:
        """Persist UI state into project_config.json: the active tab, selected layer names (role -> name),
        the Train tab's settings."""
        if self.project is None:
            return

        def change(config) -> None:
            if tab is not None:
                config.ui.active_tab = tab
            if layers:
                config.ui.selected_layers = {**config.ui.selected_layers, **layers}
            if train_tab:
                config.ui.train_tab = {**config.ui.train_tab, **train_tab}

        self.project.update_config(change)
