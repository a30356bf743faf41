"""ONNX and TorchScript exports of the U-Net, and its self-contained source file: each reproduces the
PyTorch model on inputs of other sizes and batch sizes than the one traced."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from napari_training_assistant.model.architecture_source import CALLABLE, architecture_source
from napari_training_assistant.model.torch_export import (
    example_input,
    export_onnx,
    export_torchscript,
    minimum_size,
    size_step,
)
from napari_training_assistant.model.unet import build_model

ARCHITECTURES = {
    "2d-instance": {"depth": 2, "base_channels": 4, "output_mode": "instance", "output_channels": 2},
    "3d-anisotropic": {
        "spatial_dims": "3d",
        "depth": 2,
        "base_channels": 4,
        "anisotropic_levels": [0],
        "upsampling": "trilinear",
        "normalization": "group",
        "input_channels": 2,
    },
}


def _model(name: str):
    torch.manual_seed(3)
    model = build_model(ARCHITECTURES[name]).eval()
    with torch.no_grad():  # batch-norm statistics away from the identity, so folding or tracing bugs show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model


def _other_sizes(model):
    step = size_step(model)
    return [tuple(s * k for s in step) for k in (2, 3)] + [tuple(s * (2 + i) for i, s in enumerate(step))]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_onnx_matches_pytorch_on_other_sizes(tmp_path, name):
    ort = pytest.importorskip("onnxruntime")
    model = _model(name)
    path = tmp_path / "model.onnx"
    assert export_onnx(model, path) >= 13
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # weights inside, no external data file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in _other_sizes(model):
        x = example_input(model, size, batch=3)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_torchscript_matches_pytorch_on_other_sizes(tmp_path, name):
    model = _model(name)
    export_torchscript(model, tmp_path / "model.pt")
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    for size in _other_sizes(model):
        x = example_input(model, size, batch=2)
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_minimum_size_is_two_pooling_factors():
    model = _model("3d-anisotropic")
    assert size_step(model) == (2, 4, 4)
    assert minimum_size(model) == (4, 8, 8)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_generated_source_builds_the_same_network(tmp_path, name):
    model = _model(name)
    file = tmp_path / "unet_source.py"
    file.write_text(architecture_source())
    spec = importlib.util.spec_from_file_location("unet_source", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = getattr(module, CALLABLE)(**model.architecture).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = example_input(model, tuple(s * 3 + 1 for s in size_step(model)))  # odd size: its own padding runs
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_generated_source_imports_torch_only():
    source = architecture_source()
    assert "napari_training_assistant" not in source.split('"""', 2)[2]  # only the docstring names the package
    assert "import pydantic" not in source and "from pydantic" not in source
    compile(source, "unet_source.py", "exec")
