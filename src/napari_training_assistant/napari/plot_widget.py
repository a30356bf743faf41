"""Live view of a training run for the Train tab: progress bar with ETA, loss / Dice curves, log.

It runs in the GUI thread while the viewer must stay responsive, so it is cheap by design: a STEP event
only sets the progress bar and one label; the plot changes on EPOCH events only, and then usually by
blitting (the saved axes background + the three lines into the canvas buffer, shown with the window's
next paint, never a repaint of its own). A full figure draw (12-20 ms of Agg rendering, more on a busy
CPU) happens only when the axes limits change (at most once a run, for the run's epochs and the first
loss rounded up to a nice top, none when they match the last run's; again only if a loss rises above the
top), on resize, and never while the plot is hidden. No file is read here.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..progress import EventKind, ProgressEvent, duration
from .progress_bar import ProgressBar
from .shown_canvas import ShownCanvas


class LivePlot(QWidget):
    """Train loss, val loss and val Dice against the epoch, on one axes (y from 0 to at least 1).

    One axes, no matplotlib legend (a QLabel instead): a full draw costs ~12 ms instead of ~40 ms with a
    twin Dice axis and a legend, which matters on a busy CPU."""

    COLORS = {"train loss": "#1f77b4", "val loss": "#ff7f0e", "val Dice": "#2ca02c"}

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.figure = Figure(figsize=(4, 2.2), dpi=72)  # fixed margins: no layout engine on every draw
        self.figure.subplots_adjust(left=0.1, right=0.97, bottom=0.2, top=0.95)
        self.canvas = ShownCanvas(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(160)
        self.loss_axes = self.figure.add_subplot(1, 1, 1)
        self.loss_axes.set_xlabel("epoch")
        self.loss_axes.grid(True, alpha=0.3)
        self.loss_axes.set_xlim(0.5, 1.5)
        self.loss_axes.set_ylim(0, 1)
        for axis in (self.loss_axes.xaxis, self.loss_axes.yaxis):
            axis.set_major_locator(MaxNLocator(5, integer=axis is self.loss_axes.xaxis))
        style = {"markersize": 3, "animated": True}  # drawn over the saved background, see `_blit`
        colors = list(self.COLORS.values())
        (self.train_line,) = self.loss_axes.plot([], [], "o-", color=colors[0], **style)
        (self.val_line,) = self.loss_axes.plot([], [], "o-", color=colors[1], **style)
        (self.dice_line,) = self.loss_axes.plot([], [], "s--", color=colors[2], **style)
        self.lines = (self.train_line, self.val_line, self.dice_line)
        legend = QLabel("  ".join(f'<span style="color:{c}">&#9632; {name}</span>' for name, c in self.COLORS.items()))
        self.series: dict[str, list[float]] = {"epoch": [], "train_loss": [], "val_loss": [], "dice": []}
        self._background = None
        self._stale = True
        self.canvas.mpl_connect("draw_event", self._drawn)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        layout.addWidget(legend)

    @property
    def full_draws(self) -> int:
        return self.canvas.full_draws

    @property
    def point_count(self) -> int:
        return len(self.series["epoch"])

    def clear(self) -> None:
        self.series = {"epoch": [], "train_loss": [], "val_loss": [], "dice": []}
        self._update()

    def expect_epochs(self, epochs: int) -> None:
        """The x axis spans the whole run (drawn with the first epoch's point)."""
        if epochs > 0:
            self._limits(x_top=epochs)

    def add_epoch(self, epoch: int, metrics: dict[str, float], train_loss: float | None = None) -> None:
        """One point per curve (NaN where the epoch did not report the value)."""
        nan = float("nan")
        self.series["epoch"].append(float(epoch))
        self.series["train_loss"].append(_number(metrics.get("train_loss", train_loss), nan))
        self.series["val_loss"].append(_number(metrics.get("val_loss"), nan))
        self.series["dice"].append(_number(metrics.get("val_dice", metrics.get("dice")), nan))
        losses = [v for v in self.series["train_loss"] + self.series["val_loss"] if math.isfinite(v)]
        if losses and (self.point_count == 1 or max(losses) > self.loss_axes.get_ylim()[1]):
            self._limits(y_top=_nice_top(max(1.0, max(losses) * 1.15)))
        if epoch > self.loss_axes.get_xlim()[1] - 0.5:
            self._limits(x_top=2 * int(epoch))
        self._update()

    def _limits(self, x_top: int | None = None, y_top: float | None = None) -> None:
        """New axes limits; a full draw follows only if they changed (a run like the last one: none)."""
        before = (self.loss_axes.get_xlim(), self.loss_axes.get_ylim())
        if x_top is not None:
            self.loss_axes.set_xlim(0.5, x_top + 0.5)
        if y_top is not None:
            self.loss_axes.set_ylim(0, y_top)
        if (self.loss_axes.get_xlim(), self.loss_axes.get_ylim()) != before:
            self._stale = True

    def _update(self) -> None:
        x = self.series["epoch"]
        self.train_line.set_data(x, self.series["train_loss"])
        self.val_line.set_data(x, self.series["val_loss"])
        self.dice_line.set_data(x, self.series["dice"])
        if self._stale or self._background is None or not self.canvas.isVisible():
            self.canvas.draw_idle()  # while hidden: when shown
        else:
            self._blit()

    def _drawn(self, event) -> None:
        """After a full draw: keep the background (drawn without the animated lines), then add the lines."""
        self._stale = False
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        for line in self.lines:
            line.axes.draw_artist(line)

    def _blit(self) -> None:
        """The lines over the saved background, in the canvas buffer; painted with the window's next frame
        (`update`: matplotlib's `blit` repaints at once, one more composition of the whole window)."""
        self.canvas.restore_region(self._background)
        for line in self.lines:
            line.axes.draw_artist(line)
        self.canvas.update()


def _nice_top(value: float) -> float:
    """The smallest of 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten that is >= `value` (> 0): a
    loss axis whose top stays put from run to run."""
    scale = 10.0 ** math.floor(math.log10(value))
    return next(step * scale for step in (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * scale >= value)


def _number(value, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


class RunMonitor(QWidget):
    """Progress bar + ETA, `LivePlot` and a log view, fed with a run's `ProgressEvent`s."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.progress = ProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel("")
        self.plot = LivePlot()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setFixedHeight(120)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.eta)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.plot)
        layout.addWidget(self.log)

    def begin(self, line: str) -> None:
        self.plot.clear()
        self.log.clear()
        self.log.appendPlainText(line)
        self.progress.setRange(0, 0)  # busy until the first step tells the total
        self.eta.setText("preparing…")

    def note(self, line: str) -> None:
        self.log.appendPlainText(line)

    def on_event(self, event: ProgressEvent) -> None:
        if event.kind in (EventKind.STEP, EventKind.EPOCH) and event.steps:
            if self.progress.maximum() != event.steps:
                self.progress.setRange(0, event.steps)
            self.progress.setValue(min(event.step, event.steps))
            eta = f", ETA {duration(event.eta_s)}" if event.eta_s is not None else ""
            self.eta.setText(f"epoch {event.epoch}/{event.epochs}, step {event.step}/{event.steps}{eta}")
        if event.kind == EventKind.EPOCH:
            self.plot.add_epoch(event.epoch, event.metrics, event.loss)
            shown = {k: v for k, v in event.metrics.items() if k in ("train_loss", "val_loss", "val_dice")}
            self.log.appendPlainText(f"epoch {event.epoch}/{event.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
        elif event.kind in (EventKind.STARTED, EventKind.MESSAGE, EventKind.FINISHED) and event.message:
            self.log.appendPlainText(event.message)
        if event.kind == EventKind.STARTED:
            self.plot.expect_epochs(event.epochs)

    def end(self, completed: bool) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if completed:
            self.progress.setValue(self.progress.maximum())
        self.eta.setText("")
