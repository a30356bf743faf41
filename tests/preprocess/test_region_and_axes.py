"""The region mode of point-windowed training (the numbers it has always used) and the axis alignment."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from napari_training_assistant.preprocess import (
    NormalizationStats,
    apply_stats,
    compute_stats,
    model_input,
    normalize,
    with_channel_axis,
)
from napari_training_assistant.preprocess import normalization as norm
from napari_training_assistant.project.errors import DatasetError


def _old_region_scale(image: np.ndarray) -> tuple[float, float]:
    """The (offset, scale) `data/point_windows` computed before the mode moved here."""
    if image.dtype == np.uint8:
        return 0.0, 255.0
    sample = image.ravel()[:: max(1, image.size // 1_000_000)].astype(np.float64)
    low, high = np.percentile(sample, [1.0, 99.8])
    return float(low), float(max(high - low, 1e-6))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_region_statistics_are_the_point_windows_numbers(dtype):
    rng = np.random.default_rng(3)
    image = (rng.gamma(2.0, 40.0, size=(6, 30, 40)) * (1 if dtype == np.uint8 else 17)).clip(0, 250 if dtype == np.uint8 else None)
    image = image.astype(dtype)
    stats = compute_stats(image, "region", channel_axis_first=False)
    assert (stats.offsets[0], stats.scales[0]) == _old_region_scale(image)
    out = apply_stats(image, stats, channel_axis_first=False)
    offset, scale = _old_region_scale(image)
    np.testing.assert_allclose(out, (image.astype(np.float32) - offset) / scale, rtol=1e-6, atol=1e-6)
    assert out.dtype == np.float32


def test_region_mode_maps_8_bit_by_the_dtype_range_not_the_content():
    dim = np.full((4, 8, 8), 10, np.uint8)
    np.testing.assert_allclose(normalize(dim, "region", channel_axis_first=False), 10 / 255.0, rtol=1e-6)


def test_region_mode_of_a_constant_or_non_finite_volume_stays_finite():
    constant = normalize(np.full((4, 8, 8), 7, np.uint16), "region", channel_axis_first=False)
    np.testing.assert_array_equal(constant, 0.0)
    with_nan = np.ones((4, 8, 8), np.float32)
    with_nan[0, 0, 0] = np.nan
    stats = compute_stats(with_nan, "region", channel_axis_first=False)
    assert (stats.offsets, stats.scales) == ((0.0,), (1.0,))


def test_region_mode_estimates_large_volumes_on_a_strided_sample(monkeypatch, percentile_sizes):
    monkeypatch.setattr(norm, "REGION_SAMPLE", 1000)
    image = np.random.default_rng(4).normal(500, 50, (20, 100, 100)).astype(np.float32)
    seen = percentile_sizes
    stats = compute_stats(image, "region", channel_axis_first=False)
    assert seen == [1000]  # every 200th of 200,000 voxels
    assert stats.low[0] == np.percentile(image.ravel()[::200].astype(np.float64), 1.0)


def test_region_statistics_are_recorded_per_channel_and_round_trip():
    image = np.stack([np.arange(64, dtype=np.uint16).reshape(8, 8), np.full((8, 8), 3, np.uint16)])
    stats = compute_stats(image, "region", channel_axis_first=True)
    assert stats.mode == "region" and stats.channels == 2
    assert NormalizationStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats


def test_with_channel_axis_moves_or_adds_the_channel_axis():
    image = np.zeros((5, 6, 3))
    assert with_channel_axis(image, -1).shape == (3, 5, 6)
    assert with_channel_axis(image, None).shape == (1, 5, 6, 3)


def test_model_input_checks_channels_and_dimensions_in_one_line():
    volume = np.zeros((4, 8, 8), np.uint8)
    assert model_input(volume, None, channels=1, spatial_dims="3d", source="v", model="m").shape == (1, 4, 8, 8)
    rgb = np.zeros((8, 8, 3))
    assert model_input(rgb, -1, channels=3, spatial_dims="2d", source="rgb", model="m").shape == (3, 8, 8)
    with pytest.raises(DatasetError, match=r"image v has shape \(4, 8, 8\) \(1 channel\(s\), 3D\) but m expects 1 channel\(s\), 2d"):
        model_input(volume, None, channels=1, spatial_dims="2d", source="v", model="m")
    with pytest.raises(DatasetError, match=r"image rgb has shape \(3, 8, 8\) \(3 channel\(s\), 2D\) but m expects 2 channel"):
        model_input(rgb, -1, channels=2, spatial_dims="2d", source="rgb", model="m")
    with pytest.raises(DatasetError, match="channel_axis 5 is not an axis"):
        model_input(rgb, 5, channels=3, spatial_dims="2d", source="rgb", model="m")


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("napari_training_assistant.preprocess", ("torch", "napari_training_assistant.train.")),
        ("napari_training_assistant.predict.project_prediction", ("napari_training_assistant.train.",)),
    ],
)
def test_a_module_does_not_import_what_lies_above_it(module, forbidden):
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in sys.modules if m.partition('.')[0] in {forbidden!r} or m.startswith({forbidden!r})]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
