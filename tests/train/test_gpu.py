"""CUDA paths: mixed precision training and GPU prediction (skipped without a CUDA GPU, as in CI)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def test_training_on_cuda_uses_mixed_precision(make_project, fast_options):
    import torch

    from napari_training_assistant.train import train_project

    project = make_project()
    result = train_project(project, fast_options(device="cuda", epochs=2))
    assert result.status == "completed"
    decisions = {d.setting: d.value for d in project.config.auto_configuration_decisions}
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert decisions["precision"] == expected
    assert result.metrics["dice"] is not None


def test_prediction_on_cuda_matches_cpu():
    import torch

    from napari_training_assistant.model import build_model
    from napari_training_assistant.predict import predict_image

    torch.manual_seed(0)
    model = build_model({"preset": "small_unet", "depth": 3, "base_channels": 16}).eval()
    image = np.random.default_rng(0).random((1, 300, 420), dtype=np.float32)
    on_cpu = predict_image(model, image, tile_size=128)
    on_gpu = predict_image(model.cuda(), image, tile_size=128)
    assert np.abs(on_cpu - on_gpu).max() < 1e-3


def test_ddp_on_two_gpus(make_project, fast_options):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs")
    from napari_training_assistant.train import train_project

    result = train_project(make_project(), fast_options(device="cuda", devices=2))
    assert result.status == "completed"
