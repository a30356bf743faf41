"""Live view of a training run for the Train tab: progress bar with ETA, loss / Dice curves, log.

Cheap by design, it runs in the GUI thread while the viewer must stay responsive: a STEP event only
sets the progress bar and one label; the figure is built once and an EPOCH event only appends to the
lines' data and asks for a `draw_idle()` (Qt coalesces it into one repaint); no file is read.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..train.events import EventKind, ProgressEvent


class LivePlot(QWidget):
    """Loss (left axis) and Dice (right axis, 0..1) against the epoch number."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.figure = Figure(figsize=(4, 2.2), dpi=80, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setFixedHeight(180)
        self.loss_axes = self.figure.add_subplot(1, 1, 1)
        self.dice_axes = self.loss_axes.twinx()
        self.loss_axes.set_xlabel("epoch")
        self.loss_axes.set_ylabel("loss")
        self.dice_axes.set_ylabel("val Dice")
        self.dice_axes.set_ylim(0, 1)
        (self.train_line,) = self.loss_axes.plot([], [], "o-", color="tab:blue", markersize=3, label="train loss")
        (self.val_line,) = self.loss_axes.plot([], [], "o-", color="tab:orange", markersize=3, label="val loss")
        (self.dice_line,) = self.dice_axes.plot([], [], "s--", color="tab:green", markersize=3, label="val Dice")
        lines = [self.train_line, self.val_line, self.dice_line]
        self.loss_axes.legend(lines, [line.get_label() for line in lines], loc="upper right", fontsize="small")
        self.series: dict[str, list[float]] = {}
        self.clear()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

    @property
    def point_count(self) -> int:
        return len(self.series["epoch"])

    def clear(self) -> None:
        self.series = {"epoch": [], "train_loss": [], "val_loss": [], "dice": []}
        self._update()

    def add_epoch(self, epoch: int, metrics: dict[str, float], train_loss: float | None = None) -> None:
        """One point per curve (NaN where the epoch did not report the value)."""
        nan = float("nan")
        self.series["epoch"].append(float(epoch))
        self.series["train_loss"].append(_number(metrics.get("train_loss", train_loss), nan))
        self.series["val_loss"].append(_number(metrics.get("val_loss"), nan))
        self.series["dice"].append(_number(metrics.get("val_dice", metrics.get("dice")), nan))
        self._update()

    def _update(self) -> None:
        x = self.series["epoch"]
        self.train_line.set_data(x, self.series["train_loss"])
        self.val_line.set_data(x, self.series["val_loss"])
        self.dice_line.set_data(x, self.series["dice"])
        self.loss_axes.relim()
        self.loss_axes.autoscale_view()
        self.loss_axes.set_xlim(0.5, max(len(x), 1) + 0.5)
        self.canvas.draw_idle()


def _number(value, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


class RunMonitor(QWidget):
    """Progress bar + ETA, `LivePlot` and a log view, fed with a run's `ProgressEvent`s."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.progress = QProgressBar()
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

    def end(self, completed: bool) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if completed:
            self.progress.setValue(self.progress.maximum())
        self.eta.setText("")


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"
