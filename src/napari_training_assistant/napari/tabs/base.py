"""What every tab shares: the viewer, the session, enabling on project selection, error display."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QDoubleSpinBox, QLabel, QVBoxLayout, QWidget

from ...project.errors import ProjectError

if TYPE_CHECKING:
    import napari

    from ..session import ProjectSession


class ProjectTab(QWidget):
    """A tab whose controls are disabled until a project is open (`needs_project`)."""

    title = "Tab"
    needs_project = True
    fills_height = False  # True: the tab's own content takes the spare height (no stretch below it)

    def __init__(self, viewer: napari.Viewer, session: ProjectSession, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.session = session
        self.setLayout(QVBoxLayout())
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("tab_message")
        self.build()
        self.layout().addWidget(self.message)
        if not self.fills_height:
            self.layout().addStretch(1)
        session.project_changed.connect(self._project_changed)
        session.project_updated.connect(self.refresh)
        self._project_changed(session.project)

    # ---- to override
    def build(self) -> None:
        """Create the tab's controls (called once)."""

    def refresh(self) -> None:
        """Re-read what the tab shows from the project."""

    # ---- shared behaviour
    def _project_changed(self, project) -> None:
        if self.needs_project:
            self.setEnabled(project is not None)
        self.show_message("" if project is not None or not self.needs_project else "Open or create a Training Project Folder first.")
        if project is not None:
            self.refresh()

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #ff6b6b;" if error else "")

    def run_action(self, action, *args, success: str | None = None, **kwargs):
        """Call a project function; a `ProjectError` becomes a red one-line message, not a traceback."""
        try:
            result = action(*args, **kwargs)
        except ProjectError as exc:
            self.show_message(str(exc), error=True)
            return None
        if success:
            self.show_message(success)
        self.session.updated()
        return result


def probability_spin(tip: str, low: float = 0.01, high: float = 0.99) -> QDoubleSpinBox:
    """A spin box for a probability or score threshold in [low, high], steps of 0.05, starting at 0.5."""
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(0.05)
    spin.setDecimals(2)
    spin.setValue(0.5)
    spin.setToolTip(tip)
    return spin
