"""Auto-configuration: fingerprint, device memory, and the planning rules."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_training_assistant.project.schemas.architecture import ArchitectureConfig, default_architecture
from napari_training_assistant.project.schemas.project_config import AutoConfigDecision, TrainingSettings
from napari_training_assistant.train.autoconfig import (
    ACTIVATION_OVERHEAD,
    PATCH_LIMIT_2D,
    PATCH_LIMIT_3D,
    DatasetFingerprint,
    DeviceInfo,
    GiB,
    activation_bytes_per_sample,
    describe_device,
    device_memory,
    fingerprint,
    image_intensity_stats,
    plan,
    planned_architecture,
    pooling_factors,
)

CPU = DeviceInfo("cpu", "cpu", 16 * GiB, False, 2, "test CPU")


def gpu(gib: float, bf16: bool = True) -> DeviceInfo:
    return DeviceInfo("cuda:0", "cuda", int(gib * GiB), bf16, 16, f"fake {gib} GiB GPU")


def by_setting(decisions: list[AutoConfigDecision]) -> dict[str, AutoConfigDecision]:
    return {d.setting: d for d in decisions}


# -- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_summarises_and_round_trips_json():
    fp = fingerprint(
        [(100, 200), (300, 400), (500, 50)],
        spacings=(0.5, 0.5),
        channels=2,
        intensity_stats=[
            {"mean": 1.0, "std": 1.0, "percentiles": {0.5: 0.0, 99.5: 10.0}},
            {"mean": 3.0, "std": 1.0, "p0.5": 1.0, "p99.5": 30.0},
        ],
        class_frequencies={0: 90, 1: 10},
    )
    assert fp.n_pairs == 3 and fp.spatial_dims == "2d" and fp.channels == 2
    assert fp.median_shape == [300, 200]
    assert fp.min_shape == [100, 50] and fp.max_shape == [500, 400]
    assert fp.total_voxels == 100 * 200 + 300 * 400 + 500 * 50
    assert fp.spacings == [[0.5, 0.5]] * 3 and fp.anisotropy == 1.0
    assert fp.intensity_summary.mean == pytest.approx(2.0)
    assert fp.intensity_summary.std == pytest.approx(math.sqrt(1 + 1))  # pooled: within 1 + between 1
    assert fp.intensity_summary.percentiles == {"0.5": 0.5, "99.5": 20.0}
    assert fp.class_frequencies == pytest.approx([0.9, 0.1])
    text = json.dumps(fp.model_dump(mode="json"))
    assert DatasetFingerprint.model_validate_json(text) == fp


def test_fingerprint_3d_anisotropy_and_errors():
    fp = fingerprint([(20, 256, 256), (40, 512, 512)], spacings=[(40, 4, 4), (40, 4, 4)])
    assert fp.spatial_dims == "3d" and fp.anisotropy == pytest.approx(10.0)
    assert fingerprint([(8, 8, 8)]).anisotropy == 1.0
    with pytest.raises(ValueError, match="all"):
        fingerprint([(8, 8), (8, 8, 8)])
    with pytest.raises(ValueError, match="at least one"):
        fingerprint([])
    with pytest.raises(ValueError, match="spacing"):
        fingerprint([(8, 8)], spacings=[(1, 1), (1, 1)])


def test_image_intensity_stats():
    image = torch.arange(101, dtype=torch.float32).numpy()
    stats = image_intensity_stats(image, percentiles=(1, 50, 99))
    assert stats.mean == pytest.approx(50.0)
    assert stats.percentiles == {
        "1": pytest.approx(1.0),
        "50": pytest.approx(50.0),
        "99": pytest.approx(99.0),
    }
    assert fingerprint([(101, 1)], intensity_stats=[stats]).intensity[0] == stats


# -- device --------------------------------------------------------------------------------------


def test_device_memory_cpu_is_positive():
    assert device_memory("cpu") > 64 * 1024**2
    info = describe_device("cpu")
    assert info.kind == "cpu" and info.memory_bytes > 0 and info.cpu_cores >= 1
    with pytest.raises(ValueError, match="unsupported"):
        describe_device("meta")


# -- plan ----------------------------------------------------------------------------------------

FP_2D = fingerprint([(512, 512)] * 8)


def test_every_decision_has_a_reason_with_numbers():
    resolved, decisions = plan(FP_2D, default_architecture(), TrainingSettings(), CPU)
    names = [d.setting for d in decisions]
    assert names == [
        "device",
        "precision",
        "base_channels",
        "depth",
        "patch_size",
        "batch_size",
        "samples_per_epoch",
        "num_workers",
    ]
    assert set(resolved) == set(names) | {"anisotropic_levels"}
    for d in decisions:
        assert d.source == "auto"
        assert d.value == resolved[d.setting]
        assert len(d.reason) > 15
        if d.setting != "precision":
            assert re.search(r"\d", d.reason), d
    json.dumps([d.model_dump(mode="json") for d in decisions])


def test_cpu_picks_small_net_fp32_and_small_steps():
    resolved, decisions = plan(FP_2D, default_architecture(), TrainingSettings(), CPU)
    d = by_setting(decisions)
    assert resolved["depth"] == 3 and resolved["base_channels"] == 16
    assert "CPU" in d["depth"].reason and "8 s" in d["base_channels"].reason
    assert resolved["precision"] == "32" and "bf16" in d["precision"].reason
    assert resolved["patch_size"] == [128, 128]
    assert 4 <= resolved["batch_size"] <= 8
    assert resolved["num_workers"] == 0
    arch = planned_architecture(default_architecture(), resolved)
    assert (arch.preset, arch.depth, arch.base_channels) == ("small_unet", 3, 16)


def test_cpu_keeps_a_non_default_net_size():
    arch = default_architecture(preset="tiny_unet")
    resolved, decisions = plan(FP_2D, arch, TrainingSettings(), CPU)
    assert resolved["base_channels"] == 8
    assert "kept" in by_setting(decisions)["base_channels"].reason
    # depth follows the bottleneck rule: 128 / 2**4 = 8 voxels
    assert resolved["depth"] == 4


def test_user_overrides_win():
    settings = TrainingSettings(batch_size=5, patch_size=[100, 60], precision="bf16-mixed")
    resolved, decisions = plan(
        FP_2D,
        default_architecture(),
        settings,
        CPU,
        user_overrides={"depth", "base_channels", "learning_rate"},
    )
    d = by_setting(decisions)
    assert resolved["depth"] == 4 and resolved["base_channels"] == 32  # no small-net switch
    assert resolved["batch_size"] == 5 and resolved["patch_size"] == [100, 60]
    assert resolved["precision"] == "bf16-mixed"
    for name in ("depth", "base_channels", "batch_size", "patch_size", "precision"):
        assert d[name].source == "user" and d[name].reason == "set by the user"
    assert d["samples_per_epoch"].source == "auto"
    # a mapping gives values for settings that TrainingSettings does not hold
    resolved, decisions = plan(FP_2D, default_architecture(), None, CPU, user_overrides={"num_workers": 3})
    assert resolved["num_workers"] == 3 and by_setting(decisions)["num_workers"].source == "user"
    with pytest.raises(ValueError, match="no value"):
        plan(FP_2D, default_architecture(), TrainingSettings(), CPU, user_overrides={"batch_size"})


def test_bigger_gpu_gives_bigger_batch():
    fp = fingerprint([(64, 512, 512)] * 4)
    small, _ = plan(fp, default_architecture("3d"), TrainingSettings(), gpu(80 / 4))
    large, decisions = plan(fp, default_architecture("3d"), TrainingSettings(), gpu(80))
    assert small["patch_size"] == large["patch_size"]
    assert large["batch_size"] > small["batch_size"] >= 2
    assert "GiB" in by_setting(decisions)["batch_size"].reason
    small2d, _ = plan(FP_2D, default_architecture(), TrainingSettings(), gpu(2))
    large2d, _ = plan(FP_2D, default_architecture(), TrainingSettings(), gpu(8))
    assert large2d["batch_size"] > small2d["batch_size"]
    assert small2d["batch_size"] >= 2 and large2d["batch_size"] <= 32


def test_gpu_precision_and_patch_limits():
    resolved, _ = plan(FP_2D, default_architecture(), TrainingSettings(), gpu(40))
    assert resolved["precision"] == "bf16-mixed" and resolved["patch_size"] == [512, 512]
    assert resolved["depth"] == 5 and resolved["base_channels"] == 32
    assert resolved["num_workers"] == 4
    resolved, _ = plan(FP_2D, default_architecture(), TrainingSettings(), gpu(8, bf16=False))
    assert resolved["precision"] == "16-mixed" and resolved["patch_size"] == [256, 256]


def test_too_little_memory_shrinks_the_patch():
    fp = fingerprint([(128, 128, 128)] * 2)
    resolved, decisions = plan(fp, default_architecture("3d"), TrainingSettings(), gpu(2.5))
    assert max(resolved["patch_size"]) < 128
    assert "shrunk" in by_setting(decisions)["patch_size"].reason
    assert resolved["batch_size"] >= 2


def test_anisotropic_3d_gives_flat_patches_and_levels():
    fp = fingerprint([(60, 1024, 1024)] * 3, spacings=(40, 4, 4))
    for device in (CPU, gpu(40)):
        resolved, decisions = plan(fp, default_architecture("3d"), TrainingSettings(), device)
        z, y, x = resolved["patch_size"]
        assert z * 4 <= y and y == x
        assert resolved["anisotropic_levels"][:2] == [0, 1]
        reason = by_setting(decisions)["anisotropic_levels"].reason
        assert "ratio 10" in reason
        planned_architecture(default_architecture("3d"), resolved)  # a valid architecture
    iso = fingerprint([(200, 200, 200)] * 3, spacings=(1, 1, 1))
    resolved, _ = plan(iso, default_architecture("3d"), TrainingSettings(), CPU)
    assert resolved["patch_size"] == [64, 64, 64] and resolved["anisotropic_levels"] == []
    # a thin isotropic stack: z cannot be pooled often, so the deep levels pool in-plane only
    thin = fingerprint([(12, 400, 400)] * 3)
    resolved, _ = plan(thin, default_architecture("3d"), TrainingSettings(), gpu(40))
    assert resolved["patch_size"][0] <= 12 and resolved["anisotropic_levels"]
    factors = pooling_factors("3d", resolved["depth"], resolved["anisotropic_levels"])
    assert resolved["patch_size"][0] / math.prod(f[0] for f in factors) >= 3


def test_depth_follows_the_bottleneck_rule():
    fp = fingerprint([(64, 64)] * 4)
    resolved, decisions = plan(fp, default_architecture(), TrainingSettings(), gpu(40))
    assert resolved["patch_size"] == [64, 64] and resolved["depth"] == 3  # 64 / 2**3 = 8
    assert "8 x 8" in by_setting(decisions)["depth"].reason


def test_dims_must_match():
    with pytest.raises(ValueError, match="3d"):
        plan(fingerprint([(8, 8, 8)]), default_architecture("2d"), TrainingSettings(), CPU)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shapes=st.lists(
        st.tuples(st.integers(1, 40), st.integers(3, 900), st.integers(3, 900)), min_size=1, max_size=5
    ),
    three_d=st.booleans(),
    z_spacing=st.sampled_from([1.0, 2.5, 5.0, 10.0]),
    device=st.sampled_from([CPU, gpu(4), gpu(24)]),
)
def test_patch_never_exceeds_median_extent_or_limits(shapes, three_d, z_spacing, device):
    """Patch <= median image extent and <= the device limit per axis; multiple of pooling where possible."""
    if three_d:
        fp = fingerprint(shapes, spacings=(z_spacing, 1.0, 1.0))
        arch = default_architecture("3d")
    else:
        fp = fingerprint([s[1:] for s in shapes])
        arch = default_architecture("2d")
    resolved, decisions = plan(fp, arch, TrainingSettings(), device)
    patch = resolved["patch_size"]
    limit_2d = PATCH_LIMIT_2D[
        "cpu" if device.kind == "cpu" else "gpu_large" if device.memory_bytes >= 20 * GiB else "gpu_small"
    ]
    assert all(1 <= p <= m for p, m in zip(patch, fp.median_shape, strict=True))
    assert all(p <= limit_2d for p in patch)
    if three_d:
        limit_3d = PATCH_LIMIT_3D["cpu" if device.kind == "cpu" else "gpu"]
        assert math.prod(patch) <= limit_3d**3
    factors = pooling_factors(arch.spatial_dims, resolved["depth"], resolved["anisotropic_levels"])
    for axis, p in enumerate(patch):
        total = math.prod(f[axis] for f in factors)
        assert p < total or p % total == 0
    assert 2 <= resolved["batch_size"] <= 32
    assert 1 <= resolved["depth"] <= 5
    assert all(d.reason for d in decisions)
    ArchitectureConfig.model_validate(planned_architecture(arch, resolved).model_dump())


def test_activation_estimate_matches_saved_tensors():
    """The per-sample estimate (without the overhead factor) is within 30% of what autograd saves."""
    from napari_training_assistant.model import build_model

    for dims, shape in (("2d", (64, 64)), ("3d", (16, 32, 32))):
        arch = default_architecture(dims, preset="small_unet")
        model = build_model(arch)
        saved: dict[tuple[int, int], int] = {}

        def pack(t: torch.Tensor, saved=saved) -> torch.Tensor:
            saved[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randn(1, 1, *shape))
        estimate = activation_bytes_per_sample(
            shape, arch.depth, arch.base_channels, pooling_factors(dims, arch.depth)
        )
        assert 0.7 < estimate / ACTIVATION_OVERHEAD / sum(saved.values()) < 1.3
