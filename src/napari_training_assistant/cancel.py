"""A cancel flag set from any thread (Stop button, Ctrl-C) and polled by long work (training, propagation)."""

from __future__ import annotations

import threading


class CancelToken:
    """Set from any thread; the work stops at its next check (a training step, a propagated slice)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
