"""Epochs of a point-windowed run from the number of points and a time budget.

One epoch trains every training window once (forward and backward) and validates every validation window
(forward only, about a third of a training step). On the CPU the cost of a training sample is measured (a
few forward/backward passes of a copy of the network on a batch of windows, seconds); elsewhere, and for
runs of several processes (DDP: every rank must plan the same number of epochs, so nothing is measured), it
is estimated from the U-Net's FLOPs (`CPU_FLOPS_PER_CORE`, or a conservative `GPU_FLOPS`) and divided by the
number of processes. The run gets as many epochs as fit in
`POINT_BUDGET_FILL` of the budget (with `LOOP_OVERHEAD` for the rest of the loop), between `POINT_EPOCHS`
(low, high).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .estimates import forward_flops_per_sample, pooling_factors

GPU_FLOPS = 2e12  # small 3D windows keep a GPU far from its peak
POINT_EPOCHS = (5, 300)
POINT_BUDGET_FILL = 0.8  # leave room for caching, checkpoints and the final evaluation
# what the loop adds to forward/backward (reading windows, augmentation, loss, metrics, validation
# bookkeeping): measured ~1.2x for 8x48x48 windows in batches of 8 on 2 CPU cores
LOOP_OVERHEAD = 1.25
MEASURE_BATCH = 2
MEASURE_REPEATS = 2


@dataclass(frozen=True)
class EpochPlan:
    epochs: int
    seconds_per_epoch: float
    reason: str


def measured_seconds_per_sample(model, window: Sequence[int], input_channels: int) -> float:
    """Median time of a forward/backward pass of a copy of `model` (on the CPU), per window."""
    import copy

    import torch

    net = copy.deepcopy(model).to("cpu").train()
    batch = torch.randn(MEASURE_BATCH, input_channels, *window)
    times = []
    for _ in range(MEASURE_REPEATS + 1):  # the first pass warms up the kernels
        started = time.perf_counter()
        net.zero_grad(set_to_none=True)
        net(batch).float().mean().backward()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:]) / MEASURE_BATCH


def estimated_seconds_per_sample(
    window: Sequence[int],
    depth: int,
    base_channels: int,
    anisotropic_levels: Sequence[int],
    input_channels: int,
    output_channels: int,
    flops_per_second: float = GPU_FLOPS,
) -> float:
    factors = pooling_factors("3d", depth, anisotropic_levels)
    return 3 * forward_flops_per_sample(window, depth, base_channels, factors, input_channels, output_channels) / flops_per_second


def point_epochs(*, seconds_per_sample: float, how: str, train_points: int, val_points: int, budget_minutes: float) -> EpochPlan:
    seconds = LOOP_OVERHEAD * seconds_per_sample * (max(1, train_points) + val_points / 3)
    low, high = POINT_EPOCHS
    fit = math.floor(budget_minutes * 60 * POINT_BUDGET_FILL / max(seconds, 1e-9))
    epochs = max(low, min(high, fit))
    reason = (
        f"{train_points} train + {val_points} val windows at {seconds_per_sample:.3f} s per training window ({how}) "
        f"~ {seconds:.1f} s per epoch; {POINT_BUDGET_FILL:.0%} of {budget_minutes:g} min -> {fit} epochs, "
        f"clamped to {low}..{high} -> {epochs}"
    )
    return EpochPlan(epochs, seconds, reason)
