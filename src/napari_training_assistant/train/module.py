"""The one Lightning module of every run (pairs, point windows): the U-Net, a loss object, AdamW with a
cosine schedule, dataset-level validation Dice/IoU, and an optional validation-extras hook."""

from __future__ import annotations

from typing import Any, Protocol

import lightning as L
import torch
from torch import nn

from .losses import SegmentationLoss, make_loss
from .metrics import ScoreAccumulator

OPTIMIZER = "AdamW, learning rate annealed on a cosine to 5% of its start over the epochs"


class ValidationExtras(Protocol):
    """What a kind of run adds to validation (point windows: the constant-predictor baseline, montages).
    Called on every rank; `end` may add entries to the scores it is given."""

    def start(self, module: L.LightningModule) -> None: ...

    def batch(self, module: L.LightningModule, batch: dict[str, Any], logits: torch.Tensor, valid: torch.Tensor | None, batch_idx: int) -> None: ...

    def end(self, module: L.LightningModule, scores: dict[str, Any]) -> None: ...


class SegmentationModule(L.LightningModule):
    """Kept small: steps compute the loss; validation accumulates dataset-level scores.

    `channel_names` (point windows: pre, post) adds per-channel train losses and validation scores to
    the logged metrics. A per-channel `valid` mask (N, C, *sp) counts in the loss channel by channel; the
    scores use the voxels valid in every channel.
    """

    def __init__(
        self,
        model: nn.Module,
        architecture: dict[str, Any],
        *,
        learning_rate: float,
        weight_decay: float,
        epochs: int,
        loss: SegmentationLoss | None = None,
        channel_names: tuple[str, ...] | None = None,
        extras: ValidationExtras | None = None,
    ):
        super().__init__()
        self.model = model
        self.architecture = architecture
        self.loss_fn = loss if loss is not None else make_loss(architecture)
        self.learning_rate, self.weight_decay, self.epochs = learning_rate, weight_decay, epochs
        self.channel_names = channel_names
        self.extras = extras
        self.scores = ScoreAccumulator(architecture)
        self.save_hyperparameters(
            {"architecture": architecture, "learning_rate": learning_rate, "weight_decay": weight_decay, "epochs": epochs, "loss": self.loss_fn.config()}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        logits = self.model(batch["image"])
        loss = self.loss_fn(logits, batch["target"], batch.get("valid"))
        size = len(logits)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=False, batch_size=size, sync_dist=True)
        if self.channel_names and self.loss_fn.last_per_channel is not None:
            for name, value in zip(self.channel_names, self.loss_fn.last_per_channel, strict=False):
                self.log(f"train_loss_{name}", value, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return {"loss": loss}

    def on_validation_epoch_start(self) -> None:
        self.scores.reset()
        if self.extras is not None:
            self.extras.start(self)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self.model(batch["image"])
        valid = batch.get("valid")
        loss = self.loss_fn(logits, batch["target"], valid)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(logits), sync_dist=True)
        if valid is not None and valid.ndim == logits.ndim and valid.shape[1] > 1:
            valid = valid.amin(dim=1, keepdim=True)  # scores count voxels valid in every channel
        self.scores.update(logits.detach(), batch["target"], valid)
        if self.extras is not None:
            self.extras.batch(self, batch, logits, valid, batch_idx)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.world_size > 1:  # dataset-level scores: sum the confusion counts of all ranks
            self.scores.merge_ranks(self)
        scores = self.scores.compute()
        if self.extras is not None:
            self.extras.end(self, scores)
        self.log("val_dice", float(scores["dice"]), sync_dist=False)
        self.log("val_iou", float(scores["iou"]), sync_dist=False)
        for name, dice, iou in zip(self.channel_names or (), scores["dice_per_class"], scores["iou_per_class"], strict=False):
            self.log(f"val_dice_{name}", float(dice))
            self.log(f"val_iou_{name}", float(iou))
        self.last_val_scores = scores

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.epochs, 1), eta_min=self.learning_rate * 0.05)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
