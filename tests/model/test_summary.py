"""describe: counted from the built module, on the meta device."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_training_assistant.model import build_model, describe
from napari_training_assistant.model.summary import describe_module
from napari_training_assistant.model.unet import build_unallocated
from napari_training_assistant.project.schemas.architecture import default_architecture


def test_default_summary():
    info = describe({})
    assert info["feature_channels"] == [32, 64, 128, 256, 512]
    assert (info["encoder_levels"], info["bottleneck_levels"], info["decoder_levels"]) == (4, 1, 4)
    assert info["main_conv_layers"] == 18
    assert info["upsampling_layers"] == 4
    assert info["final_projection_layers"] == 1
    assert info["spatial_dims"] == "2d"
    assert info["pool_factors"] == [[2, 2]] * 4
    assert info["parameters"] == sum(p.numel() for p in build_model({}).parameters())
    assert "18 conv" in info["text"] and "\n" not in info["text"]


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_counts_follow_depth(depth: int):
    info = describe({"depth": depth, "base_channels": 4})
    assert info["main_conv_layers"] == 4 * depth + 2
    assert info["upsampling_layers"] == info["encoder_levels"] == info["decoder_levels"] == depth
    assert info["feature_channels"] == [4 * 2**i for i in range(depth + 1)]


def test_3d_anisotropic_summary():
    info = describe(default_architecture("3d", depth=3, base_channels=4, anisotropic_levels=[0]))
    assert info["spatial_dims"] == "3d"
    assert info["pool_factors"] == [[1, 2, 2], [2, 2, 2], [2, 2, 2]]


def test_bilinear_upsampling_conv_is_not_a_main_conv():
    info = describe({"depth": 2, "base_channels": 4, "upsampling": "bilinear"})
    assert (info["main_conv_layers"], info["upsampling_layers"]) == (10, 2)


def test_counts_come_from_the_module_not_the_descriptor():
    model = build_model({"depth": 2, "base_channels": 4})
    model.decoder[0] = nn.Identity()
    info = describe_module(model)
    assert info["decoder_levels"] == 1
    assert info["main_conv_layers"] == 8


def test_describe_builds_without_allocating_weights():
    model = build_unallocated({})
    assert all(p.device == torch.device("meta") for p in model.parameters())
