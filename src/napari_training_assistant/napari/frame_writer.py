"""Write propagated frames into a Labels layer from the GUI thread, a few frames per timer tick.

The propagation worker only puts (slice, labels) on a queue; refreshing the layer on every frame would make
the GUI (and, through the GIL, propagation) wait on redraws. A `QTimer` drains up to `frames_per_tick`
frames, writes them into the layer's array and refreshes the layer once."""

from __future__ import annotations

import queue

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal


class FrameWriter(QObject):
    written = Signal(int)  # frames written so far

    def __init__(self, layer, interval_ms: int = 50, frames_per_tick: int = 4, parent: QObject | None = None):
        super().__init__(parent)
        self.layer = layer
        self.frames: queue.Queue[tuple[int, np.ndarray]] = queue.Queue()
        self.frames_per_tick = frames_per_tick
        self.count = 0
        self.refreshes = 0
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.drain)

    def start(self) -> None:
        self.timer.start()

    def put(self, index: int, labels: np.ndarray) -> None:
        """Thread-safe: called by the propagation worker for each finished slice."""
        self.frames.put((index, labels))

    def drain(self, limit: int | None = None) -> int:
        """Write up to `limit` (default `frames_per_tick`) queued frames; one layer refresh for all of them."""
        written = 0
        data = self.layer.data
        while written < (limit or self.frames_per_tick):
            try:
                index, labels = self.frames.get_nowait()
            except queue.Empty:
                break
            data[index] = labels
            written += 1
        if written:
            self.count += written
            self.refreshes += 1
            self.layer.refresh()
            self.written.emit(self.count)
        return written

    def finish(self) -> None:
        """Stop the timer and write whatever is still queued."""
        self.timer.stop()
        while self.drain(limit=10_000):
            pass
