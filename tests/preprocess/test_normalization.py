"""Per-channel normalisation: modes, constant images, channels, recorded statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_training_assistant.preprocess import normalization as norm
from napari_training_assistant.preprocess.normalization import (
    NormalizationStats,
    apply_stats,
    compute_stats,
    normalize,
)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).gamma(2.0, 300.0, size=(64, 48)).astype(np.uint16)


def test_percentile_maps_p1_to_0_and_p998_to_1_without_clipping(image):
    out = normalize(image, "percentile", channel_axis_first=False)
    assert out.dtype == np.float32 and out.shape == image.shape
    p1, p998 = np.percentile(out, [1.0, 99.8])
    assert p1 == pytest.approx(0.0, abs=1e-5)
    assert p998 == pytest.approx(1.0, abs=1e-5)
    assert out.min() < 0 and out.max() > 1  # not clipped


def test_minmax_maps_min_and_max(image):
    out = normalize(image, "minmax", channel_axis_first=False)
    assert out.min() == pytest.approx(0.0, abs=1e-6)
    assert out.max() == pytest.approx(1.0, abs=1e-6)


def test_zscore_mean_0_std_1(image):
    out = normalize(image, "zscore", channel_axis_first=False)
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(out.std()) == pytest.approx(1.0, abs=1e-5)


def test_none_only_casts(image):
    out = normalize(image, "none", channel_axis_first=False)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image.astype(np.float32))


@pytest.mark.parametrize("mode", ["percentile", "minmax", "zscore"])
@pytest.mark.parametrize("value", [0, 7, 0.1, -3.5])
def test_constant_image_does_not_divide_by_zero(mode, value):
    out = normalize(np.full((3, 10, 10), value), mode, channel_axis_first=True)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 0.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["percentile", "minmax", "zscore"])
def test_channels_are_normalised_independently(mode):
    rng = np.random.default_rng(1)
    image = np.stack([rng.normal(5, 2, (20, 20)), rng.normal(1000, 300, (20, 20)), np.full((20, 20), 3.0)])
    out = normalize(image, mode, channel_axis_first=True)
    for c in range(3):
        np.testing.assert_allclose(out[c], normalize(image[c], mode, channel_axis_first=False), atol=1e-5)
    if mode == "zscore":
        np.testing.assert_allclose(out[:2].mean(axis=(1, 2)), 0, atol=1e-5)
        np.testing.assert_allclose(out[:2].std(axis=(1, 2)), 1, atol=1e-4)
    if mode == "minmax":
        np.testing.assert_allclose(out[:2].min(axis=(1, 2)), 0, atol=1e-6)
        np.testing.assert_allclose(out[:2].max(axis=(1, 2)), 1, atol=1e-6)


def test_without_channel_axis_the_whole_array_is_one_channel():
    image = np.stack([np.zeros((4, 4)), np.full((4, 4), 10.0)])
    stats = compute_stats(image, "minmax", channel_axis_first=False)
    assert stats.channels == 1
    out = apply_stats(image, stats, channel_axis_first=False)
    np.testing.assert_allclose(out[0], 0)
    np.testing.assert_allclose(out[1], 1)


def test_stats_reused_on_tiles_and_recorded_as_plain_floats(image):
    stats = compute_stats(image[None], "percentile", channel_axis_first=True)
    whole = apply_stats(image[None], stats, channel_axis_first=True)
    tile = apply_stats(image[None, 10:30, 5:25], stats, channel_axis_first=True)
    np.testing.assert_array_equal(tile, whole[:, 10:30, 5:25])
    record = stats.to_dict()
    assert all(type(v) is float for key in ("offsets", "scales", "low", "high") for v in record[key])
    assert NormalizationStats.from_dict(json.loads(json.dumps(record))) == stats


def test_channel_count_mismatch_and_unknown_mode_are_refused():
    stats = compute_stats(np.ones((2, 4, 4)), "minmax", channel_axis_first=True)
    with pytest.raises(ValueError, match="channel"):
        apply_stats(np.ones((3, 4, 4)), stats, channel_axis_first=True)
    with pytest.raises(ValueError, match="not one of"):
        normalize(np.ones((4, 4)), "median", channel_axis_first=False)


def test_large_images_use_a_strided_subsample(monkeypatch, percentile_sizes):
    monkeypatch.setattr(norm, "SUBSAMPLE_ABOVE", 1000)
    rng = np.random.default_rng(2)
    image = rng.normal(100, 10, (200, 200)).astype(np.float32)
    seen = percentile_sizes
    stats = compute_stats(image, "percentile", channel_axis_first=False)
    assert seen and max(seen) <= 1000
    exact = np.percentile(image, [1.0, 99.8])  # the spy passes through
    assert stats.low[0] == pytest.approx(exact[0], rel=0.02)
    assert stats.high[0] == pytest.approx(exact[1], rel=0.02)
