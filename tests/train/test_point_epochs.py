"""Epochs of point-windowed runs chosen from the number of points and the time budget."""

from __future__ import annotations

import pytest
import torch

from napari_training_assistant.train.autoconfig.point_epochs import (
    LOOP_OVERHEAD,
    POINT_BUDGET_FILL,
    POINT_EPOCHS,
    estimated_seconds_per_sample,
    measured_seconds_per_sample,
    point_epochs,
)


def test_epochs_fill_the_budget_and_say_why():
    plan = point_epochs(seconds_per_sample=0.1, how="measured", train_points=100, val_points=30, budget_minutes=10)
    per_epoch = LOOP_OVERHEAD * 0.1 * (100 + 30 / 3)
    assert plan.seconds_per_epoch == pytest.approx(per_epoch)
    assert plan.epochs == int(600 * POINT_BUDGET_FILL // per_epoch)
    assert plan.epochs * plan.seconds_per_epoch <= 600
    assert "100 train + 30 val" in plan.reason and f"-> {plan.epochs}" in plan.reason


@pytest.mark.parametrize(
    ("points", "budget", "expected"),
    [(100_000, 1, POINT_EPOCHS[0]), (1, 10_000, POINT_EPOCHS[1])],
)
def test_epochs_are_clamped(points, budget, expected):
    plan = point_epochs(seconds_per_sample=0.5, how="x", train_points=points, val_points=0, budget_minutes=budget)
    assert plan.epochs == expected


def test_more_points_or_less_time_give_fewer_epochs():
    def epochs(points, minutes):
        return point_epochs(seconds_per_sample=0.05, how="x", train_points=points, val_points=10, budget_minutes=minutes).epochs

    assert epochs(100, 10) > epochs(400, 10)
    assert epochs(100, 10) > epochs(100, 3)


def test_measured_cost_is_positive_and_leaves_the_model_untouched():
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.Conv3d(4, 2, 1))
    before = [p.detach().clone() for p in net.parameters()]
    seconds = measured_seconds_per_sample(net, (4, 16, 16), 2)
    assert 0 < seconds < 10
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert all(p.grad is None for p in net.parameters())


def test_estimate_grows_with_the_window():
    small = estimated_seconds_per_sample((8, 48, 48), 3, 16, [0, 1, 2], 2, 2)
    large = estimated_seconds_per_sample((16, 64, 64), 3, 16, [0, 1, 2], 2, 2)
    assert 0 < small < large


def test_runs_of_several_processes_plan_the_same_epochs_on_every_rank():
    """DDP ranks must agree: nothing is measured, the FLOP estimate is split over the processes."""
    from types import SimpleNamespace

    from napari_training_assistant.data.synthetic_em import spec_dict
    from napari_training_assistant.train.point_run import architecture_for, plan_epochs
    from napari_training_assistant.train.point_spec import PointSpec

    spec = PointSpec.model_validate({**spec_dict(), "project": "p"})
    architecture = architecture_for(spec).model_dump(mode="json")
    inputs = SimpleNamespace(point_count=lambda split: 144 if split == "train" else 48)

    class Unmeasurable(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("a multi-process run must not measure")

    one, two = (plan_epochs(spec, architecture, inputs, "cpu", Unmeasurable(), processes=n) for n in (2, 4))
    again = plan_epochs(spec, architecture, inputs, "cpu", Unmeasurable(), processes=2)
    assert one == again and "estimated from FLOPs" in one.reason and "2 process(es)" in one.reason
    assert two.seconds_per_epoch == pytest.approx(one.seconds_per_epoch / 2)
    single = plan_epochs(spec, architecture, inputs, "cpu", torch.nn.Conv3d(2, 2, 1), processes=1)
    assert "measured" in single.reason
