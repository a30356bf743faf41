"""The spec keys of the partner-assignment training regime, shared by every writer of point specs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PARTNER_WINDOW: tuple[int, int, int] = (8, 48, 48)
LOSS_CENTRE: tuple[int, int, int] = (4, 24, 24)  # the part of each window the loss (and val Dice) sees


def partner_regime(window: Sequence[int]) -> dict[str, Any]:
    """Spec keys (`targets` and `training`) that train a model for `nta assign-synapses`: a centre marker of
    the synapse as a second input; targets the segments under each line's start (pre) and end (post); the
    loss on the centre of the window (the contact and its surroundings, where partners are voted), without
    class balancing (the other cell is the negative that matters) plus a Dice term; epochs chosen for a
    10 minute budget (`training.epochs` unset)."""
    return {
        "targets": "line_segments",
        "training": {
            "lr": 0.002,
            "batch_size": 8,
            "time_budget_minutes": 10,
            "loss_crop_pad": [max(0, (w - keep) // 2) for w, keep in zip(window, LOSS_CENTRE, strict=True)],
            "class_balance": "none",
            "dice_weight": 1.0,
            "centre_marker": True,
        },
    }
