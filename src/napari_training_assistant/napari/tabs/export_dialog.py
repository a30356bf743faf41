"""The Checkpoints tab's **Export...** dialog: format, output file, authors, overwrite. It only asks; the tab
runs the export in a child process (`child_tasks.export_checkpoint`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qtpy.QtWidgets import QCheckBox, QComboBox, QDialog, QFileDialog, QLineEdit, QWidget

from ...share.export import EXPORT_FORMATS, SUFFIXES
from ..dialog_form import dialog_form, path_row

FORMAT_TEXT = {
    "bioimageio": "bioimage.io package (.zip: PyTorch, TorchScript and ONNX weights, docs, lineage)",
    "onnx": "ONNX (.onnx)",
    "torchscript": "TorchScript (.pt)",
}


@dataclass(frozen=True)
class ExportRequest:
    format: str
    output: str
    authors: list[str]
    overwrite: bool


class ExportDialog(QDialog):
    """Asks how to export `checkpoint_id`; `request()` is the answer once accepted."""

    def __init__(self, checkpoint_id: str, default_folder: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Export {checkpoint_id}")
        self._stem = default_folder / checkpoint_id
        self.format_combo = QComboBox()
        for name in EXPORT_FORMATS:
            self.format_combo.addItem(FORMAT_TEXT[name], name)
        self.output_edit = QLineEdit()
        self.authors_edit = QLineEdit()
        self.authors_edit.setPlaceholderText("names, comma separated (default: your user name)")
        self.overwrite_check = QCheckBox("replace the file if it exists")
        dialog_form(
            self,
            [
                ("Format", self.format_combo),
                ("Output file", path_row(self.output_edit, self._browse)),
                ("Authors", self.authors_edit),
                ("", self.overwrite_check),
            ],
        )
        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

    @property
    def format(self) -> str:
        return str(self.format_combo.currentData())

    def _format_changed(self) -> None:
        """The output's suffix follows the format (a path the user typed keeps its folder and stem)."""
        current = Path(self.output_edit.text()) if self.output_edit.text() else self._stem
        self.output_edit.setText(str(current.with_suffix(SUFFIXES[self.format][0])))

    def _browse(self) -> None:
        suffix = SUFFIXES[self.format][0]
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.output_edit.text(), f"*{suffix}")
        if path:
            self.output_edit.setText(path)

    def request(self) -> ExportRequest:
        authors = [a.strip() for a in self.authors_edit.text().split(",") if a.strip()]
        return ExportRequest(self.format, self.output_edit.text().strip(), authors, self.overwrite_check.isChecked())
