"""The dock widget: the status bar over one tab per step of the loop. It only wires; tabs call the
same functions as the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from .session import ProjectSession
from .status_bar import StatusBar
from .tabs import TAB_CLASSES

if TYPE_CHECKING:
    import napari


class TrainingAssistantWidget(QWidget):
    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = ProjectSession()
        self.status_bar = StatusBar(self.session)
        self.tabs = QTabWidget()
        self.pages = {cls.title: cls(napari_viewer, self.session) for cls in TAB_CLASSES}
        for title, page in self.pages.items():
            self.tabs.addTab(page, title)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status_bar)
        layout.addWidget(self.tabs, 1)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.session.project_changed.connect(self._restore_tab)
        self._default_project()

    def page(self, title: str):
        return self.pages[title]

    def _tab_changed(self, index: int) -> None:
        if self.session.project is not None:
            self.session.remember(tab=self.tabs.tabText(index))

    def _restore_tab(self, project) -> None:
        if project is None:
            return
        tab = project.config.ui.active_tab
        titles = list(self.pages)
        if tab in titles:
            self.tabs.blockSignals(True)
            self.tabs.setCurrentIndex(titles.index(tab))
            self.tabs.blockSignals(False)

    def _default_project(self) -> None:
        """Open the preferred project folder of the plugin settings, if it is one (never create)."""
        from .preferences import default_project_folder

        folder = default_project_folder()
        if folder:
            self.status_bar.open_project(folder)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        train = self.pages.get("Train")
        if train is not None and not train.confirm_close():
            event.ignore()
            return
        sam3 = self.pages.get("SAM3")
        if sam3 is not None:  # a preview or propagation only fills layers: stop it without asking
            sam3.stop()
            sam3.wait(60)
        super().closeEvent(event)
