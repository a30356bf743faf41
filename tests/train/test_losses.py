"""Losses: values on perfect / awful predictions, gradients, the valid mask, empty targets, shapes."""

from __future__ import annotations

import pytest
import torch

from napari_training_assistant.project.schemas.architecture import default_architecture
from napari_training_assistant.train.losses import LOSSES, make_loss

torch.manual_seed(0)

SPATIAL = {"2d": (12, 10), "3d": (4, 8, 6)}
MODES = [("binary", "bce_dice"), ("binary", "bce"), ("binary", "dice")]
MODES += [("multilabel", "bce_dice"), ("multilabel", "bce"), ("multilabel", "dice")]
MODES += [("multiclass", "ce_dice"), ("multiclass", "ce"), ("multiclass", "dice")]


def arch(mode: str, loss: str, dims: str = "2d", classes: int = 3, channels: int = 2):
    if mode == "binary":
        return default_architecture(dims, "binary", loss=loss)
    if mode == "multiclass":
        return default_architecture(dims, "multiclass", num_classes=classes, loss=loss)
    return default_architecture(dims, "multilabel", output_channels=channels, loss=loss)


def make_target(mode: str, dims: str, n: int = 2, classes: int = 3, channels: int = 2) -> torch.Tensor:
    sp = SPATIAL[dims]
    if mode == "binary":
        return (torch.rand(n, 1, *sp) > 0.6).float()
    if mode == "multiclass":
        return torch.randint(0, classes, (n, *sp))
    return (torch.rand(n, channels, *sp) > 0.6).float()


def perfect_logits(mode: str, target: torch.Tensor, classes: int = 3, scale: float = 30.0) -> torch.Tensor:
    if mode == "multiclass":
        one_hot = torch.nn.functional.one_hot(target, classes).movedim(-1, 1).float()
        return scale * (2 * one_hot - 1)
    return scale * (2 * target - 1)


@pytest.mark.parametrize("dims", ["2d", "3d"])
@pytest.mark.parametrize(("mode", "name"), MODES)
def test_perfect_is_near_zero_and_awful_is_large(mode, name, dims):
    loss = make_loss(arch(mode, name, dims))
    target = make_target(mode, dims)
    perfect = loss(perfect_logits(mode, target), target)
    awful = loss(-perfect_logits(mode, target), target)
    assert perfect.ndim == 0
    assert perfect.item() < 1e-2
    assert awful.item() > 0.9
    # blending from awful to perfect decreases the loss monotonically
    values = [
        loss(a * perfect_logits(mode, target, scale=5.0), target).item() for a in (-1.0, -0.5, 0.0, 0.5, 1.0)
    ]
    assert all(b < a for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize("dims", ["2d", "3d"])
@pytest.mark.parametrize(("mode", "name"), MODES)
def test_gradient_flows_and_is_finite(mode, name, dims):
    loss = make_loss(arch(mode, name, dims))
    target = make_target(mode, dims)
    channels = 3 if mode == "multiclass" else (1 if mode == "binary" else 2)
    logits = torch.randn(2, channels, *SPATIAL[dims], requires_grad=True)
    value = loss(logits, target)
    value.backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("dims", ["2d", "3d"])
@pytest.mark.parametrize(("mode", "name"), MODES)
def test_valid_mask_excludes_voxels(mode, name, dims):
    loss = make_loss(arch(mode, name, dims))
    target = make_target(mode, dims)
    channels = 3 if mode == "multiclass" else (1 if mode == "binary" else 2)
    sp = SPATIAL[dims]
    valid = torch.ones(2, 1, *sp)
    valid[..., -3:] = 0  # right-hand padding
    logits = torch.randn(2, channels, *sp, requires_grad=True)
    base = loss(logits, target, valid)
    changed = logits.detach().clone()
    changed[..., -3:] = torch.randn_like(changed[..., -3:]) * 50
    other_target = target.clone()
    other_target[..., -3:] = 1 - other_target[..., -3:] if mode != "multiclass" else 2
    assert loss(changed, other_target, valid).item() == pytest.approx(base.item(), abs=1e-6)
    # no gradient reaches the invalid voxels
    base.backward()
    assert logits.grad[..., -3:].abs().max() == 0
    # (N, *sp) masks work the same as (N, 1, *sp)
    assert loss(logits, target, valid[:, 0]).item() == pytest.approx(base.item(), abs=1e-6)


@pytest.mark.parametrize(("mode", "name"), MODES)
def test_all_invalid_gives_zero_not_nan(mode, name):
    loss = make_loss(arch(mode, name))
    target = make_target(mode, "2d")
    channels = 3 if mode == "multiclass" else (1 if mode == "binary" else 2)
    logits = torch.randn(2, channels, *SPATIAL["2d"], requires_grad=True)
    value = loss(logits, target, torch.zeros(2, 1, *SPATIAL["2d"]))
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    value.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("dims", ["2d", "3d"])
@pytest.mark.parametrize(("mode", "name"), MODES)
def test_empty_target_is_finite(mode, name, dims):
    loss = make_loss(arch(mode, name, dims))
    target = torch.zeros_like(make_target(mode, dims))
    channels = 3 if mode == "multiclass" else (1 if mode == "binary" else 2)
    for logits in (
        torch.randn(2, channels, *SPATIAL[dims]),
        torch.full((2, channels, *SPATIAL[dims]), -40.0),
    ):
        logits.requires_grad_(True)
        value = loss(logits, target)
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(logits.grad).all()
    # predicting nothing on an empty patch is (nearly) free
    assert loss(perfect_logits(mode, target), target).item() < 1e-2


def test_each_name_selects_a_different_function():
    torch.manual_seed(1)
    target = make_target("binary", "2d")
    logits = torch.randn(2, 1, *SPATIAL["2d"])
    values = {
        name: make_loss(arch("binary", name))(logits, target).item() for name in ("bce_dice", "bce", "dice")
    }
    assert len(set(values.values())) == 3
    assert values["bce_dice"] == pytest.approx(values["bce"] + values["dice"], rel=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert values["bce"] == pytest.approx(bce.item(), rel=1e-6)
    probs = torch.sigmoid(logits)
    dice = (2 * (probs * target).sum() + 1) / (probs.sum() + target.sum() + 1)
    assert values["dice"] == pytest.approx(1 - dice.item(), rel=1e-6)

    target = make_target("multiclass", "2d")
    logits = torch.randn(2, 3, *SPATIAL["2d"])
    values = {
        name: make_loss(arch("multiclass", name))(logits, target).item() for name in ("ce_dice", "ce", "dice")
    }
    assert len(set(values.values())) == 3
    assert values["ce_dice"] == pytest.approx(values["ce"] + values["dice"], rel=1e-6)
    assert values["ce"] == pytest.approx(torch.nn.functional.cross_entropy(logits, target).item(), rel=1e-6)
    probs = torch.softmax(logits, 1)
    one_hot = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float()
    per_class = [
        (2 * (probs[:, c] * one_hot[:, c]).sum() + 1) / (probs[:, c].sum() + one_hot[:, c].sum() + 1)
        for c in (1, 2)
    ]
    assert values["dice"] == pytest.approx(1 - (per_class[0] + per_class[1]).item() / 2, rel=1e-6)
    assert set(LOSSES) == {"bce_dice", "ce_dice", "bce", "ce", "dice"}


def test_loss_names_match_the_schema():
    from typing import get_args

    from napari_training_assistant.project.schemas.architecture import ArchitectureConfig

    assert set(get_args(ArchitectureConfig.model_fields["loss"].annotation)) == set(LOSSES)


def test_dict_architecture_and_loss_attributes():
    loss = make_loss(arch("multilabel", "dice").model_dump())
    assert loss.name == "dice" and loss.mode == "multilabel"
    assert loss.use_dice and not loss.use_cross_entropy


def test_multilabel_dice_is_mean_over_channels():
    target = torch.zeros(1, 2, 4, 4)
    target[:, 0, :2] = 1  # channel 0 has foreground, channel 1 is empty
    logits = perfect_logits("multilabel", target)
    logits[:, 0] = -logits[:, 0]  # channel 0 totally wrong, channel 1 perfect
    value = make_loss(arch("multilabel", "dice"))(logits, target).item()
    # channel 0: Dice ~ 1/(8+8+1) -> loss ~ 0.94; channel 1: Dice ~ 1 -> loss ~ 0 ; mean ~ 0.47
    assert value == pytest.approx((1 - 1 / 17) / 2, abs=1e-3)


def test_class_weights_and_pos_weight():
    target = make_target("multiclass", "2d")
    logits = torch.randn(2, 3, *SPATIAL["2d"])
    weights = torch.tensor([0.2, 1.0, 3.0])
    weighted = make_loss(arch("multiclass", "ce"), class_weights=weights)(logits, target)
    expected = torch.nn.functional.cross_entropy(logits, target, weight=weights)
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-5)
    # equal weights change nothing
    same = make_loss(arch("multiclass", "ce_dice"), class_weights=[2.0, 2.0, 2.0])(logits, target)
    assert same.item() == pytest.approx(
        make_loss(arch("multiclass", "ce_dice"))(logits, target).item(), rel=1e-5
    )

    target = make_target("binary", "2d")
    logits = torch.randn(2, 1, *SPATIAL["2d"])
    pos = make_loss(arch("binary", "bce"), pos_weight=[4.0])(logits, target)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor([4.0])
    )
    assert pos.item() == pytest.approx(expected.item(), rel=1e-5)

    with pytest.raises(ValueError, match="3 values"):
        make_loss(arch("multiclass", "ce"), class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="pos_weight"):
        make_loss(arch("multiclass", "ce"), pos_weight=[1.0, 1.0, 1.0])


def test_accepted_target_shapes_and_errors():
    loss = make_loss(arch("binary", "bce_dice"))
    target = make_target("binary", "2d")
    logits = torch.randn(2, 1, *SPATIAL["2d"])
    assert loss(logits, target[:, 0]).item() == pytest.approx(loss(logits, target).item())
    with pytest.raises(ValueError, match="shape"):
        loss(logits, target[:, :, :4])
    mc = make_loss(arch("multiclass", "ce_dice"))
    labels = make_target("multiclass", "2d")
    logits = torch.randn(2, 3, *SPATIAL["2d"])
    assert mc(logits, labels[:, None]).item() == pytest.approx(mc(logits, labels).item())
    assert mc(logits, labels.float()).item() == pytest.approx(mc(logits, labels).item())
    with pytest.raises(ValueError, match="0..2"):
        mc(logits, labels + 3)
    with pytest.raises(ValueError, match="logits"):
        mc(torch.randn(2, 2, *SPATIAL["2d"]), labels)


def test_multiclass_labels_under_padding_may_be_anything():
    mc = make_loss(arch("multiclass", "ce_dice"))
    labels = make_target("multiclass", "2d")
    valid = torch.ones(2, 1, *SPATIAL["2d"])
    valid[..., :2, :] = 0
    junk = labels.clone()
    junk[..., :2, :] = 255
    logits = torch.randn(2, 3, *SPATIAL["2d"])
    assert mc(logits, junk, valid).item() == pytest.approx(mc(logits, labels, valid).item(), abs=1e-6)


def test_mode_and_loss_must_agree():
    from napari_training_assistant.train.losses import SegmentationLoss

    with pytest.raises(ValueError, match="multiclass"):
        SegmentationLoss("ce", "binary", 1)
    with pytest.raises(ValueError, match="binary/multilabel"):
        SegmentationLoss("bce_dice", "multiclass", 3)
    with pytest.raises(ValueError, match="unknown loss"):
        SegmentationLoss("focal", "binary", 1)


def test_half_precision_logits_give_float32_loss():
    loss = make_loss(arch("binary", "bce_dice"))
    target = make_target("binary", "2d")
    value = loss(torch.randn(2, 1, *SPATIAL["2d"]).to(torch.bfloat16), target)
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
