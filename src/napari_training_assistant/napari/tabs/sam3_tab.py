"""SAM3 tab: model folders and prompt modes arrive with the SAM3 annotation feature; until then this
panel says so and points to the Dataset tab, through which masks enter the project today."""

from __future__ import annotations

from qtpy.QtWidgets import QLabel

from .base import ProjectTab


class Sam3Tab(ProjectTab):
    title = "SAM3"
    needs_project = False

    def build(self) -> None:
        text = QLabel(
            "SAM3 prompting (boxes, points, live points, exemplars, SAM3.1 3D propagation) is not available "
            "in this version yet.\n\nAdd masks you drew or imported in the Dataset tab: they go through the same "
            "mask preparation that accepted SAM3 previews will use."
        )
        text.setWordWrap(True)
        self.layout().addWidget(text)
