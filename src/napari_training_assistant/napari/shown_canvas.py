"""A matplotlib canvas for the dock that draws only while it is shown.

matplotlib's Qt canvas draws on `draw_idle` even inside a tab the user is not looking at; a full Agg draw
costs 20-80 ms of the GUI thread on a busy CPU. Here a draw asked for while hidden waits for the show."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg


class ShownCanvas(FigureCanvasQTAgg):
    """`FigureCanvasQTAgg` whose `draw_idle` is deferred while hidden; `full_draws` counts the draws."""

    def __init__(self, figure) -> None:
        super().__init__(figure)
        self.full_draws = 0
        self.waiting_for_show = False
        self.mpl_connect("draw_event", self._counted)

    def draw_idle(self) -> None:
        if self.isVisible():
            super().draw_idle()
        else:
            self.waiting_for_show = True

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self.waiting_for_show:
            self.waiting_for_show = False
            super().draw_idle()

    def _counted(self, event) -> None:
        self.full_draws += 1
