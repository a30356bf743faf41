"""What point-windowed runs add to the one module: the loss options of the N-channel regime (class-balanced
per-channel BCE, optional soft Dice, a per-channel loss mask) and, on validation, the constant-predictor
baseline per channel and a PNG montage of the first batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from .losses import ClassBalance, make_loss
from .module import SegmentationModule


class ChannelBaselineAndMontage:
    """Validation extras: the best constant predictor's Dice per channel (everything positive scores
    2P / (P + V) over the valid voxels: the bar to beat) and a montage of the first batch."""

    def __init__(self, channels: int, montage_dir: Path | None, channel_names: tuple[str, ...]):
        self.channels, self.montage_dir, self.channel_names = channels, montage_dir, channel_names

    def start(self, module: L.LightningModule) -> None:
        self._batch = None
        self._positives = torch.zeros(self.channels, dtype=torch.float64)
        self._valid_voxels = torch.zeros(self.channels, dtype=torch.float64)

    def batch(self, module: L.LightningModule, batch: dict[str, Any], logits: torch.Tensor, valid: torch.Tensor | None, batch_idx: int) -> None:
        target = batch["target"]
        valid = torch.ones_like(target[:, :1]) if valid is None else valid
        dims = [0, *range(2, logits.ndim)]
        self._positives += (target * valid).sum(dim=dims).double().cpu()
        self._valid_voxels += valid.expand_as(target).sum(dim=dims).double().cpu()
        if batch_idx == 0:
            self._batch = (batch["image"][:4].cpu(), target[:4].cpu(), torch.sigmoid(logits[:4]).detach().cpu())

    def end(self, module: L.LightningModule, scores: dict[str, Any]) -> None:
        if module.trainer.world_size > 1:  # sum over the ranks, like the confusion counts
            totals = module.all_gather(torch.stack([self._positives, self._valid_voxels]).to(module.device))
            totals = totals.reshape(-1, 2, self.channels).sum(0).cpu()
            self._positives, self._valid_voxels = totals[0], totals[1]
        scores["constant_dice_per_class"] = (2 * self._positives / (self._positives + self._valid_voxels).clamp_min(1)).tolist()
        if self.montage_dir is not None and self._batch is not None and module.trainer.is_global_zero:
            from .montage import write_montage

            write_montage(self.montage_dir / f"montage_epoch_{module.current_epoch + 1:03d}.png", *self._batch, self.channel_names)


def window_loss(architecture: dict[str, Any], class_balance: ClassBalance = "default", balance_clip: float = 0.05, dice_weight: float = 0.0):
    """The loss of point windows: the architecture's `bce` or `bce_dice` with class balancing; the
    Dice term, when the architecture names one, weighs `dice_weight`."""
    return make_loss(architecture, balance=class_balance, balance_clip=balance_clip, dice_weight=dice_weight if dice_weight > 0 else 1.0)


def point_window_module(
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
) -> SegmentationModule:
    """The one module, configured for point windows (per-channel losses and scores, baseline, montage)."""
    architecture = {"loss": "bce_dice" if dice_weight > 0 else "bce", **architecture}
    return SegmentationModule(
        model,
        architecture,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        epochs=epochs,
        loss=window_loss(architecture, class_balance, balance_clip, dice_weight),
        channel_names=channel_names,
        extras=ChannelBaselineAndMontage(architecture["output_channels"], montage_dir, channel_names),
    )
