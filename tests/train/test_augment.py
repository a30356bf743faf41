"""Augmenter: each toggle acts only when on, image and mask stay aligned, determinism, 3D in-plane."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.project.schemas.project_config import AugmentationSettings
from napari_training_assistant.train.augment import Augmenter

SEEDS = range(16)
TOGGLES = ("flips", "rot90", "intensity_jitter", "elastic")


def only(name: str | None, spatial_dims: str = "2d", **extra) -> Augmenter:
    flags = {t: t == name for t in TOGGLES}
    return Augmenter(**flags, spatial_dims=spatial_dims, **extra)


def smooth_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth blobs in [0, 1] (elastic alignment is checked on a smooth image)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    out = np.zeros(shape, dtype=np.float32)
    for _ in range(6):
        centre = [rng.uniform(0, n) for n in shape]
        dist2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        out += np.exp(-dist2 / (2 * 4.0**2)).astype(np.float32)
    return out / out.max()


@pytest.fixture
def pair2d() -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).random((2, 24, 24)).astype(np.float32)
    return image, (image[0] > 0.5).astype(np.uint8)


def test_everything_off_is_identity(pair2d):
    image, mask = pair2d
    aug = only(None)
    assert not aug.enabled
    for seed in SEEDS:
        out_image, out_mask = aug(image, mask, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(out_image, image)
        np.testing.assert_array_equal(out_mask, mask)
        assert out_image is not image and out_mask is not mask


@pytest.mark.parametrize("toggle", TOGGLES)
def test_each_toggle_changes_samples_when_on(pair2d, toggle):
    image, mask = pair2d
    aug = only(toggle)
    changed = 0
    for seed in SEEDS:
        out_image, out_mask = aug(image, mask, rng=np.random.default_rng(seed))
        assert out_image.shape == image.shape and out_image.dtype == np.float32
        assert out_mask.shape == mask.shape and out_mask.dtype == mask.dtype
        changed += not np.array_equal(out_image, image)
    assert changed >= len(SEEDS) // 4


def _flips(image: np.ndarray) -> list[np.ndarray]:
    return [np.flip(image, axes) if axes else image for axes in [(), (1,), (2,), (1, 2)]]


def _rotations(image: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(image, k, axes=(-2, -1)) for k in range(4)]


@pytest.mark.parametrize("off", TOGGLES)
def test_a_toggle_off_never_does_its_transform(pair2d, off):
    image, mask = pair2d
    aug = Augmenter(**{t: t != off for t in TOGGLES}, spatial_dims="2d", elastic_probability=1.0)
    for seed in SEEDS:
        out_image, out_mask = aug(image, mask, rng=np.random.default_rng(seed))
        if off == "intensity_jitter":  # geometry only: values stay within the input range
            assert out_image.min() >= image.min() - 1e-6 and out_image.max() <= image.max() + 1e-6
        elif off == "elastic":  # flips/rot90 only move voxels, jitter is affine per channel: masks permute
            assert np.array_equal(np.sort(out_mask, axis=None), np.sort(mask, axis=None))
            assert any(np.array_equal(out_mask, m) for f in _flips(mask[None]) for m in _rotations(f[0]))
    geometry = {"flips": _rotations, "rot90": _flips}.get(off)
    if geometry is not None:  # the other geometric toggle alone: only its own transforms ever appear
        alone = Augmenter(**{t: t == ("rot90" if off == "flips" else "flips") for t in TOGGLES})
        for seed in SEEDS:
            out, _ = alone(image, None, rng=np.random.default_rng(seed))
            assert any(np.array_equal(out, candidate) for candidate in geometry(image))
    spatial_off = Augmenter(flips=False, rot90=False, intensity_jitter=True, elastic=False)
    for seed in SEEDS:
        out_image, out_mask = spatial_off(image, mask, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(out_mask, mask)  # no spatial transform at all
        for c in range(image.shape[0]):  # an increasing intensity map keeps the rank order
            np.testing.assert_array_equal(
                np.argsort(out_image[c], axis=None, kind="stable"),
                np.argsort(image[c], axis=None, kind="stable"),
            )


@pytest.mark.parametrize("flags", [{"flips": True}, {"rot90": True}, {"flips": True, "rot90": True}])
def test_flips_and_rot90_keep_image_and_mask_aligned(pair2d, flags):
    image, mask = pair2d
    aug = Augmenter(**{t: flags.get(t, False) for t in TOGGLES})
    for seed in SEEDS:
        out_image, out_mask = aug(image, mask, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(out_mask, (out_image[0] > 0.5).astype(np.uint8))
        np.testing.assert_array_equal(
            np.sort(out_image, axis=None), np.sort(image, axis=None)
        )  # values only moved


def test_elastic_keeps_mask_binary_and_mostly_aligned():
    image = smooth_image((48, 48))[None]
    mask = (image[0] > 0.5).astype(np.uint8)
    aug = only("elastic", elastic_probability=1.0)
    for seed in range(6):
        out_image, out_mask = aug(image, mask, rng=np.random.default_rng(seed))
        assert set(np.unique(out_mask)) <= {0, 1}
        assert not np.array_equal(out_mask, mask) or not np.array_equal(out_image, image)
        agreement = np.mean(out_mask == (out_image[0] > 0.5))
        assert agreement > 0.97


def test_elastic_multichannel_labels_stay_labels():
    image = smooth_image((32, 32))[None]
    labels = (
        np.stack([(image[0] > 0.3), (image[0] > 0.6)]).astype(np.uint16)
        * np.array([3, 7], np.uint16)[:, None, None]
    )
    _, out = only("elastic", elastic_probability=1.0)(image, labels, rng=np.random.default_rng(0))
    assert out.dtype == np.uint16 and out.shape == labels.shape
    assert set(np.unique(out[0])) <= {0, 3} and set(np.unique(out[1])) <= {0, 7}


def test_deterministic_given_the_seed(pair2d):
    image, mask = pair2d
    results = []
    for _ in range(2):
        aug = Augmenter(
            flips=True, rot90=True, intensity_jitter=True, elastic=True, rng=42, elastic_probability=1.0
        )
        results.append([aug(image, mask) for _ in range(3)])
    for (a_img, a_mask), (b_img, b_mask) in zip(*results, strict=True):
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_mask, b_mask)
    aug = Augmenter(flips=True, rot90=True, intensity_jitter=True, elastic=True)
    a = aug(image, mask, rng=np.random.default_rng(5))
    b = aug(image, mask, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])


def test_rot90_in_3d_is_only_in_plane():
    rng = np.random.default_rng(3)
    image = rng.random((1, 5, 12, 12)).astype(np.float32)
    mask = (image[0] > 0.5).astype(np.uint8)
    aug = only("rot90", spatial_dims="3d")
    ks = set()
    for seed in SEEDS:
        out_image, out_mask = aug(image, mask, rng=np.random.default_rng(seed))
        assert out_image.shape == image.shape
        matches = [k for k in range(4) if np.array_equal(out_image, np.rot90(image, k, axes=(-2, -1)))]
        assert len(matches) == 1  # every z slice stays at its z, rotated by the same k
        np.testing.assert_array_equal(out_mask, np.rot90(mask, matches[0], axes=(-2, -1)))
        ks.add(matches[0])
    assert ks == {0, 1, 2, 3}


def test_rot90_on_non_square_planes_keeps_the_shape():
    image = np.random.default_rng(4).random((1, 3, 8, 14)).astype(np.float32)
    aug = only("rot90", spatial_dims="3d")
    ks = set()
    for seed in SEEDS:
        out, _ = aug(image, None, rng=np.random.default_rng(seed))
        assert out.shape == image.shape
        ks.update(k for k in (0, 2) if np.array_equal(out, np.rot90(image, k, axes=(-2, -1))))
    assert ks == {0, 2}


def test_flips_in_3d_reach_every_axis():
    image = np.random.default_rng(5).random((1, 4, 6, 6)).astype(np.float32)
    aug = only("flips", spatial_dims="3d")
    seen = set()
    for seed in range(32):
        out, _ = aug(image, None, rng=np.random.default_rng(seed))
        for axes in [(1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3), ()]:
            if np.array_equal(out, np.flip(image, axes) if axes else image):
                seen.add(axes)
    assert len(seen) == 8


def test_elastic_in_3d_moves_nothing_along_z():
    image = np.broadcast_to(np.arange(6, dtype=np.float32)[:, None, None], (6, 20, 20))[None].copy()
    mask = np.broadcast_to((np.arange(6) % 2).astype(np.uint8)[:, None, None], (6, 20, 20)).copy()
    smooth = smooth_image((20, 20))
    image_xy = image + smooth  # also has in-plane structure so the warp is visible
    out_image, out_mask = only("elastic", "3d", elastic_probability=1.0)(
        image_xy, mask, rng=np.random.default_rng(0)
    )
    # in-plane warp is the same for every slice: slice z minus slice 0 stays the constant z
    np.testing.assert_allclose(out_image[0] - out_image[0, :1], image[0] - image[0, :1], atol=1e-4)
    np.testing.assert_array_equal(out_mask, mask)
    assert not np.allclose(out_image, image_xy)


def test_from_settings_and_shape_checks():
    aug = Augmenter.from_settings(AugmentationSettings(flips=False, elastic=True), "3d")
    assert (aug.flips, aug.rot90, aug.intensity_jitter, aug.elastic, aug.ndim) == (False, True, True, True, 3)
    with pytest.raises(ValueError, match="axes"):
        aug(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        aug(np.zeros((1, 4, 4, 4), np.float32), np.zeros((4, 4, 5), np.uint8))
