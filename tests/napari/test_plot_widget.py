"""The live plot and the dock's matplotlib canvases: drawn only while shown, epochs blitted."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.qt


def test_a_hidden_canvas_draws_only_when_shown(qtbot):
    from matplotlib.figure import Figure
    from qtpy.QtWidgets import QTabWidget, QWidget

    from napari_training_assistant.napari.shown_canvas import ShownCanvas

    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    canvas = ShownCanvas(Figure(figsize=(3, 2)))
    tabs.addTab(QWidget(), "first")
    tabs.addTab(canvas, "plot")
    tabs.show()
    qtbot.waitExposed(tabs)
    canvas.figure.add_subplot(111).plot([0, 1], [1, 0])
    canvas.draw_idle()
    qtbot.wait(100)
    assert canvas.full_draws == 0 and canvas.waiting_for_show  # the plot's tab is not looked at

    tabs.setCurrentWidget(canvas)
    qtbot.waitUntil(lambda: canvas.full_draws == 1, timeout=5000)
    assert not canvas.waiting_for_show
    canvas.draw_idle()  # shown: drawn as matplotlib does
    qtbot.waitUntil(lambda: canvas.full_draws == 2, timeout=5000)


def _painted(plot, x: float, y: float, color: str) -> bool:
    """Whether the canvas as painted on screen has `color` within 3 px of the data point (x, y)."""
    from matplotlib.colors import to_rgb

    image = plot.canvas.grab().toImage()
    ratio = plot.canvas.devicePixelRatioF()
    px, py = plot.loss_axes.transData.transform((x, y)) / plot.canvas.device_pixel_ratio
    row = plot.canvas.height() - py
    want = np.array(to_rgb(color)) * 255
    for dx in range(-3, 4):
        for dy in range(-3, 4):
            pixel = image.pixelColor(int((px + dx) * ratio), int((row + dy) * ratio))
            if np.abs(np.array([pixel.red(), pixel.green(), pixel.blue()]) - want).max() < 30:
                return True
    return False


def test_an_epoch_is_blitted_into_what_the_screen_shows(qtbot):
    from napari_training_assistant.napari.plot_widget import LivePlot

    plot = LivePlot()
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    plot.expect_epochs(4)
    plot.add_epoch(1, {"train_loss": 0.8, "val_loss": 0.9, "val_dice": 0.2})
    qtbot.waitUntil(lambda: plot.full_draws == 1, timeout=5000)
    dice = LivePlot.COLORS["val Dice"]
    assert _painted(plot, 1, 0.2, dice)

    plot.add_epoch(2, {"train_loss": 0.5, "val_loss": 0.6, "val_dice": 0.7})
    qtbot.waitUntil(lambda: _painted(plot, 2, 0.7, dice), timeout=5000)
    assert plot.full_draws == 1  # limits unchanged: the new points were blitted, not a full draw
    assert _painted(plot, 1, 0.2, dice) and not _painted(plot, 3, 0.5, dice)


def test_epochs_added_while_hidden_are_drawn_once_when_shown(qtbot):
    from napari_training_assistant.napari.plot_widget import LivePlot

    plot = LivePlot()
    qtbot.addWidget(plot)
    for epoch in (1, 2, 3):
        plot.add_epoch(epoch, {"train_loss": 1 / epoch, "val_dice": epoch / 4})
    qtbot.wait(100)
    assert plot.full_draws == 0

    plot.show()
    qtbot.waitUntil(lambda: plot.full_draws == 1, timeout=5000)
    qtbot.wait(100)
    assert plot.full_draws == 1 and _painted(plot, 3, 0.75, LivePlot.COLORS["val Dice"])


class _Paints:
    """Counts the paint events a widget gets."""

    def __init__(self, widget) -> None:
        from qtpy.QtCore import QEvent, QObject

        class Filter(QObject):
            def eventFilter(inner, obj, event):  # noqa: N802, N805 (Qt naming)
                if event.type() == QEvent.Type.Paint:
                    self.count += 1
                return False

        self.count, self.filter = 0, Filter()
        widget.installEventFilter(self.filter)


def test_a_progress_step_is_painted_with_the_next_frame_not_at_once(qtbot):
    """QProgressBar.setValue repaints at once: a whole-window composition per step beside napari's canvas."""
    from napari_training_assistant.napari.progress_bar import ProgressBar

    bar = ProgressBar()
    qtbot.addWidget(bar)
    bar.setRange(0, 10)
    bar.show()
    qtbot.waitExposed(bar)
    qtbot.wait(50)
    paints = _Paints(bar)
    bar.setValue(4)
    assert bar.value() == 4 and paints.count == 0
    qtbot.waitUntil(lambda: paints.count >= 1, timeout=5000)


def test_a_blitted_epoch_is_painted_with_the_next_frame_not_at_once(qtbot):
    from napari_training_assistant.napari.plot_widget import LivePlot

    plot = LivePlot()
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    plot.expect_epochs(4)
    plot.add_epoch(1, {"train_loss": 0.8, "val_dice": 0.2})
    qtbot.waitUntil(lambda: plot.full_draws == 1, timeout=5000)
    qtbot.wait(50)
    paints = _Paints(plot.canvas)
    plot.add_epoch(2, {"train_loss": 0.5, "val_dice": 0.7})
    assert paints.count == 0
    qtbot.waitUntil(lambda: paints.count >= 1, timeout=5000)
    assert plot.full_draws == 1


def test_a_run_like_the_last_one_needs_no_full_draw(qtbot):
    """Same epochs, a first loss under the same nice top: the axes stay, every epoch is blitted."""
    from napari_training_assistant.napari.plot_widget import LivePlot

    plot = LivePlot()
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    draws = []
    for first_loss in (1.21, 1.12):
        plot.clear()
        plot.expect_epochs(3)
        for epoch in (1, 2, 3):
            plot.add_epoch(epoch, {"train_loss": first_loss / epoch, "val_dice": epoch / 4})
            qtbot.wait(20)
        qtbot.waitUntil(lambda: plot.full_draws >= 1, timeout=5000)
        qtbot.wait(50)
        draws.append(plot.full_draws)
        assert plot.loss_axes.get_ylim() == (0, 1.5)  # 1.15 x 1.21 -> 1.5
    assert draws[1] == draws[0]  # the second run: blitted only
    plot.add_epoch(4, {"train_loss": 2.0})  # above the top, beyond the epochs: new limits, one draw
    qtbot.waitUntil(lambda: plot.full_draws == draws[1] + 1, timeout=5000)
    assert plot.loss_axes.get_ylim() == (0, 2.5) and plot.loss_axes.get_xlim() == (0.5, 8.5)


@pytest.mark.parametrize(("value", "top"), [(1.0, 1.0), (1.0001, 1.25), (1.3, 1.5), (2.6, 3.0), (8.5, 10.0), (13.0, 15.0), (0.42, 0.5)])
def test_nice_tops(value, top):
    from napari_training_assistant.napari.plot_widget import _nice_top

    assert _nice_top(value) == pytest.approx(top)
