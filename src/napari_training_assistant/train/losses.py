"""Segmentation losses on U-Net logits, chosen by `ArchitectureConfig.loss`.

`make_loss(architecture)` returns a callable `loss(logits, target, valid=None) -> scalar tensor`.

Shapes (the sampler's conventions; `*sp` is (y, x) or (z, y, x)):

* binary      logits (N, 1, *sp); target float 0/1 (N, 1, *sp) (or (N, *sp))
* multiclass  logits (N, K, *sp); target long 0..K-1 (N, *sp) (or (N, 1, *sp))
* multilabel  logits (N, C, *sp); target float 0/1 (N, C, *sp)
* valid       optional float mask (N, 1, *sp) (or (N, *sp)); 1 where the loss counts, 0 on padding.

Terms:

* ``bce``  binary cross-entropy with logits, per channel, averaged over valid voxels and channels.
* ``ce``   cross-entropy (softmax) averaged over valid voxels (weighted mean when `class_weights`).
* ``dice`` 1 - soft Dice. Sigmoid probabilities per channel (binary / multilabel) or softmax
  probabilities against the one-hot target over the foreground classes 1..K-1 (multiclass).
  Dice is computed over the whole batch per channel ("batch Dice":
  ``(2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)``) and averaged over channels, so an
  empty patch cannot produce NaN and a single empty patch does not dominate the batch.
* ``bce_dice`` = ``bce`` + ``dice_weight`` x ``dice``; ``ce_dice`` = ``ce`` + ``dice_weight`` x ``dice``
  (`dice_weight` 1 by default: equal weights).

Options of the one family (point windows use them; pair training the defaults):

* ``balance`` (binary / multilabel): per-voxel class balancing of the BCE from each channel's positive
  fraction in the batch (`balance_weights`: ``none``, ``default``, ``frequency``); the BCE becomes a
  weighted mean over valid voxels.
* ``valid`` may be one mask for all channels (N, 1, *sp) or one per channel (N, C, *sp).

`valid` removes voxels from every term: their probabilities and targets do not enter the Dice
sums and their cross-entropy is not averaged in. Where no voxel is valid the loss is 0 (still
connected to the graph). Everything is computed in float32 (also under autocast). After each call,
`last_per_channel` holds the per-channel terms (detached; binary / multilabel) for logging.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..project.schemas.architecture import ArchitectureConfig

LOSSES: tuple[str, ...] = ("bce_dice", "ce_dice", "bce", "ce", "dice")
ClassBalance = Literal["none", "default", "frequency"]

_CROSS_ENTROPY = {"bce_dice": True, "ce_dice": True, "bce": True, "ce": True, "dice": False}
_DICE = {"bce_dice": True, "ce_dice": True, "bce": False, "ce": False, "dice": True}


def _as_config(architecture: Mapping[str, Any] | ArchitectureConfig) -> ArchitectureConfig:
    if isinstance(architecture, ArchitectureConfig):
        return architecture
    return ArchitectureConfig.model_validate(dict(architecture))


class SegmentationLoss(nn.Module):
    """One configured loss; call it as ``loss(logits, target, valid=None)``.

    `name` is the loss name (one of `LOSSES`), `mode` the output mode. Channel / class weights
    live in buffers so that ``.to(device)`` moves them with the module.
    """

    def __init__(
        self,
        name: str,
        mode: str,
        channels: int,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        pos_weight: Sequence[float] | torch.Tensor | None = None,
        smooth: float = 1.0,
        balance: ClassBalance = "none",
        balance_clip: float = 0.05,
        dice_weight: float = 1.0,
    ):
        super().__init__()
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
        if mode not in ("binary", "multiclass", "multilabel"):
            raise ValueError(f"unknown output mode {mode!r}")
        if mode == "multiclass" and name in ("bce", "bce_dice"):
            raise ValueError(f"loss {name!r} is for binary/multilabel output; use ce_dice, ce or dice")
        if mode != "multiclass" and name in ("ce", "ce_dice"):
            raise ValueError(f"loss {name!r} is for multiclass output; use bce_dice, bce or dice")
        if smooth <= 0:
            raise ValueError("smooth must be > 0 (it keeps Dice finite on empty patches)")
        if balance not in ("none", "default", "frequency"):
            raise ValueError(f"unknown class balance {balance!r}; expected none, default or frequency")
        if balance != "none" and mode == "multiclass":
            raise ValueError("class balancing applies to binary/multilabel (sigmoid) output; use class_weights")
        if not 0 < balance_clip < 0.5 or dice_weight < 0:
            raise ValueError("balance_clip must lie in (0, 0.5) and dice_weight be >= 0")
        self.balance, self.balance_clip, self.dice_weight = balance, float(balance_clip), float(dice_weight)
        self.last_per_channel: torch.Tensor | None = None
        self.name = name
        self.mode = mode
        self.channels = channels
        self.smooth = float(smooth)
        self.use_cross_entropy = _CROSS_ENTROPY[name]
        self.use_dice = _DICE[name]
        self.class_weights: torch.Tensor | None
        self.pos_weight: torch.Tensor | None
        self.register_buffer("class_weights", _weights(class_weights, channels, "class_weights"))
        if pos_weight is not None and mode == "multiclass":
            raise ValueError(
                "pos_weight applies to binary/multilabel (sigmoid) output only; use class_weights"
            )
        self.register_buffer("pos_weight", _weights(pos_weight, channels, "pos_weight"))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, mode={self.mode!r}, channels={self.channels}, smooth={self.smooth}, balance={self.balance!r}"

    def config(self) -> dict[str, Any]:
        """What a checkpoint records of the loss its run used."""
        return {"name": self.name, "balance": self.balance, "balance_clip": self.balance_clip, "dice_weight": self.dice_weight, "smooth": self.smooth}

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        if self.mode == "multiclass":
            return self._multiclass(logits, target, valid)
        return self._sigmoid(logits, target, valid)

    # -- binary / multilabel ------------------------------------------------------------------

    def _sigmoid(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        _check_logits(logits, self.channels)
        if target.ndim == logits.ndim - 1 and logits.shape[1] == 1:
            target = target.unsqueeze(1)
        if target.shape != logits.shape:
            raise ValueError(
                f"{self.mode} target must have the logits' shape {tuple(logits.shape)}; got {tuple(target.shape)}"
            )
        target = target.to(logits.dtype)
        mask = _valid_mask(valid, logits)
        mask = torch.ones_like(target) if mask is None else mask.expand_as(target)
        per_channel = logits.new_zeros(logits.shape[1])
        total = logits.new_zeros(())
        if self.use_cross_entropy:
            pos_weight = None if self.pos_weight is None else _per_channel(self.pos_weight, logits.ndim)
            per_voxel = F.binary_cross_entropy_with_logits(
                logits, target, reduction="none", pos_weight=pos_weight
            )
            weights = mask if self.balance == "none" else balance_weights(target, mask, self.balance, self.balance_clip) * mask
            dims = _reduce_dims(per_voxel)
            bce = (per_voxel * weights).sum(dim=dims) / weights.sum(dim=dims).clamp_min(1e-6)
            per_channel = per_channel + bce
            total = total + _channel_mean(bce, self.class_weights)
        if self.use_dice:
            dice = _soft_dice(torch.sigmoid(logits), target, mask, self.smooth)
            per_channel = per_channel + self.dice_weight * (1.0 - dice)
            total = total + self.dice_weight * (1.0 - _channel_mean(dice, self.class_weights))
        self.last_per_channel = per_channel.detach()
        return total

    # -- multiclass ---------------------------------------------------------------------------

    def _multiclass(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        _check_logits(logits, self.channels)
        if target.ndim == logits.ndim and target.shape[1] == 1:
            target = target[:, 0]
        expected = (logits.shape[0], *logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"multiclass target must have shape {expected} (labels); got {tuple(target.shape)}"
            )
        if target.is_floating_point():
            target = target.round()
        target = target.long()
        mask = _valid_mask(valid, logits)
        if mask is not None:
            # labels under padding may hold anything: make them a legal class, they are masked out anyway
            target = torch.where(mask[:, 0] > 0, target, torch.zeros_like(target))
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= self.channels):
            raise ValueError(f"multiclass target labels must lie in 0..{self.channels - 1}")
        total = logits.new_zeros(())
        if self.use_cross_entropy:
            per_voxel = F.cross_entropy(logits, target, reduction="none")
            weight = torch.ones_like(per_voxel) if self.class_weights is None else self.class_weights[target]
            if mask is not None:
                weight = weight * mask[:, 0]
            total = total + (per_voxel * weight).sum() / weight.sum().clamp_min(1e-8)
        if self.use_dice:
            probs = torch.softmax(logits, dim=1)[:, 1:]
            one_hot = F.one_hot(target, self.channels).movedim(-1, 1)[:, 1:].to(probs.dtype)
            weights = None if self.class_weights is None else self.class_weights[1:]
            total = total + self.dice_weight * (1.0 - _channel_mean(_soft_dice(probs, one_hot, mask, self.smooth), weights))
        self.last_per_channel = None
        return total


def make_loss(
    architecture: Mapping[str, Any] | ArchitectureConfig,
    *,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    pos_weight: Sequence[float] | torch.Tensor | None = None,
    smooth: float = 1.0,
    balance: ClassBalance = "none",
    balance_clip: float = 0.05,
    dice_weight: float = 1.0,
) -> SegmentationLoss:
    """The loss `architecture.loss` names, for `architecture.output_mode`.

    class_weights: one weight per output channel (binary / multilabel: weights the channels in the
        BCE and Dice means) or per class incl. background (multiclass: the CrossEntropy `weight`,
        a weighted mean over voxels; classes 1..K-1 also weight the Dice mean).
    pos_weight: binary / multilabel only; BCEWithLogits `pos_weight` per channel (> 1 raises the
        cost of missed foreground, e.g. n_background / n_foreground).
    smooth: added to the Dice numerator and denominator; keeps empty patches finite.
    balance, balance_clip: per-voxel class balancing of the BCE (`balance_weights`).
    dice_weight: weight of the Dice term (``*_dice`` losses and ``dice``).
    """
    config = _as_config(architecture)
    return SegmentationLoss(
        config.loss,
        "multilabel" if config.output_mode == "instance" else config.output_mode,  # instance: foreground + boundary channels
        config.output_channels,
        class_weights=class_weights,
        pos_weight=pos_weight,
        smooth=smooth,
        balance=balance,
        balance_clip=balance_clip,
        dice_weight=dice_weight,
    )


def balance_weights(target: torch.Tensor, valid: torch.Tensor, mode: ClassBalance, clip: float) -> torch.Tensor:
    """Per-voxel weights, per channel, from the batch's positive fraction p (over valid voxels).

    default: positives weighted by the negative frequency (1 - p) and negatives by p, each clipped to
    [clip, 1 - clip]; frequency: inverse frequency 1/p and 1/(1-p), normalised to mean 1 and clipped
    at 1/clip; none: 1.
    """
    if mode == "none":
        return torch.ones_like(target)
    dims = _reduce_dims(target)
    count = valid.sum(dim=dims).clamp_min(1.0)
    positive = (target * valid).sum(dim=dims) / count  # (C,)
    p = _per_channel(positive, target.ndim)
    if mode == "default":
        w_pos = (1 - p).clamp(clip, 1 - clip)
        w_neg = p.clamp(clip, 1 - clip)
    else:
        w_pos = (1 / p.clamp_min(1e-6)).clamp(max=1 / clip)
        w_neg = (1 / (1 - p).clamp_min(1e-6)).clamp(max=1 / clip)
        norm = (p * w_pos + (1 - p) * w_neg).clamp_min(1e-6)
        w_pos, w_neg = w_pos / norm, w_neg / norm
    return target * w_pos + (1 - target) * w_neg


# -- helpers -------------------------------------------------------------------------------------


def _weights(values: Sequence[float] | torch.Tensor | None, channels: int, name: str) -> torch.Tensor | None:
    if values is None:
        return None
    weights = torch.as_tensor(values, dtype=torch.float32).flatten()
    if weights.numel() != channels:
        raise ValueError(f"{name} needs {channels} values (one per output channel); got {weights.numel()}")
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError(f"{name} must be finite and >= 0")
    return weights


def _check_logits(logits: torch.Tensor, channels: int) -> None:
    if logits.ndim not in (4, 5) or logits.shape[1] != channels:
        raise ValueError(
            f"logits must be (N, {channels}, y, x) or (N, {channels}, z, y, x); got {tuple(logits.shape)}"
        )


def _valid_mask(valid: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """`valid` as float (N, 1, *sp) or, one mask per channel, (N, C, *sp); None when every voxel counts."""
    if valid is None:
        return None
    valid = torch.as_tensor(valid, device=logits.device)
    if valid.ndim == logits.ndim - 1:
        valid = valid.unsqueeze(1)
    shared = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(valid.shape) not in (shared, tuple(logits.shape)):
        raise ValueError(f"valid mask must have shape {shared} or {tuple(logits.shape)}; got {tuple(valid.shape)}")
    return (valid > 0).to(logits.dtype)


def _per_channel(values: torch.Tensor, ndim: int) -> torch.Tensor:
    return values.view(1, -1, *([1] * (ndim - 2)))


def _reduce_dims(t: torch.Tensor) -> list[int]:
    return [0, *range(2, t.ndim)]


def _soft_dice(
    probs: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, smooth: float
) -> torch.Tensor:
    """Per-channel soft Dice over batch and space (C,)."""
    if mask is not None:
        probs = probs * mask
        target = target * mask
    dims = _reduce_dims(probs)
    intersection = (probs * target).sum(dim=dims)
    denominator = probs.sum(dim=dims) + target.sum(dim=dims)
    return (2.0 * intersection + smooth) / (denominator + smooth)


def _channel_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-8)
