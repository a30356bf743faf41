"""expected_state_shapes and load_state_into."""

from __future__ import annotations

import pytest
import torch

from napari_training_assistant.model import build_model, expected_state_shapes, load_state_into
from napari_training_assistant.project.errors import CheckpointError
from napari_training_assistant.project.schemas.architecture import default_architecture

ARCHS = [
    {"depth": 2, "base_channels": 4},
    {"depth": 2, "base_channels": 4, "normalization": "none", "upsampling": "bilinear"},
    {"depth": 1, "base_channels": 6, "normalization": "group", "input_channels": 2},
    default_architecture("3d", depth=2, base_channels=4, anisotropic_levels=[0], normalization="instance"),
]


@pytest.mark.parametrize("arch", ARCHS)
def test_expected_shapes_match_built_state_dict(arch):
    built = {k: tuple(v.shape) for k, v in build_model(arch).state_dict().items()}
    assert expected_state_shapes(arch) == built


def test_load_fitting_state():
    source, target = build_model(ARCHS[0]), build_model(ARCHS[0])
    assert load_state_into(target, source.state_dict()) is target
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)


def _error(state: dict) -> str:
    with pytest.raises(CheckpointError) as info:
        load_state_into(build_model(ARCHS[0]), state)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shape_mismatch_names_key_and_shapes():
    message = _error(build_model({"depth": 2, "base_channels": 8}).state_dict())
    assert "encoder.0.conv1.conv.weight (model (4, 1, 3, 3), weights (8, 1, 3, 3))" in message
    assert "more)" in message


def test_missing_and_unexpected_keys_are_named():
    state = build_model(ARCHS[0]).state_dict()
    del state["head.conv.bias"]
    state["extra.weight"] = torch.zeros(1)
    message = _error(state)
    assert "1 missing key(s): head.conv.bias" in message
    assert "1 unexpected key(s): extra.weight" in message


def test_other_architecture_is_rejected():
    message = _error(build_model({"depth": 2, "base_channels": 4, "normalization": "none"}).state_dict())
    assert "missing" in message and "unexpected" in message
