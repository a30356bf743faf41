"""The Lightning module for pair training: the U-Net, its loss, AdamW, validation Dice/IoU."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from .losses import make_loss
from .metrics import ScoreAccumulator


class SegmentationModule(L.LightningModule):
    """Kept small: steps compute the architecture's loss; validation accumulates dataset-level scores."""

    def __init__(self, model: nn.Module, architecture: dict[str, Any], learning_rate: float, weight_decay: float, epochs: int):
        super().__init__()
        self.model = model
        self.architecture = architecture
        self.loss_fn = make_loss(architecture)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.scores = ScoreAccumulator(architecture)
        self.save_hyperparameters({"architecture": architecture, "learning_rate": learning_rate, "weight_decay": weight_decay, "epochs": epochs})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        logits = self.model(batch["image"])
        loss = self.loss_fn(logits, batch["target"], batch.get("valid"))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=False, batch_size=len(logits), sync_dist=True)
        return {"loss": loss}

    def on_validation_epoch_start(self) -> None:
        self.scores.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self.model(batch["image"])
        loss = self.loss_fn(logits, batch["target"], batch.get("valid"))
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(logits), sync_dist=True)
        self.scores.update(logits.detach(), batch["target"], batch.get("valid"))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.world_size > 1:  # dataset-level scores: sum the confusion counts of all ranks
            self.scores.merge_ranks(self)
        scores = self.scores.compute()
        self.log("val_dice", float(scores["dice"]), sync_dist=False)
        self.log("val_iou", float(scores["iou"]), sync_dist=False)
        self.last_val_scores = scores

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.epochs, 1), eta_min=self.learning_rate * 0.05)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
