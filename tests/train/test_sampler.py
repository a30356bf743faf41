"""load_pairs, PatchSampler and ValidationTiles on small projects and arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch.utils.data import DataLoader

from napari_training_assistant.preprocess import normalize
from napari_training_assistant.project import DatasetError, TrainingProject
from napari_training_assistant.train.augment import Augmenter
from napari_training_assistant.train.sampler import (
    PairArrays,
    PatchSampler,
    ValidationTiles,
    foreground_points,
    load_pairs,
)


def _image(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, shape, dtype=np.uint16)


def _pair(pair_id: str, shape, *, blob=None, seed=0, spatial_dims=None, channels=1) -> PairArrays:
    """A normalised pair whose mask is 1 inside `blob` (a tuple of slices), else 0."""
    spatial_dims = spatial_dims or f"{len(shape)}d"
    image = np.random.default_rng(seed).random((channels, *shape)).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    if blob is not None:
        mask[blob] = 1
    return PairArrays(pair_id, image, mask, spatial_dims)


@pytest.fixture
def project(tmp_path: Path) -> TrainingProject:
    """2D binary project with four pairs of different sizes: two train, one val, one benchmark."""
    project = TrainingProject.create(tmp_path / "proj", name="sampler")
    shapes = [(40, 50), (30, 30), (20, 20), (36, 28)]
    for i, (shape, split) in enumerate(zip(shapes, ["train", "train", "val", "benchmark"], strict=True)):
        mask = np.zeros(shape, dtype=np.uint8)
        mask[5:9, 5:12] = 1
        project.dataset.add(_image(shape, i), mask, split=split)
    return project


# --------------------------------------------------------------------------- load_pairs


def test_load_pairs_reads_listed_pairs_normalised(project):
    ids = project.dataset.ids("train")
    pairs = load_pairs(project, [*ids, ids[0]], "percentile")
    assert [p.pair_id for p in pairs] == ids  # order kept, duplicates dropped
    for pair in pairs:
        image, mask = project.dataset.load(pair.pair_id)
        assert pair.image.dtype == np.float32 and pair.image.shape == (1, *image.shape)
        assert pair.normalized and pair.stats is not None and pair.stats.mode == "percentile"
        np.testing.assert_allclose(
            pair.image[0], normalize(image, "percentile", channel_axis_first=False), atol=1e-6
        )
        np.testing.assert_array_equal(pair.mask, mask)
    with pytest.raises(DatasetError, match="no pair"):
        load_pairs(project, ["pair_9999"], "none")


def test_large_uncompressed_images_are_memory_mapped(project):
    pair_id = project.dataset.ids("train")[0]
    image, mask = project.dataset.load(pair_id)
    record = project.dataset.get(pair_id)
    in_memory = load_pairs(project, [pair_id], "zscore")[0]
    # the project's compressed TIFFs cannot be mapped: read into memory even above the threshold
    compressed = load_pairs(project, [pair_id], "zscore", memmap_above_bytes=0)[0]
    assert compressed.normalized
    tifffile.imwrite(project.layout.absolute(record.image_path), image)  # uncompressed
    tifffile.imwrite(project.layout.absolute(record.mask_path), mask)
    mapped = load_pairs(project, [pair_id], "zscore", memmap_above_bytes=0)[0]
    assert not mapped.normalized and isinstance(mapped.image, np.memmap)
    assert mapped.image.dtype == np.uint16  # raw on disk, normalised crop by crop
    assert mapped.stats == in_memory.stats
    crop = (slice(3, 19), slice(10, 40))
    np.testing.assert_allclose(mapped.image_patch(crop), in_memory.image_patch(crop), atol=1e-6)
    sample = PatchSampler([mapped], (16, 16), seed=1)[0]
    assert sample["image"].dtype == torch.float32


# --------------------------------------------------------------------------- PatchSampler


def test_2d_patch_shapes_and_dtypes(project):
    pairs = load_pairs(project, project.dataset.ids("train"), "percentile")
    sampler = PatchSampler(pairs, [16, 24], augmenter=Augmenter(elastic=True), seed=3)
    assert len(sampler) == 32  # default: max(32, 8 per pair, total tiles)
    for index in range(len(sampler)):
        sample = sampler[index]
        assert sample["image"].shape == (1, 16, 24) and sample["image"].dtype == torch.float32
        assert sample["target"].shape == (1, 16, 24) and sample["target"].dtype == torch.float32
        assert sample["valid"].shape == (1, 16, 24) and bool((sample["valid"] == 1).all())
        assert set(sample["target"].unique().tolist()) <= {0.0, 1.0}
    batch = next(iter(DataLoader(sampler, batch_size=4)))
    assert batch["image"].shape == (4, 1, 16, 24) and len(batch["pair_id"]) == 4


def test_3d_patch_shapes_and_padding_on_z(tmp_path):
    project = TrainingProject.create(tmp_path / "vol", spatial_dims="3d")
    mask = np.zeros((6, 40, 40), dtype=np.uint8)
    mask[2:4, 10:20, 10:20] = 1
    record = project.dataset.add(_image((6, 40, 40)), mask)
    pairs = load_pairs(project, [record.pair_id], "minmax")
    assert pairs[0].image.shape == (1, 6, 40, 40)
    sampler = PatchSampler(
        pairs, (8, 32, 32), augmenter=Augmenter(spatial_dims="3d", elastic=True), samples_per_epoch=10
    )
    for sample in sampler:
        assert sample["image"].shape == (1, 8, 32, 32)
        assert sample["target"].shape == (1, 8, 32, 32)
        valid = sample["valid"][0]
        assert valid.sum() == 6 * 32 * 32  # six real z slices, two padded (possibly flipped to the front)
        assert bool((sample["target"][0][valid == 0] == 0).all())
    with pytest.raises(ValueError, match="patch_size"):
        PatchSampler(pairs, (32, 32))


def test_small_pair_is_padded_and_valid_marks_the_padding(project):
    pair_id = project.dataset.ids("val")[0]  # 20 x 20
    pairs = load_pairs(project, [pair_id], "percentile")
    sampler = PatchSampler(pairs, (64, 64), samples_per_epoch=5)
    for sample in sampler:
        valid = sample["valid"][0]
        assert sample["image"].shape == (1, 64, 64) and torch.isfinite(sample["image"]).all()
        assert bool((valid[:20, :20] == 1).all()) and valid.sum() == 400
        np.testing.assert_allclose(sample["image"][0, :20, :20].numpy(), pairs[0].image[0], atol=1e-6)
        np.testing.assert_array_equal(sample["target"][0, :20, :20].numpy(), pairs[0].mask)
        assert sample["target"][0][valid == 0].sum() == 0
    augmented = PatchSampler(
        pairs, (64, 64), samples_per_epoch=20, augmenter=Augmenter(elastic=True, elastic_probability=1.0)
    )
    for sample in augmented:
        valid = sample["valid"][0]
        assert set(valid.unique().tolist()) <= {0.0, 1.0} and 200 < valid.sum() < 650
        assert sample["target"][0][valid == 0].sum() == 0


BLOB = (slice(40, 44), slice(40, 44))


def _contains_foreground(sampler: PatchSampler) -> np.ndarray:
    return np.array([bool(sampler[i]["target"].sum() > 0) for i in range(len(sampler))])


def test_full_foreground_oversampling_always_hits_a_sparse_mask():
    pair = _pair("sparse", (100, 100), blob=BLOB)
    for augmenter in (None, Augmenter(elastic=True)):
        sampler = PatchSampler(
            [pair], (32, 32), foreground_oversampling=1.0, augmenter=augmenter, samples_per_epoch=300
        )
        assert _contains_foreground(sampler).all()


def test_no_oversampling_matches_uniform_random_positions():
    pair = _pair("sparse", (100, 100), blob=BLOB)
    # uniform starts 0..68 per axis; the patch [s, s+32) meets rows 40..43 for s in 9..43: 35 of 69
    expected = (35 / 69) ** 2
    n = 1500
    sampler = PatchSampler([pair], (32, 32), foreground_oversampling=0.0, samples_per_epoch=n, seed=7)
    fraction = _contains_foreground(sampler).mean()
    assert abs(fraction - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    half = PatchSampler([pair], (32, 32), foreground_oversampling=0.5, samples_per_epoch=n, seed=7)
    expected_half = 0.5 + 0.5 * expected
    assert abs(_contains_foreground(half).mean() - expected_half) < 4 * np.sqrt(
        expected_half * (1 - expected_half) / n
    )


def test_pair_without_foreground_falls_back_to_random_positions():
    sampler = PatchSampler(
        [_pair("empty", (50, 50))], (16, 16), foreground_oversampling=1.0, samples_per_epoch=20
    )
    starts = {sampler.position(i)[1] for i in range(20)}
    assert len(starts) > 10 and not any(sampler.position(i)[2] for i in range(20))


def test_deterministic_per_seed_epoch_and_index():
    pairs = [
        _pair("a", (60, 60), blob=BLOB, seed=1),
        _pair("b", (45, 70), blob=(slice(0, 3), slice(0, 3)), seed=2),
    ]

    def make(seed=0):
        return PatchSampler(
            pairs, (32, 32), augmenter=Augmenter(elastic=True), seed=seed, samples_per_epoch=12
        )

    def same(x, y):
        return x["pair_id"] == y["pair_id"] and all(
            torch.equal(x[k], y[k]) for k in ("image", "target", "valid")
        )

    first, second = make(), make()
    forward = [first[i] for i in range(12)]
    backward = [second[i] for i in reversed(range(12))][::-1]
    assert all(same(a, b) for a, b in zip(forward, backward, strict=True))
    second.set_epoch(1)
    assert not all(same(a, second[i]) for i, a in enumerate(forward))
    first.set_epoch(1)
    assert all(same(first[i], second[i]) for i in range(12))
    other_seed = make(seed=5)
    assert not all(same(a, other_seed[i]) for i, a in enumerate(forward))
    # DataLoader workers (fresh processes or forks) reproduce the same items
    loader = DataLoader(make(), batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    images = torch.cat([b["image"] for b in batches])
    assert torch.equal(images, torch.stack([s["image"] for s in forward]))


def test_only_listed_pairs_are_ever_sampled(project):
    train_ids = project.dataset.ids("train")
    pairs = load_pairs(project, train_ids, "percentile")
    sampler = PatchSampler(pairs, (16, 16), samples_per_epoch=200, seed=11)
    seen = {sampler[i]["pair_id"] for i in range(len(sampler))}
    assert seen == set(train_ids)
    val = ValidationTiles(load_pairs(project, project.dataset.ids("val"), "percentile"), (16, 16))
    assert {val[i]["pair_id"] for i in range(len(val))} == set(project.dataset.ids("val"))


def test_pair_weighting_by_size_or_uniform():
    pairs = [_pair("big", (128, 128)), _pair("small", (16, 16))]
    by_size = PatchSampler(pairs, (16, 16), samples_per_epoch=650)
    counts = [by_size.position(i)[0] for i in range(650)]
    assert counts.count(0) / 650 > 0.95  # 64 tiles against 1
    uniform = PatchSampler(pairs, (16, 16), samples_per_epoch=600, pair_weighting="uniform")
    assert 0.4 < [uniform.position(i)[0] for i in range(600)].count(0) / 600 < 0.6


def test_multiclass_and_multilabel_targets(tmp_path):
    multiclass = TrainingProject.create(tmp_path / "mc", output_mode="multiclass", num_classes=3)
    labels = np.zeros((30, 30), dtype=np.uint8)
    labels[2:10, 2:10] = 1
    labels[15:25, 15:25] = 2
    rec = multiclass.dataset.add(_image((30, 30)), labels, mask_mode="multiclass")
    pairs = load_pairs(multiclass, [rec.pair_id], "percentile")
    sampler = PatchSampler(
        pairs, (16, 16), output_mode="multiclass", foreground_oversampling=1.0, augmenter=Augmenter()
    )
    classes = set()
    for sample in sampler:
        assert sample["target"].dtype == torch.int64 and sample["target"].shape == (16, 16)
        classes |= set(sample["target"].unique().tolist())
    assert classes == {0, 1, 2}

    multilabel = TrainingProject.create(
        tmp_path / "ml", output_mode="multilabel", architecture={"output_channels": 3}
    )
    masks = [(np.random.default_rng(c).random((24, 24)) > 0.7).astype(np.uint8) for c in range(3)]
    rec = multilabel.dataset.add(_image((24, 24)), masks, mask_mode="multilabel")
    pairs = load_pairs(multilabel, [rec.pair_id], "percentile")
    sample = PatchSampler(pairs, (32, 32), output_mode="multilabel", augmenter=Augmenter(elastic=True))[0]
    assert sample["target"].dtype == torch.float32 and sample["target"].shape == (3, 32, 32)
    assert set(sample["target"].unique().tolist()) <= {0.0, 1.0}
    tile = ValidationTiles(pairs, (32, 32), output_mode="multilabel")[0]
    np.testing.assert_array_equal(tile["target"][:, :24, :24].numpy(), np.stack(masks))
    with pytest.raises(ValueError, match="multilabel"):
        PatchSampler([_pair("x", (20, 20))], (8, 8), output_mode="multilabel")
    with pytest.raises(ValueError, match="label mask"):
        PatchSampler(pairs, (8, 8), output_mode="binary")


def test_multichannel_images_keep_their_channels():
    pair = _pair("rgb", (20, 30), channels=3, blob=(slice(0, 5), slice(0, 5)))
    sample = PatchSampler([pair], (16, 16), augmenter=Augmenter())[0]
    assert sample["image"].shape == (3, 16, 16)


def test_refusals():
    with pytest.raises(ValueError, match="no pairs"):
        PatchSampler([], (16, 16))
    with pytest.raises(ValueError, match="mix 2D and 3D"):
        PatchSampler([_pair("a", (8, 8)), _pair("b", (8, 8, 8))], (4, 4))
    with pytest.raises(ValueError, match="augmenter"):
        PatchSampler([_pair("a", (8, 8))], (4, 4), augmenter=Augmenter(spatial_dims="3d"))
    with pytest.raises(IndexError):
        PatchSampler([_pair("a", (8, 8))], (4, 4), samples_per_epoch=3)[3]


def test_foreground_points_are_strided_down_to_the_limit():
    pair = _pair("dense", (50, 40), blob=(slice(0, 50), slice(10, 30)))
    every = foreground_points(pair)
    assert every.size == 1000
    few = foreground_points(pair, limit=64)
    assert 32 <= few.size <= 64 and np.isin(few, every).all()
    np.testing.assert_array_equal(few, every[:: int(np.ceil(1000 / 64))])


# --------------------------------------------------------------------------- ValidationTiles


@pytest.mark.parametrize(
    ("shapes", "patch"),
    [([(37, 50), (20, 20), (32, 64)], (16, 16)), ([(5, 33, 40), (9, 10, 17)], (4, 16, 16))],
)
def test_validation_tiles_cover_every_voxel_exactly_once(shapes, patch):
    pairs = [
        PairArrays(
            f"p{i}",
            np.random.default_rng(i).random((1, *s)).astype(np.float32),
            (np.random.default_rng(i).random(s) > 0.5).astype(np.uint8),
            f"{len(s)}d",
        )
        for i, s in enumerate(shapes)
    ]
    tiles = ValidationTiles(pairs, patch)
    counts = {p.pair_id: np.zeros(p.spatial_shape, dtype=np.int32) for p in pairs}
    rebuilt = {p.pair_id: np.zeros(p.spatial_shape, dtype=np.float32) for p in pairs}
    for sample in DataLoader(tiles, batch_size=3):
        for b in range(len(sample["pair_id"])):
            pid = sample["pair_id"][b]
            assert sample["image"][b].shape == (1, *patch)
            origin = sample["origin"][b].tolist()
            shape = counts[pid].shape
            region = tuple(slice(o, min(o + p, n)) for o, p, n in zip(origin, patch, shape, strict=True))
            inside = tuple(slice(0, r.stop - r.start) for r in region)
            valid = sample["valid"][b, 0].numpy()
            counts[pid][region] += valid[inside].astype(np.int32)
            rebuilt[pid][region] += (sample["image"][b, 0].numpy() * valid)[inside]
            assert valid.sum() == valid[inside].sum()  # padding is never valid
    for pair in pairs:
        np.testing.assert_array_equal(counts[pair.pair_id], 1)
        np.testing.assert_allclose(rebuilt[pair.pair_id], pair.image[0], atol=1e-6)
    again = ValidationTiles(pairs, patch)
    assert all(torch.equal(again[i]["image"], tiles[i]["image"]) for i in range(len(tiles)))
