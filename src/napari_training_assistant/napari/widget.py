"""The dock widget: the status bar over one tab per step of the loop. It only wires; tabs call the
same functions as the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import QEvent, QEventLoop, QObject, QTimer
from qtpy.QtWidgets import QDockWidget, QMessageBox, QTabWidget, QVBoxLayout, QWidget

from .session import ProjectSession
from .status_bar import StatusBar
from .tabs import TAB_CLASSES

if TYPE_CHECKING:
    import napari


STOP, KEEP, CANCEL = "stop", "keep", "cancel"  # the answers to "close while work runs?"


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
        self.ask_close = self._ask_close  # replaceable (tests): (what runs) -> STOP, KEEP or CANCEL
        self._close_guard = CloseGuard(self)
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

    # ---- closing: the viewer's window, the dock's (x) and the widget itself all ask while work runs
    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        """Once docked: guard the viewer's window and the dock against closing under a running task."""
        for target in (self._dock(), self.window()):
            if target is not None and target is not self:
                target.installEventFilter(self._close_guard)
        super().showEvent(event)

    def _dock(self) -> QDockWidget | None:
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parentWidget()
        return parent

    def running_work(self) -> list[str]:
        """What runs now in a child process or worker: a training run, a prediction, an export."""
        work = []
        if self.pages["Train"].running:
            work.append("a training run")
        if self.pages["Predict"].running:
            work.append("a prediction")
        if self.pages["Checkpoints"].export_task is not None:
            work.append("an export")
        return work

    def confirm_close(self, timeout_s: float = 600.0) -> bool:
        """True when the plugin may close: nothing runs, or the user chose to stop it (it has ended; a
        training run is saved as cancelled) or to keep it running in the background (let go: it finishes
        on its own and a training run is followed again when its project reopens). Never an orphan
        thread, never a child process stopped without saving."""
        work = self.running_work()
        choice = self.ask_close(work) if work else STOP
        if choice not in (STOP, KEEP):
            return False
        train, predict, checkpoints = self.pages["Train"], self.pages["Predict"], self.pages["Checkpoints"]
        if choice == KEEP:
            train.let_go()
            for task in (predict.task, checkpoints.export_task):
                if task is not None:
                    task.detach()
        elif train.running and not train.stop_and_wait(timeout_s):
            return False
        else:
            for task in (predict.task, checkpoints.export_task):
                if task is not None:
                    task.stop()
        wait_until(lambda: not train.running and not predict.running and checkpoints.export_task is None, timeout_s)
        sam3 = self.pages.get("SAM3")
        if sam3 is not None:  # a preview or propagation only fills layers: stop it without asking
            sam3.stop()
            sam3.wait(60)
        return not self.running_work()

    def _ask_close(self, work: list[str]) -> str:
        one = len(work) == 1
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Training Assistant is working")
        box.setText(f"{' and '.join(work).capitalize()} {'is' if one else 'are'} in progress.")
        box.setInformativeText(
            "Stop and close: a training run is saved as cancelled, with its checkpoint.\n"
            "Keep running in the background: the work finishes on its own and is saved in the project; "
            "reopen the project to follow a training run again (or stop it with `nta stop`)."
        )
        buttons = {
            box.addButton("Stop and close", QMessageBox.ButtonRole.DestructiveRole): STOP,
            box.addButton("Keep running in the background", QMessageBox.ButtonRole.AcceptRole): KEEP,
        }
        box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
        box.exec()
        return buttons.get(box.clickedButton(), CANCEL)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if not self.confirm_close():
            event.ignore()
            return
        super().closeEvent(event)


class CloseGuard(QObject):
    """An event filter on the viewer's window and the dock: their Close asks the widget first."""

    def __init__(self, widget: TrainingAssistantWidget):
        super().__init__(widget)
        self.widget = widget

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QEvent.Type.Close and not self.widget.confirm_close():
            event.ignore()
            return True
        return False


def wait_until(done, timeout_s: float) -> None:
    """Process GUI events until `done()` or `timeout_s` (a worker's results arrive in the GUI thread)."""
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: loop.quit() if done() else None)
    timer.start(50)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    if not done():
        loop.exec()
    timer.stop()
