"""The Predict tab's "What to label next" box: rank a folder of unlabeled images by the checkpoint's
uncertainty (`nta suggest`, in a child process), show the ranking, open a suggested image as an Image layer
and predict it, so that its corrected prediction, accepted as a training pair, records its rank.

The panel owns its widgets and the ranking; the tab (`SuggestHost`) owns the running state (one child task at
a time, predicting or ranking), the checkpoint choice, the message line and the prediction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...project.errors import ProjectError
from ..child_process import one_line
from ..child_tasks import suggest_in_project
from ..workers import ChildTask, TaskFailed

LATEST = "latest"
SOURCE_KEY = "nta_source_file"  # metadata of an image layer opened from a suggestion: the file it was read from


def region_text(region: list[list[int]] | None) -> str:
    return " [" + ", ".join(f"{a}:{b}" for a, b in region) + "]" if region else ""


class SuggestHost(Protocol):
    """What the panel needs of its tab."""

    viewer: Any
    session: Any

    @property
    def running(self) -> bool: ...

    def checkpoint(self) -> tuple[str | None, str]: ...  # (the chosen checkpoint's id or alias, its text)

    def show_message(self, text: str, error: bool = False) -> None: ...

    def start_child(self, task: ChildTask, returned: Callable[[Any], None], *, busy: QPushButton, busy_text: str, message: str) -> None: ...

    def predict_opened(self, layer, note: str) -> None: ...  # choose the layer and predict it (else say `note`)


class SuggestPanel(QGroupBox):
    def __init__(self, host: SuggestHost, parent: QWidget | None = None):
        super().__init__("What to label next", parent)
        self.host = host
        layout = QVBoxLayout(self)
        self.suggest_folder = QLineEdit()
        self.suggest_folder.setPlaceholderText("folder of unlabeled images")
        self.suggest_folder.setToolTip("The images to rank (TIFF, PNG, NPY, Zarr; not recursive)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_suggest_folder)
        self.suggest_button = QPushButton("Suggest next images")
        self.suggest_button.setToolTip(
            "Rank the folder's images by how unsure the checkpoint above is about them (entropy + flip disagreement), "
            "most uncertain first, as nta suggest does; the ranking is recorded, and a suggested image whose prediction "
            "you correct and accept records its rank"
        )
        self.suggest_button.clicked.connect(self.suggest)
        self.suggestions = QTableWidget(0, 3)
        self.suggestions.setHorizontalHeaderLabels(["#", "image", "score"])
        self.suggestions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.suggestions.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.suggestions.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.suggestions.verticalHeader().setVisible(False)
        self.suggestions.horizontalHeader().setStretchLastSection(False)
        self.suggestions.horizontalHeader().setSectionResizeMode(1, self.suggestions.horizontalHeader().ResizeMode.Stretch)
        self.suggestions.setMaximumHeight(180)
        self.suggestions.cellDoubleClicked.connect(lambda row, _column: self.open_suggestion(row))
        self.open_button = QPushButton("Open and predict")
        self.open_button.setToolTip("Open the chosen image as an Image layer and predict it: correct the prediction, then Accept as training pair")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self.open_suggestion(self.suggestions.currentRow()))
        self.ranked: list[dict[str, Any]] = []
        folder = QHBoxLayout()
        folder.addWidget(self.suggest_folder, 1)
        folder.addWidget(browse)
        layout.addLayout(folder)
        layout.addWidget(self.suggest_button)
        layout.addWidget(self.suggestions)
        layout.addWidget(self.open_button)

    def update_buttons(self, running: bool) -> None:
        """Enable the buttons unless a child task (prediction or ranking) runs; idle: their own texts."""
        self.suggest_button.setEnabled(not running)
        self.open_button.setEnabled(bool(self.ranked) and not running)
        if not running:
            self.suggest_button.setText("Suggest next images")

    def _browse_suggest_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of unlabeled images", self.suggest_folder.text())
        if folder:
            self.suggest_folder.setText(folder)

    def suggest(self) -> bool:
        """Rank the folder's images with the chosen checkpoint in a child process (`nta suggest`); False
        (with a red line) when refused."""
        host = self.host
        project = host.session.project
        if project is None or host.running:
            return False
        folder = self.suggest_folder.text().strip()
        if not folder or not Path(folder).is_dir():
            host.show_message(f"{folder or 'No folder'}: choose a folder of unlabeled images to rank.", error=True)
            return False
        checkpoint, text = host.checkpoint()
        if checkpoint is None:  # the project's own words: no checkpoint yet, train first
            try:
                checkpoint = project.checkpoints.get(LATEST).checkpoint_id
            except ProjectError as exc:
                host.show_message(one_line(exc), error=True)
                return False
        task = ChildTask(suggest_in_project, str(project.root), folder, label="suggestion", checkpoint_id=checkpoint)
        host.start_child(
            task, self._suggested, busy=self.suggest_button, busy_text="Ranking…",
            message=f"Ranking the images of {Path(folder).name} by the uncertainty of {text or checkpoint}…",
        )  # fmt: skip
        return True

    def _suggested(self, result) -> None:
        if isinstance(result, TaskFailed):
            self.host.show_message(f"Suggestion failed: {result.message}", error=True)
            return
        self.show_suggestions(result)
        self.host.show_message(
            f"{len(result)} image(s) ranked, the most uncertain first (recorded): double-click one to open and predict it, "
            "correct the prediction, then Accept as training pair."
        )
        self.host.session.updated()

    def show_suggestions(self, ranked: list[dict[str, Any]]) -> None:
        """Fill the table: rank, image name [region], score (entropy and flip disagreement in the tooltip)."""
        self.ranked = list(ranked)
        self.suggestions.setRowCount(0)
        for entry in self.ranked:
            row = self.suggestions.rowCount()
            self.suggestions.insertRow(row)
            cells = (str(entry["rank"]), Path(entry["path"]).name + region_text(entry.get("region")), f"{entry['score']:.3f}")
            tip = f"{entry['path']}: entropy {entry['entropy']:.3f} + flip disagreement {entry['disagreement']:.3f}"
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.suggestions.setItem(row, column, item)
        self.suggestions.resizeColumnToContents(0)
        self.suggestions.resizeColumnToContents(2)
        if self.ranked:
            self.suggestions.selectRow(0)
        self.update_buttons(self.host.running)

    def open_suggestion(self, row: int):
        """Open the suggested image (its tile, for a tiled ranking) as an Image layer and predict it; returns the layer."""
        from ...project.image_io import read_array

        host = self.host
        if not 0 <= row < len(self.ranked):
            host.show_message("Choose a suggested image in the list first.", error=True)
            return None
        entry = self.ranked[row]
        path, region = entry["path"], entry.get("region")
        name = Path(path).stem
        layers = host.viewer.layers
        if name in layers and layers[name].metadata.get(SOURCE_KEY) == path and not region:
            layer = layers[name]
        else:
            try:
                data = read_array(path)
            except (ProjectError, OSError, ValueError) as exc:
                host.show_message(one_line(exc), error=True)
                return None
            if region and np.ndim(data) == len(region):  # the suggested tile (channels: the whole image)
                data = data[tuple(slice(a, b) for a, b in region)]
                name += region_text(region)
            layer = host.viewer.add_image(data, name=name, metadata={SOURCE_KEY: path})
        host.predict_opened(layer, f"Opened {layer.name} (suggested #{entry['rank']}).")
        return layer
