"""A progress bar that does not make the GUI thread wait for a paint."""

from __future__ import annotations

from qtpy.QtWidgets import QProgressBar


class ProgressBar(QProgressBar):
    """`QProgressBar` whose new value is painted with the window's next frame.

    Qt's `setValue` repaints at once; in a window that holds napari's OpenGL canvas that composes the whole
    window, 15-30 ms of the GUI thread on a busy CPU, at every step of a run."""

    def setValue(self, value: int) -> None:  # noqa: N802 (Qt naming)
        self.setUpdatesEnabled(False)
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)  # asks for the paint (`update`)
