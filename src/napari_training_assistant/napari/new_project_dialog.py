"""The status bar's **New…** dialog: folder, name, 2D/3D, output mode, class (or channel) names and input
channels, in one step (what `nta init` asks). It only asks; the status bar creates the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QComboBox, QDialog, QFileDialog, QLabel, QLineEdit, QSpinBox, QWidget

from ..project.schemas import ArchitectureConfig
from ..project.user_input import field_choices
from .dialog_form import dialog_form, path_row

DEFAULT_NAMES = {
    "binary": "background, foreground",
    "instance": "background, nucleus",
    "multiclass": "background, class_1, class_2",
    "multilabel": "channel_0, channel_1",
}
NAMES_HELP = {
    "binary": "background and the object: two names",
    "instance": "background and the object: two names (each object gets its own id)",
    "multiclass": "background first, then one name per class",
    "multilabel": "one name per output channel (independent masks)",
}


@dataclass(frozen=True)
class NewProject:
    folder: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)  # TrainingProject.create keywords


class NewProjectDialog(QDialog):
    """Asks for a new project's folder and settings; `request()` is the answer once accepted."""

    def __init__(self, start_folder: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("New Training Project")
        self.folder_edit = QLineEdit(start_folder)
        self.folder_edit.setPlaceholderText("a new or empty folder")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("default: the folder's name")
        self.dims = QComboBox()
        self.dims.addItems(field_choices(ArchitectureConfig, "spatial_dims"))
        self.mode = QComboBox()
        self.mode.addItems(field_choices(ArchitectureConfig, "output_mode"))
        self.names_edit = QLineEdit()
        self.names_help = QLabel("")
        self.names_help.setWordWrap(True)
        self.channels = QSpinBox()
        self.channels.setRange(1, ArchitectureConfig.model_fields["input_channels"].metadata[-1].le)
        dialog_form(
            self,
            [
                ("Folder", path_row(self.folder_edit, self._browse)),
                ("Name", self.name_edit),
                ("Data", self.dims),
                ("Output", self.mode),
                ("Classes", self.names_edit),
                ("", self.names_help),
                ("Input channels", self.channels),
            ],
        )
        self.mode.currentTextChanged.connect(self._mode_changed)
        self._mode_changed(self.mode.currentText())

    def _mode_changed(self, mode: str) -> None:
        """Offer the mode's default names, unless the user typed their own for a compatible mode."""
        if self.names_edit.text() in ("", *DEFAULT_NAMES.values()):
            self.names_edit.setText(DEFAULT_NAMES[mode])
        self.names_help.setText(NAMES_HELP[mode])

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a new or empty folder for the project", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def request(self) -> NewProject:
        names = [n.strip() for n in self.names_edit.text().split(",") if n.strip()]
        mode = self.mode.currentText()
        architecture: dict[str, Any] = {"input_channels": self.channels.value()}
        options: dict[str, Any] = {"spatial_dims": self.dims.currentText(), "output_mode": mode, "class_names": names or None}
        if mode == "multiclass":
            options["num_classes"] = max(len(names), 2)
        if mode == "multilabel":
            architecture["output_channels"] = max(len(names), 1)
        options["architecture"] = architecture
        folder = self.folder_edit.text().strip()
        return NewProject(folder, self.name_edit.text().strip() or Path(folder).name, options)
