"""The Lightning `Trainer` of a prepared run: devices, DDP, precision, callbacks, CSV metrics, resume state."""

from __future__ import annotations

import csv
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy

from .events import CancelToken, Listener, ProgressCallback
from .options import is_rank_zero


class EpochSetter(L.Callback):
    """New random patches every epoch (the sampler draws from (seed, epoch, index))."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if hasattr(self.dataset, "set_epoch"):  # point windows are shuffled by the DataLoader instead
            self.dataset.set_epoch(trainer.current_epoch)


class ResumeState(L.Callback):
    """Writes `last.ckpt` (the state `--resume` continues from) after every epoch and, within an epoch,
    whenever `every_s` seconds of training have passed since the last save, so a killed process loses
    at most that much work, even in one long 3D epoch. (Lightning's ModelCheckpoint with save_top_k=0
    writes `last` only when training ends.) Called on every rank; rank 0 writes; under DDP the ranks
    agree on when (a rank's clock alone would deadlock the others in the save's barrier)."""

    def __init__(self, path: Path, every_s: float) -> None:
        self.path = Path(path)
        self.every_s = every_s
        self._last = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last = time.monotonic()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        due = time.monotonic() - self._last >= self.every_s
        if trainer.world_size > 1:
            due = trainer.strategy.reduce_boolean_decision(due, all=False)
        if due:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # runs after the epoch's validation, and also when a cancel stops the epoch early
        if trainer.global_step > 0:
            self._save(trainer)

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path)
        self._last = time.monotonic()


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf: the run fails and registers nothing."""


class FiniteLossGuard(L.Callback):
    """Stops the run at the first step whose loss is NaN or inf (on any rank: all ranks stop together),
    so diverged weights are never registered or made `latest`."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        bad = loss is not None and not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise NonFiniteLoss(
                f"the loss became NaN or inf at epoch {trainer.current_epoch + 1}, step {trainer.global_step}: "
                "lower the learning rate (--lr), or check the images for extreme values"
            )


def strategy_for(run: Any, launcher: str):
    """Single process: 'auto'. Several: DDP (gloo on CPU, NCCL on CUDA). The CLI re-launches itself for
    each rank (works under torchrun and SLURM too); from Python (napari, notebooks) ranks are spawned."""
    if run.devices <= 1 and run.options.num_nodes <= 1:
        return "auto"
    if run.options.strategy:
        return run.options.strategy
    start_method = "popen" if launcher == "cli" else "spawn"
    backend = "gloo" if run.accelerator == "cpu" else None
    return DDPStrategy(process_group_backend=backend, start_method=start_method, find_unused_parameters=False)


def quiet_lightning() -> None:
    """Our progress events and log replace Lightning's banners, tips and known deprecation chatter."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # a resumed run writes its earlier metrics again (`_keep_earlier_metrics`): nothing is lost
    warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
    # a mid-epoch resume state continues the epoch's step count; our samplers draw every patch from
    # (seed, epoch, index), so the rest of the epoch is as random as the part before the kill
    warnings.filterwarnings("ignore", message=r".*resuming from a checkpoint that ended before the epoch ended.*")


def build_trainer(run: Any, *, listener: Listener, cancel: CancelToken, launcher: str) -> L.Trainer:
    """The Lightning `Trainer` of a `prepared.PreparedRun` (duck-typed here, so this module stays below it)."""
    quiet_lightning()
    run_dir = run.project.layout.run_dir(run.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = CSVLogger(save_dir=str(run_dir.parent), name=run.run_id, version="")
    if run.options.resume:
        _keep_earlier_metrics(logger, run_dir / "metrics.csv")
    return L.Trainer(
        accelerator=run.accelerator,
        devices=run.device_indices or run.devices,
        num_nodes=run.options.num_nodes,
        strategy=strategy_for(run, launcher),
        precision=run.precision,
        max_epochs=run.epochs,
        logger=logger,
        callbacks=[
            FiniteLossGuard(),
            ProgressCallback(listener, cancel, run.epochs),
            EpochSetter(run.train_dataset),
            ResumeState(run_dir / "last.ckpt", run.project.config.training.resume_every_s),
        ],
        enable_checkpointing=False,  # ResumeState writes the one resume file; no Lightning checkpoint folders
        default_root_dir=str(run_dir),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        benchmark=run.accelerator == "cuda",
    )


def _keep_earlier_metrics(logger: CSVLogger, path: Path) -> None:
    """Lightning's CSV writer deletes an existing metrics.csv; a resumed run writes the rows of its
    earlier part again first, so metrics.csv and curves.png cover the whole run."""
    if not path.is_file() or not is_rank_zero():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]
    writer = logger.experiment  # creating the writer removes the old file
    if rows and isinstance(getattr(writer, "metrics", None), list):
        writer.metrics[:0] = rows
