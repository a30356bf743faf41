"""The Lightning callback that turns a run into `ProgressEvent`s and honours a `CancelToken`.

The events themselves live in the torch-free `..progress` (re-exported here, so `train.events` keeps
working); the widget imports them from there without loading Lightning."""

from __future__ import annotations

import time

import lightning as L

from ..cancel import CancelToken
from ..progress import EventKind, Listener, ProgressEvent

__all__ = ["CancelToken", "EventKind", "Listener", "ProgressCallback", "ProgressEvent"]


class ProgressCallback(L.Callback):
    """Lightning hooks -> `ProgressEvent`s for a listener; honours a `CancelToken`."""

    def __init__(self, listener: Listener | None, cancel: CancelToken | None, epochs: int):
        self.listener = listener
        self.cancel = cancel
        self.epochs = epochs
        self._start = time.perf_counter()

    def _emit(self, event: ProgressEvent) -> None:
        if self.listener is not None:
            self.listener(event)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._first_step = trainer.global_step
        if self.cancel is not None and self.cancel.cancelled:  # cancelled while the run was being set up
            trainer.should_stop = True

    def _total_steps(self, trainer: L.Trainer) -> int:
        return int(trainer.num_training_batches) * self.epochs

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            self._emit_step(trainer, outputs)
        # checked after the event: a listener may cancel in it. Under DDP every rank must stop at the
        # same step, so the decision is shared (any rank cancelled -> all stop).
        cancelled = self.cancel is not None and self.cancel.cancelled
        if trainer.world_size > 1:
            cancelled = trainer.strategy.reduce_boolean_decision(cancelled, all=False)
        if cancelled:
            trainer.should_stop = True

    def _emit_step(self, trainer: L.Trainer, outputs) -> None:
        done = trainer.global_step - self._first_step
        total = self._total_steps(trainer)
        elapsed = time.perf_counter() - self._start
        remaining = max(total - trainer.global_step, 0)
        eta = elapsed / done * remaining if done > 0 else None
        loss = outputs["loss"].item() if isinstance(outputs, dict) and "loss" in outputs else None
        self._emit(
            ProgressEvent(EventKind.STEP, trainer.current_epoch + 1, self.epochs, trainer.global_step, total, loss, eta_s=eta)
        )

    def on_train_epoch_end(self, trainer, module) -> None:
        # runs after the epoch's validation, so train and val metrics of this epoch are both logged.
        # Every rank reads them: reading reduces the sync_dist metrics across ranks (a collective), so
        # reading on rank 0 alone would deadlock DDP at the next collective of the other ranks.
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if not trainer.is_global_zero:
            return
        total = self._total_steps(trainer)
        done = trainer.global_step - self._first_step
        elapsed = time.perf_counter() - self._start
        eta = elapsed / done * max(total - trainer.global_step, 0) if done > 0 else None
        self._emit(
            ProgressEvent(
                EventKind.EPOCH,
                trainer.current_epoch + 1,
                self.epochs,
                trainer.global_step,
                total,
                metrics.get("train_loss"),
                metrics,
                eta,
            )
        )
