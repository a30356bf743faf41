"""The point-window regime: class balancing, the masked loss, the Lightning module and the montage."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from napari_training_assistant.model import build_model
from napari_training_assistant.train.losses import balance_weights
from napari_training_assistant.train.montage import write_montage
from napari_training_assistant.train.point_extras import point_window_module, window_loss

WINDOW = (8, 24, 24)
ARCH = {
    "spatial_dims": "3d",
    "preset": "custom",
    "depth": 2,
    "base_channels": 4,
    "normalization": "batch",
    "output_mode": "multilabel",
    "output_channels": 2,
    "input_channels": 1,
    "activation": "sigmoid",
    "anisotropic_levels": [0],
}


def WindowLoss(mode="default", clip=0.05, dice_weight=0.0):  # noqa: N802 (the regime's loss, with its per-channel terms)
    loss = window_loss({**ARCH, "loss": "bce_dice" if dice_weight > 0 else "bce"}, mode, clip, dice_weight)

    def call(logits, target, valid):
        total = loss(logits, target, valid)
        return total, loss.last_per_channel

    return call


def _target(fractions, shape=(2, 100)) -> torch.Tensor:
    """(1, C, N) with the first `fraction * N` voxels of channel c positive."""
    target = torch.zeros((1, *shape))
    for c, f in enumerate(fractions):
        target[0, c, : int(round(f * shape[1]))] = 1
    return target


# ---------------------------------------------------------------------------------- balancing
def test_balance_none_is_all_ones():
    target = _target([0.25, 0.5])
    assert torch.equal(balance_weights(target, torch.ones_like(target), "none", 0.05), torch.ones_like(target))


def test_balance_default_weights_positives_by_the_negative_frequency():
    target = _target([0.25, 0.01])
    weights = balance_weights(target, torch.ones_like(target), "default", 0.05)
    # channel 0: p = 0.25 -> positives 0.75, negatives 0.25
    assert torch.allclose(weights[0, 0, :25], torch.tensor(0.75))
    assert torch.allclose(weights[0, 0, 25:], torch.tensor(0.25))
    # channel 1: p = 0.01 -> positives 0.99 clipped to 0.95, negatives 0.01 clipped to 0.05
    assert torch.allclose(weights[0, 1, :1], torch.tensor(0.95))
    assert torch.allclose(weights[0, 1, 1:], torch.tensor(0.05))
    # clip 0.3: both weights in [0.3, 0.7]
    weights = balance_weights(target, torch.ones_like(target), "default", 0.3)
    assert torch.allclose(weights[0, 0, :25], torch.tensor(0.7)) and torch.allclose(weights[0, 0, 25:], torch.tensor(0.3))


def test_balance_counts_only_valid_voxels():
    target = _target([0.25, 0.25])
    valid = torch.ones_like(target)
    valid[0, :, 50:] = 0  # 25 positives among 50 valid voxels: p = 0.5
    weights = balance_weights(target, valid, "default", 0.05)
    assert torch.allclose(weights, torch.full_like(weights, 0.5))


def test_balance_frequency_is_inverse_frequency_normalised_to_mean_one():
    target = _target([0.25, 0.01])
    weights = balance_weights(target, torch.ones_like(target), "frequency", 0.05)
    # p = 0.25: 1/p = 4, 1/(1-p) = 4/3, mean 0.25 * 4 + 0.75 * 4/3 = 2 -> 2 and 2/3
    assert torch.allclose(weights[0, 0, :25], torch.tensor(2.0))
    assert torch.allclose(weights[0, 0, 25:], torch.tensor(2.0 / 3.0))
    # p = 0.01: 1/p = 100 clipped at 1/clip = 20, 1/0.99; mean 0.2 + 1 = 1.2
    assert torch.allclose(weights[0, 1, :1], torch.tensor(20.0 / 1.2))
    assert torch.allclose(weights[0, 1, 1:], torch.tensor((1 / 0.99) / 1.2))
    assert torch.allclose(weights.mean(dim=-1), torch.ones(1, 2))


def test_balance_of_an_empty_channel_is_finite():
    target = _target([0.0, 1.0])
    for mode in ("default", "frequency"):
        weights = balance_weights(target, torch.ones_like(target), mode, 0.05)
        assert torch.isfinite(weights).all() and (weights > 0).all()


# ----------------------------------------------------------------------------------------- loss
def _batch(seed=0, shape=(2, 2, 4, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g)
    target = (torch.rand(shape, generator=g) > 0.7).float()
    valid = torch.ones(shape)
    valid[:, 0, :, :4] = 0
    valid[1, 1] = 0
    return logits, target, valid


@pytest.mark.parametrize("mode", ["none", "default", "frequency"])
@pytest.mark.parametrize("dice_weight", [0.0, 0.5])
def test_loss_ignores_invalid_voxels(mode, dice_weight):
    loss_fn = WindowLoss(mode, 0.05, dice_weight)
    logits, target, valid = _batch()
    loss, per_channel = loss_fn(logits, target, valid)
    changed = torch.where(valid > 0, logits, torch.randn_like(logits) * 50)
    flipped = torch.where(valid > 0, target, 1 - target)  # even the targets there do not count
    loss2, per_channel2 = loss_fn(changed, flipped, valid)
    assert torch.allclose(loss, loss2) and torch.allclose(per_channel, per_channel2)
    assert per_channel.shape == (2,) and torch.isclose(loss, per_channel.mean())
    moved = logits.clone()
    moved[valid > 0] += 1.0
    assert not torch.isclose(loss_fn(moved, target, valid)[0], loss)


def test_unbalanced_loss_is_the_mean_bce_over_valid_voxels():
    logits, target, valid = _batch(1)
    loss, per_channel = WindowLoss("none")(logits, target, valid)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    for c in range(2):
        mask = valid[:, c] > 0
        assert torch.isclose(per_channel[c], bce[:, c][mask].mean())


def test_zero_valid_gives_zero_with_a_gradient():
    logits, target, _ = _batch()
    logits.requires_grad_(True)
    loss, per_channel = WindowLoss("default", dice_weight=1.0)(logits, target, torch.zeros_like(target))
    assert float(loss.detach()) == 0.0 and torch.equal(per_channel, torch.zeros(2))
    assert loss.requires_grad
    loss.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


def test_dice_weight_adds_a_soft_dice_term():
    logits, target, valid = _batch(2)
    plain, plain_channels = WindowLoss("default", dice_weight=0.0)(logits, target, valid)
    loss, channels = WindowLoss("default", dice_weight=2.0)(logits, target, valid)
    prob = torch.sigmoid(logits) * valid
    dims = [0, 2, 3, 4]
    dice = (2 * (prob * target).sum(dims) + 1) / (prob.sum(dims) + (target * valid).sum(dims) + 1)
    assert torch.allclose(channels, plain_channels + 2.0 * (1 - dice))
    assert torch.isclose(loss, plain + 2.0 * (1 - dice).mean())
    assert loss > plain


def test_valid_with_one_channel_broadcasts():
    logits, target, valid = _batch(3)
    one = valid[:, :1].clone()
    loss, _ = WindowLoss("default")(logits, target, one)
    full, _ = WindowLoss("default")(logits, target, one.expand_as(target).contiguous())
    assert torch.isclose(loss, full)


# --------------------------------------------------------------------------------------- module
class RandomWindows(Dataset):
    """Windows whose targets are learnable from the image: pre = bright voxels, post = dark voxels."""

    def __init__(self, n: int, seed: int = 0, window=WINDOW):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand((n, 1, *window), generator=g)
        self.targets = torch.cat([self.images > 0.7, self.images < 0.2], dim=1).float()
        self.valid = torch.ones_like(self.targets)
        self.valid[:, :, :, :2] = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "target": self.targets[i], "valid": self.valid[i], "nonzero_fraction": torch.tensor(1.0)}


def _module(tmp_path=None, **options):
    torch.manual_seed(0)
    return point_window_module(build_model(ARCH), ARCH, learning_rate=5e-3, epochs=1, montage_dir=tmp_path, **options)


def test_training_steps_reduce_the_loss():
    module = _module()
    optimizer = module.configure_optimizers()["optimizer"]
    batch = next(iter(DataLoader(RandomWindows(2, window=(8, 16, 16)), batch_size=2)))
    module.log = lambda *a, **k: None  # no trainer attached
    losses = []
    for step in range(6):
        optimizer.zero_grad()
        out = module.training_step(batch, step)
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] * 0.95, losses


def test_validation_logs_per_channel_dice_and_constant_baseline(tmp_path):
    module = _module(tmp_path / "run", dice_weight=0.5)
    data = RandomWindows(6, seed=1, window=(8, 16, 16))
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=2,
    )
    trainer.fit(module, DataLoader(data, batch_size=2), DataLoader(data, batch_size=4))
    metrics = trainer.callback_metrics
    for key in ("train_loss", "train_loss_pre", "train_loss_post", "val_loss", "val_dice", "val_iou",
                "val_dice_pre", "val_dice_post", "val_iou_pre", "val_iou_post"):  # fmt: skip
        assert key in metrics and torch.isfinite(metrics[key]), key
    scores = module.last_val_scores
    assert len(scores["dice_per_class"]) == 2
    assert float(metrics["val_dice_pre"]) == pytest.approx(float(scores["dice_per_class"][0]))
    # the constant (all positive) predictor: 2P / (P + V) over the valid voxels of each channel
    valid = data.valid.amin(dim=1, keepdim=True)
    positives = (data.targets * valid).sum(dim=(0, 2, 3, 4))
    voxels = valid.sum()
    expected = (2 * positives / (positives + voxels)).tolist()
    assert scores["constant_dice_per_class"] == pytest.approx(expected, rel=1e-6)
    assert 0.2 < expected[0] < 0.6 and 0.2 < expected[1] < 0.5
    montage = tmp_path / "run" / "montage_epoch_001.png"
    assert montage.is_file() and montage.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_montage_png(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.rand((3, 2, *WINDOW), generator=g)
    targets = (torch.rand((3, 2, *WINDOW), generator=g) > 0.5).float()
    predictions = torch.rand((3, 2, *WINDOW), generator=g)
    path = write_montage(tmp_path / "sub" / "m.png", images, targets, predictions, ("pre", "post"))
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(path) as picture:
        width, height = picture.size
    assert width > height  # 5 columns (image + 2 x target/prediction), 3 rows
    # 2D windows and unnamed extra channels work too
    path = write_montage(tmp_path / "m2.png", images[:1, :, 0], targets[:1, :, 0].repeat(1, 2, 1, 1), predictions[:1, :, 0].repeat(1, 2, 1, 1), ("a",))
    assert path.is_file()
