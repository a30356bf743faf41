"""A cancel flag set from any thread (Stop button, Ctrl-C) and polled by long work (training, propagation)."""

from __future__ import annotations

import threading
from typing import Protocol


class EventLike(Protocol):
    def set(self) -> None: ...

    def is_set(self) -> bool: ...


class CancelToken:
    """Set from any thread; the work stops at its next check (a training step, a propagated slice).

    `event` may be any event-like flag, e.g. a `multiprocessing.Event` that another process sets (the
    widget's Stop for a run in a child process); `reason` is then `default_reason`, as no text crosses.
    """

    def __init__(self, event: EventLike | None = None, default_reason: str = "cancelled by the user") -> None:
        self._event = event if event is not None else threading.Event()
        self._default_reason = default_reason
        self._reason = ""

    def cancel(self, reason: str = "") -> None:
        self._reason = reason or self._default_reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        """Why the work was cancelled ("" while it is not)."""
        if not self.cancelled:
            return ""
        return self._reason or self._default_reason
