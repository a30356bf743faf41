"""Always-visible project bar: selector, short path, state, dataset count, latest checkpoint, benchmark."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QSettings
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..project.errors import ProjectError
from .session import ProjectSession

RECENT_KEY = "recent_projects"
MAX_RECENT = 10


def short_path(path: Path, keep: int = 2) -> str:
    parts = path.resolve().parts
    return str(Path(*parts[-keep:])) if len(parts) > keep else str(path)


class StatusBar(QWidget):
    def __init__(self, session: ProjectSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.settings = QSettings("napari-training-assistant", "napari-training-assistant")
        self.selector = QComboBox()
        self.selector.setPlaceholderText("No project: open or create one")
        self.selector.setToolTip("Recently used Training Project Folders")
        self.selector.activated.connect(self._recent_chosen)
        self.open_button = QPushButton("Open…")
        self.new_button = QPushButton("New…")
        self.open_button.clicked.connect(self._ask_open)
        self.new_button.clicked.connect(self._ask_new)
        self.path_label, self.state_label = QLabel("-"), QLabel("no project")
        self.dataset_label, self.checkpoint_label, self.benchmark_label = QLabel("-"), QLabel("-"), QLabel("-")
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #ff6b6b;")
        row = QHBoxLayout()
        row.addWidget(self.selector, 1)
        row.addWidget(self.open_button)
        row.addWidget(self.new_button)
        form = QFormLayout()
        form.addRow("Path", self.path_label)
        form.addRow("State", self.state_label)
        form.addRow("Dataset", self.dataset_label)
        form.addRow("Latest checkpoint", self.checkpoint_label)
        form.addRow("Latest benchmark", self.benchmark_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        self._fill_recent()
        session.project_changed.connect(lambda _: self.refresh())
        session.project_updated.connect(self.refresh)
        session.busy_changed.connect(self._busy)

    # ---- actions (also called by tests)
    def open_project(self, path: str | Path) -> bool:
        return self._guard(lambda: self.session.open(path))

    def create_project(self, path: str | Path, name: str | None = None, **options) -> bool:
        return self._guard(lambda: self.session.create(path, name, **options))

    def _guard(self, action) -> bool:
        try:
            project = action()
        except ProjectError as exc:
            self.error_label.setText(str(exc))
            return False
        self.error_label.setText("")
        self._remember(project.root)
        return True

    def refresh(self) -> None:
        status = self.session.status()
        if status is None:
            for label in (self.path_label, self.dataset_label, self.checkpoint_label, self.benchmark_label):
                label.setText("-")
            self.state_label.setText("no project: open or create a Training Project Folder")
            return
        counts = status["split_counts"]
        bench = status["latest_benchmark"]
        self.path_label.setText(short_path(Path(status["project_path"])))
        self.path_label.setToolTip(status["project_path"])
        self.state_label.setText(f"{status['project_name']}: {status['state']}")
        self.dataset_label.setText(f"{status['dataset_count']} pairs (train {counts['train']}, val {counts['val']}, benchmark {counts['benchmark']})")
        self.checkpoint_label.setText(status["latest_checkpoint"] or "none")
        self.benchmark_label.setText(
            f"{bench['checkpoint_id']}: Dice {bench['dice']:.3f}, IoU {bench['iou']:.3f}" if bench and bench.get("dice") is not None else "none"
        )
        index = self.selector.findData(status["project_path"])
        if index >= 0:
            self.selector.setCurrentIndex(index)

    # ---- recent projects
    def _recent(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        return [v for v in (value if isinstance(value, list) else [value]) if v]

    def _fill_recent(self) -> None:
        self.selector.clear()
        for path in self._recent():
            self.selector.addItem(short_path(Path(path)), path)
        self.selector.setCurrentIndex(-1)

    def _remember(self, root: Path) -> None:
        path = str(root.resolve())
        recent = [path, *[p for p in self._recent() if p != path]][:MAX_RECENT]
        self.settings.setValue(RECENT_KEY, recent)
        self._fill_recent()
        self.refresh()

    def _recent_chosen(self, index: int) -> None:
        path = self.selector.itemData(index)
        if path:
            self.open_project(path)

    def _ask_open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a Training Project Folder")
        if folder:
            self.open_project(folder)

    def _ask_new(self) -> None:
        request = self.ask_new_project()
        if request is None:
            return
        if not request.folder:
            self.error_label.setText("Choose a folder for the new project.")
            return
        self.create_project(request.folder, request.name, **request.options)

    def ask_new_project(self):
        """The New project dialog's answer (folder, name, dims, output mode, classes, channels), or None."""
        from .new_project_dialog import NewProjectDialog

        dialog = NewProjectDialog(parent=self)
        return dialog.request() if dialog.exec() else None

    def _busy(self, busy: bool) -> None:
        for widget in (self.selector, self.open_button, self.new_button):
            widget.setEnabled(not busy)
