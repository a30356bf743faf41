"""build_model: every descriptor field shapes the network; any input size; logits; trainable."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from napari_training_assistant.model import build_model
from napari_training_assistant.model.padding import pad_to_multiple, padded_size
from napari_training_assistant.project.errors import ProjectError
from napari_training_assistant.project.schemas.architecture import ArchitectureConfig, default_architecture

SMALL = {"depth": 2, "base_channels": 4}


def small(spatial_dims: str = "2d", output_mode: str = "binary", **kw: Any) -> ArchitectureConfig:
    """A fast descriptor: depth 2, base 4 unless overridden."""
    return default_architecture(spatial_dims, output_mode, **{**SMALL, **kw})


def signature(model: nn.Module) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], str]:
    """What distinguishes two networks: state-dict keys and shapes, and every module with its settings."""
    shapes = tuple(sorted((k, tuple(v.shape)) for k, v in model.state_dict().items()))
    return shapes, repr(model)


# (field under test, baseline descriptor, changed descriptor)
CHANGING = [
    ("depth", small(), small(depth=3)),
    ("base_channels", small(), small(base_channels=8)),
    ("normalization", small(), small(normalization="instance")),
    ("normalization", small(), small(normalization="group")),
    ("normalization", small(), small(normalization="none")),
    ("normalization", small(normalization="instance"), small(normalization="group")),
    ("upsampling", small(), small(upsampling="bilinear")),
    ("upsampling", small("3d"), small("3d", upsampling="trilinear")),
    ("input_channels", small(), small(input_channels=3)),
    ("output_channels", small(), small(output_mode="multiclass", num_classes=3)),
    ("output_channels", small(), small(output_mode="multilabel", output_channels=3)),
    (
        "num_classes",
        small(output_mode="multiclass", num_classes=3),
        small(output_mode="multiclass", num_classes=4),
    ),
    ("spatial_dims", small(), small("3d")),
    ("anisotropic_levels", small("3d"), small("3d", anisotropic_levels=[0])),
    (
        "anisotropic_levels",
        small("3d", upsampling="trilinear"),
        small("3d", upsampling="trilinear", anisotropic_levels=[1]),
    ),
]

# (field under test, baseline, changed): same network, but the descriptor keeps the value
UNCHANGING = [
    ("preset", small(), small(preset="custom")),
    ("preset", small(), small(preset="tiny_unet")),
    ("threshold", small(), small(threshold=0.3)),
    ("loss", small(), small(loss="dice")),
    (
        "activation",
        small(output_mode="multiclass", num_classes=2),
        small(output_mode="multilabel", output_channels=2),
    ),
    (
        "output_mode",
        small(output_mode="multiclass", num_classes=2),
        small(output_mode="multilabel", output_channels=2),
    ),
    ("num_classes", small(), small(num_classes=5)),  # binary: num_classes is not used
]


def _ids(cases: list) -> list[str]:
    return [f"{field}-{i}" for i, (field, *_) in enumerate(cases)]


def test_cases_cover_every_descriptor_field():
    covered = {field for field, *_ in CHANGING + UNCHANGING} | {"schema_version", "backend"}
    assert covered == set(ArchitectureConfig.model_fields)


@pytest.mark.parametrize(("field", "base", "changed"), CHANGING, ids=_ids(CHANGING))
def test_each_field_changes_the_network(field: str, base: ArchitectureConfig, changed: ArchitectureConfig):
    assert getattr(base, field) != getattr(changed, field)
    assert signature(build_model(base)) != signature(build_model(changed))


@pytest.mark.parametrize(("field", "base", "changed"), UNCHANGING, ids=_ids(UNCHANGING))
def test_training_fields_keep_the_network_but_are_recorded(field, base, changed):
    model = build_model(changed)
    assert getattr(base, field) != getattr(changed, field)
    assert signature(build_model(base)) == signature(model)
    assert model.architecture[field] == getattr(changed, field)


def test_architecture_is_stored_as_plain_dict():
    model = build_model({"depth": 2, "base_channels": 4, "threshold": 0.25})
    assert type(model.architecture) is dict
    assert model.architecture == ArchitectureConfig(depth=2, base_channels=4, threshold=0.25).model_dump()


def test_module_returns_logits_without_activation():
    model = build_model(small())
    assert not any(isinstance(m, nn.Sigmoid | nn.Softmax | nn.LogSoftmax) for m in model.modules())
    conv_bias = [m.bias for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(b is None for b in conv_bias)  # normalized convs carry no bias
    no_norm = build_model(small(normalization="none"))
    assert all(m.bias is not None for m in no_norm.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("normalization", ["batch", "instance", "group", "none"])
@pytest.mark.parametrize("size", [(37, 53), (1, 1), (1, 7), (16, 16), (5, 3)])
def test_any_2d_size_gives_same_size_output(normalization: str, size: tuple[int, int]):
    model = build_model(small(output_mode="multiclass", num_classes=3, normalization=normalization, depth=3))
    out = model(torch.randn(1, 1, *size))  # training mode: normalization sees real statistics
    assert out.shape == (1, 3, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("normalization", ["batch", "instance", "group"])
@pytest.mark.parametrize("size", [(8, 24, 24), (5, 13, 11), (1, 1, 1), (2, 3, 1)])
def test_any_3d_size_gives_same_size_output(normalization: str, size: tuple[int, int, int]):
    arch = small(
        "3d", "multilabel", output_channels=2, depth=3, anisotropic_levels=[0], normalization=normalization
    )
    out = build_model(arch)(torch.randn(1, 1, *size))
    assert out.shape == (1, 2, *size)


@pytest.mark.parametrize("upsampling", ["transpose", "trilinear"])
def test_3d_anisotropic_forward_backward(upsampling: str):
    model = build_model(small("3d", depth=3, anisotropic_levels=[0], upsampling=upsampling))
    assert [tuple(p.kernel_size) for p in model.pools] == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert model.total_factor == (4, 8, 8)
    x = torch.randn(2, 1, 8, 24, 24)
    out = model(x)
    assert out.shape == (2, 1, 8, 24, 24)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_gradient_steps_reduce_loss_on_trivial_problem():
    torch.manual_seed(0)
    model = build_model(small(depth=1))
    x = torch.randn(4, 1, 16, 16)
    target = (x > 0).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    ("arch", "memory_format"),
    [(small(), torch.channels_last), (small("3d", anisotropic_levels=[0]), torch.channels_last_3d)],
)
def test_channels_last(arch: ArchitectureConfig, memory_format: torch.memory_format):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    size = (6,) * (2 if arch.spatial_dims == "2d" else 3)
    x = torch.randn(1, 1, *size)
    expected = model(x)
    model = model.to(memory_format=memory_format)
    out = model(x.contiguous(memory_format=memory_format))
    assert out.shape == (1, 1, *size)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    out.sum().backward()


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"depth": 9}, "depth"),
        ({"base_channels": 0}, "base_channels"),
        ({"anisotropic_levels": [0]}, "anisotropic_levels"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_descriptor_is_a_one_line_project_error(bad: dict, named: str):
    with pytest.raises(ProjectError, match=named) as info:
        build_model(bad)
    assert "\n" not in str(info.value)


def test_wrong_input_shape_is_explained():
    model = build_model(small(input_channels=2))
    with pytest.raises(ValueError, match=r"\(batch, 2, y, x\)"):
        model(torch.randn(1, 1, 8, 8))


def test_padding_rules():
    assert padded_size([37, 53], [8, 8]) == [40, 56]
    assert padded_size([1, 1], [16, 16]) == [16, 32]  # a one-cell bottleneck grows on the last axis
    assert padded_size([8, 24, 24], [4, 8, 8]) == [8, 24, 24]
    x = torch.randn(1, 2, 5, 3)
    padded, crop = pad_to_multiple(x, [4, 4])
    assert padded.shape == (1, 2, 8, 4)
    torch.testing.assert_close(padded[crop], x)
