"""N-channel regime for point windows (2 channels: presynaptic, postsynaptic).

Per-channel BCE on logits with class balancing, optional soft Dice, a loss mask (`valid`: masks,
`loss_crop_pad`, `min_nonzero_fraction`), per-channel Dice/IoU on validation and a PNG montage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from .metrics import ScoreAccumulator

ClassBalance = Literal["none", "default", "frequency"]


def balance_weights(target: torch.Tensor, valid: torch.Tensor, mode: ClassBalance, clip: float) -> torch.Tensor:
    """Per-voxel weights, per channel, from the batch's positive fraction p (over valid voxels).

    default: positives weighted by the negative frequency (1 - p) and negatives by p, each clipped to
    [clip, 1 - clip]; frequency: inverse frequency 1/p and 1/(1-p), normalised to mean 1 and clipped
    at 1/clip; none: 1.
    """
    if mode == "none":
        return torch.ones_like(target)
    dims = [0, *range(2, target.ndim)]
    count = valid.sum(dim=dims).clamp_min(1.0)
    positive = (target * valid).sum(dim=dims) / count  # (C,)
    shape = (1, -1) + (1,) * (target.ndim - 2)
    p = positive.reshape(shape)
    if mode == "default":
        w_pos = (1 - p).clamp(clip, 1 - clip)
        w_neg = p.clamp(clip, 1 - clip)
    else:
        w_pos = (1 / p.clamp_min(1e-6)).clamp(max=1 / clip)
        w_neg = (1 / (1 - p).clamp_min(1e-6)).clamp(max=1 / clip)
        norm = (p * w_pos + (1 - p) * w_neg).clamp_min(1e-6)
        w_pos, w_neg = w_pos / norm, w_neg / norm
    return target * w_pos + (1 - target) * w_neg


class WindowLoss(nn.Module):
    def __init__(self, class_balance: ClassBalance = "default", balance_clip: float = 0.05, dice_weight: float = 0.0):
        super().__init__()
        self.class_balance = class_balance
        self.balance_clip = balance_clip
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, per-channel loss) averaged over valid voxels; zero (with a graph) when nothing is valid."""
        logits, target, valid = logits.float(), target.float(), valid.float().expand_as(target)
        weights = balance_weights(target, valid, self.class_balance, self.balance_clip) * valid
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weights
        dims = [0, *range(2, target.ndim)]
        per_channel = bce.sum(dim=dims) / weights.sum(dim=dims).clamp_min(1e-6)
        if self.dice_weight > 0:
            prob = torch.sigmoid(logits) * valid
            intersection = (prob * target).sum(dim=dims)
            dice = (2 * intersection + 1) / (prob.sum(dim=dims) + (target * valid).sum(dim=dims) + 1)
            per_channel = per_channel + self.dice_weight * (1 - dice)
        if valid.sum() == 0:
            return logits.sum() * 0.0, per_channel.detach() * 0.0
        return per_channel.mean(), per_channel.detach()


class PointWindowModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        architecture: dict[str, Any],
        *,
        learning_rate: float,
        epochs: int,
        class_balance: ClassBalance = "default",
        balance_clip: float = 0.05,
        dice_weight: float = 0.0,
        weight_decay: float = 1e-4,
        montage_dir: Path | None = None,
        channel_names: tuple[str, ...] = ("pre", "post"),
    ):
        super().__init__()
        self.model = model
        self.architecture = architecture
        self.loss_fn = WindowLoss(class_balance, balance_clip, dice_weight)
        self.learning_rate, self.weight_decay, self.epochs = learning_rate, weight_decay, epochs
        self.montage_dir = montage_dir
        self.channel_names = channel_names
        self.scores = ScoreAccumulator(architecture)
        self.save_hyperparameters({"architecture": architecture, "learning_rate": learning_rate, "class_balance": class_balance})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        logits = self.model(batch["image"])
        loss, per_channel = self.loss_fn(logits, batch["target"], batch["valid"])
        size = len(logits)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        for name, value in zip(self.channel_names, per_channel, strict=False):
            self.log(f"train_loss_{name}", value, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return {"loss": loss}

    def on_validation_epoch_start(self) -> None:
        self.scores.reset()
        self._montage_batch = None
        self._positives = torch.zeros(self.architecture["output_channels"], dtype=torch.float64)
        self._valid_voxels = torch.zeros(self.architecture["output_channels"], dtype=torch.float64)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self.model(batch["image"])
        loss, _ = self.loss_fn(logits, batch["target"], batch["valid"])
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(logits), sync_dist=True)
        valid = batch["valid"].amin(dim=1, keepdim=True)
        self.scores.update(logits.detach(), batch["target"], valid)
        dims = [0, *range(2, logits.ndim)]
        self._positives += (batch["target"] * valid).sum(dim=dims).double().cpu()
        self._valid_voxels += valid.expand_as(batch["target"]).sum(dim=dims).double().cpu()
        if batch_idx == 0:
            self._montage_batch = (batch["image"][:4].cpu(), batch["target"][:4].cpu(), torch.sigmoid(logits[:4]).detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if self.trainer.world_size > 1:  # dataset-level scores: sum the confusion counts of all ranks
            self.scores.merge_ranks(self)
            totals = self.all_gather(torch.stack([self._positives, self._valid_voxels]).to(self.device))
            totals = totals.reshape(-1, 2, len(self._positives)).sum(0).cpu()
            self._positives, self._valid_voxels = totals[0], totals[1]
        scores = self.scores.compute()
        # the best constant predictor (everything positive) scores 2P / (P + V): the bar to beat
        scores["constant_dice_per_class"] = (2 * self._positives / (self._positives + self._valid_voxels).clamp_min(1)).tolist()
        self.log("val_dice", float(scores["dice"]))
        self.log("val_iou", float(scores["iou"]))
        for name, dice, iou in zip(self.channel_names, scores["dice_per_class"], scores["iou_per_class"], strict=False):
            self.log(f"val_dice_{name}", float(dice))
            self.log(f"val_iou_{name}", float(iou))
        self.last_val_scores = scores
        if self.montage_dir is not None and self._montage_batch is not None and self.trainer.is_global_zero:
            from .montage import write_montage

            write_montage(self.montage_dir / f"montage_epoch_{self.current_epoch + 1:03d}.png", *self._montage_batch, self.channel_names)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.epochs, 1), eta_min=self.learning_rate * 0.05)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
