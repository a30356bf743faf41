"""Dataset: adding pairs in every mode, the manifest record, refusals, splits, removal, files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import tifffile

from napari_training_assistant.project import DatasetError, TrainingProject
from napari_training_assistant.project.image_io import array_sha256, read_tiff
from napari_training_assistant.project.splits import auto_split

RNG = np.random.default_rng(0)


def _image(shape, dtype=np.uint8):
    return RNG.integers(0, 200, shape).astype(dtype)


def _binary(shape):
    return (RNG.random(shape) > 0.5).astype(np.uint8)


@pytest.fixture
def multiclass(tmp_path) -> TrainingProject:
    return TrainingProject.create(
        tmp_path / "mc",
        output_mode="multiclass",
        num_classes=3,
        class_names=["background", "cell", "nucleus"],
    )


@pytest.fixture
def multilabel(tmp_path) -> TrainingProject:
    return TrainingProject.create(
        tmp_path / "ml", output_mode="multilabel", architecture={"output_channels": 3}
    )


def _files(project):
    return sorted(p.name for d in (project.layout.images_dir, project.layout.masks_dir) for p in d.iterdir())


# ----------------------------------------------------------------------------- adding pairs


def test_add_2d_pair_records_every_field(project):
    image = _image((16, 20), np.uint16)
    mask = np.zeros((16, 20), np.int32)
    mask[2:6, 3:9] = 3
    mask[10:12, 10:14] = 5
    record = project.dataset.add(
        image,
        mask,
        image_layer="raw",
        mask_layer="labels",
        source="sam3_preview",
        prompts=[{"kind": "box", "coords": [1, 2, 3, 4]}],
    )
    assert record.pair_id == "pair_0001"
    assert record.image_path == "dataset/images/pair_0001.tif"
    assert record.mask_path == "dataset/masks/pair_0001.tif"
    assert (record.image_layer, record.mask_layer) == ("raw", "labels")
    assert record.source == "sam3_preview"
    assert record.prompts == [{"kind": "box", "coords": [1, 2, 3, 4]}]
    assert record.spatial_dims == "2d"
    assert record.image_shape == [16, 20]
    assert record.mask_shape == [16, 20]
    assert record.image_channels is None
    assert record.image_dtype == "uint16"
    assert record.mask_dtype == "uint8"
    assert record.slice_index is None
    assert record.mask_mode == "binary"
    assert record.source_labels == [0, 3, 5]
    assert record.saved_labels == [0, 1]
    assert record.label_transform == "mask > 0 -> 1"
    assert record.target_class_name is None
    assert record.split == "train"
    assert record.split_assigned_by == "auto"
    assert record.used_by_checkpoints == []
    assert record.created_at.tzinfo is not None
    assert record.source_files == {}

    saved_image, saved_mask = project.dataset.load(record.pair_id)
    np.testing.assert_array_equal(saved_image, image)
    np.testing.assert_array_equal(saved_mask, (mask > 0).astype(np.uint8))
    assert record.image_sha256 == array_sha256(saved_image) == array_sha256(image)
    assert record.mask_sha256 == array_sha256(saved_mask)
    # the manifest on disk holds the same record
    on_disk = json.loads(project.layout.manifest.read_text())
    assert on_disk["pairs"][0]["pair_id"] == "pair_0001"
    assert on_disk["pairs"][0]["source_labels"] == [0, 3, 5]
    assert project.dataset.get("pair_0001") == record


def test_add_bool_mask_and_bool_image(project):
    image = RNG.random((16, 16)) > 0.5
    record = project.dataset.add(image, image.copy())
    assert record.image_dtype == "uint8"
    assert record.source_labels in ([0, 1], [0], [1])
    assert record.saved_labels == record.source_labels


def test_add_3d_pair(tmp_path):
    project = TrainingProject.create(tmp_path / "vol", spatial_dims="3d")
    image = _image((5, 16, 16))
    mask = _binary((5, 16, 16))
    record = project.dataset.add(image, mask)
    assert record.spatial_dims == "3d"
    assert record.image_shape == [5, 16, 16]
    assert record.mask_shape == [5, 16, 16]
    saved_image, saved_mask = project.dataset.load(record.pair_id)
    np.testing.assert_array_equal(saved_image, image)
    np.testing.assert_array_equal(saved_mask, mask)


def test_3d_project_refuses_a_2d_pair(tmp_path):
    project = TrainingProject.create(tmp_path / "vol", spatial_dims="3d")
    with pytest.raises(DatasetError, match="project is 3D"):
        project.dataset.add(_image((16, 16)), _binary((16, 16)))


def test_2d_project_refuses_a_3d_stack_without_slice_index(project):
    with pytest.raises(DatasetError, match="project is 2D.*slice_index"):
        project.dataset.add(_image((6, 16, 16)), _binary((6, 16, 16)))


@pytest.mark.parametrize("channel_axis", [0, -1, 2])
def test_add_multichannel_image(tmp_path, channel_axis):
    project = TrainingProject.create(tmp_path / "rgb", architecture={"input_channels": 3})
    channel_first = _image((3, 16, 20))
    image = channel_first if channel_axis == 0 else np.moveaxis(channel_first, 0, -1)
    record = project.dataset.add(image, _binary((16, 20)), channel_axis=channel_axis)
    assert record.image_channels == 3
    assert record.image_shape == [3, 16, 20]
    assert record.mask_shape == [16, 20]
    saved_image, _ = project.dataset.load(record.pair_id)
    np.testing.assert_array_equal(saved_image, channel_first)


def test_image_channels_must_match_input_channels(project):
    before = project.layout.manifest.read_bytes()
    with pytest.raises(DatasetError, match=r"3 channel\(s\) but the architecture expects input_channels 1"):
        project.dataset.add(_image((16, 16, 3)), _binary((16, 16)), channel_axis=-1)
    assert project.layout.manifest.read_bytes() == before


def test_single_channel_image_refused_by_a_multichannel_project(tmp_path):
    project = TrainingProject.create(tmp_path / "rgb", architecture={"input_channels": 2})
    with pytest.raises(DatasetError, match=r"1 channel\(s\) but the architecture expects input_channels 2"):
        project.dataset.add(_image((16, 16)), _binary((16, 16)))


def test_rgb_image_without_channel_axis_is_refused_with_a_hint(tmp_path):
    project = TrainingProject.create(tmp_path / "rgb", architecture={"input_channels": 3})
    with pytest.raises(DatasetError, match="channel_axis=2"):
        project.dataset.add(_image((16, 16, 3)), _binary((16, 16)))


def test_add_slice_of_a_stack(project):
    stack = _image((6, 16, 16))
    record = project.dataset.add(stack, _binary((16, 16)), slice_index=2)
    assert record.spatial_dims == "2d"
    assert record.slice_index == 2
    assert record.image_shape == [16, 16]
    saved_image, _ = project.dataset.load(record.pair_id)
    np.testing.assert_array_equal(saved_image, stack[2])


@pytest.mark.parametrize("channel_axis", [0, -1])
def test_add_slice_of_a_multichannel_stack(tmp_path, channel_axis):
    project = TrainingProject.create(tmp_path / "rgb", architecture={"input_channels": 3})
    stack = _image((3, 6, 16, 16))  # C, Z, Y, X
    image = stack if channel_axis == 0 else np.moveaxis(stack, 0, -1)
    record = project.dataset.add(image, _binary((16, 16)), channel_axis=channel_axis, slice_index=4)
    assert (record.image_shape, record.image_channels, record.slice_index) == ([3, 16, 16], 3, 4)
    np.testing.assert_array_equal(project.dataset.load(record.pair_id)[0], stack[:, 4])


def test_add_multichannel_3d_pair(tmp_path):
    project = TrainingProject.create(tmp_path / "vol", spatial_dims="3d", architecture={"input_channels": 2})
    image = _image((4, 8, 8, 2), np.uint16)
    record = project.dataset.add(image, _binary((4, 8, 8)), channel_axis=-1)
    assert (record.spatial_dims, record.image_shape, record.mask_shape) == ("3d", [2, 4, 8, 8], [4, 8, 8])
    np.testing.assert_array_equal(project.dataset.load(record.pair_id)[0], np.moveaxis(image, -1, 0))


def test_add_slice_of_a_stack_with_a_3d_mask(project):
    stack = _image((6, 16, 16))
    mask_stack = _binary((6, 16, 16))
    record = project.dataset.add(stack, mask_stack, slice_index=4)
    _, saved_mask = project.dataset.load(record.pair_id)
    np.testing.assert_array_equal(saved_mask, mask_stack[4])


def test_slice_index_outside_the_stack_is_refused(project):
    with pytest.raises(DatasetError, match=r"slice_index 6 is outside the stack: use 0\.\.5"):
        project.dataset.add(_image((6, 16, 16)), _binary((16, 16)), slice_index=6)


def test_2d_mask_with_3d_stack_is_refused_clearly(project):
    with pytest.raises(DatasetError) as info:
        project.dataset.add(_image((6, 16, 16)), _binary((16, 16)))
    message = str(info.value)
    assert "mask is 2D" in message
    assert "3D stack" in message
    assert "slice_index" in message


def test_mismatched_shapes_are_refused(project):
    with pytest.raises(DatasetError, match="does not match mask spatial shape"):
        project.dataset.add(_image((16, 16)), _binary((16, 17)))


def test_add_multiclass_pair(multiclass):
    mask = np.zeros((16, 16), np.uint8)
    mask[:4] = 1
    mask[-4:] = 2
    record = multiclass.dataset.add(_image((16, 16)), mask, mask_mode="multiclass")
    assert record.mask_mode == "multiclass"
    assert record.source_labels == [0, 1, 2]
    assert record.saved_labels == [0, 1, 2]
    assert record.label_transform == "identity (labels 0..2)"
    np.testing.assert_array_equal(multiclass.dataset.load(record.pair_id)[1], mask)


def test_multiclass_labels_beyond_num_classes_are_refused(multiclass):
    with pytest.raises(DatasetError, match="outside 0..2"):
        multiclass.dataset.add(_image((16, 16)), np.full((16, 16), 3, np.uint8), mask_mode="multiclass")


def test_add_target_class_by_name(multiclass):
    record = multiclass.dataset.add(
        _image((16, 16)), np.eye(16, dtype=np.uint8) * 7, mask_mode="target-class", target_class="nucleus"
    )
    assert record.target_class_name == "nucleus"
    assert record.source_labels == [0, 7]
    assert record.saved_labels == [0, 2]
    assert "nonzero -> 2" in record.label_transform
    assert "nucleus" in record.label_transform


def test_add_target_class_by_id(multiclass):
    record = multiclass.dataset.add(
        _image((16, 16)), np.eye(16, dtype=np.uint8), mask_mode="target-class", target_class=1
    )
    assert record.target_class_name == "cell"
    assert record.saved_labels == [0, 1]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mitochondrion", "unknown target class 'mitochondrion'"),
        (3, "not a foreground class id"),
        (0, "not a foreground class id"),
        (None, "needs a target class"),
    ],
)
def test_bad_target_class_is_refused(multiclass, target, message):
    with pytest.raises(DatasetError, match=message):
        multiclass.dataset.add(
            _image((16, 16)), np.eye(16, dtype=np.uint8), mask_mode="target-class", target_class=target
        )


def test_target_class_outside_target_class_mode_is_refused(multiclass):
    with pytest.raises(DatasetError, match="only used with mask mode target-class"):
        multiclass.dataset.add(
            _image((16, 16)), np.eye(16, dtype=np.uint8), mask_mode="binary", target_class="cell"
        )


def test_add_label_map(multiclass):
    mask = np.zeros((16, 16), np.uint16)
    mask[:3] = 300
    mask[5:8] = 7
    mask[10:] = 9  # not mapped -> background
    record = multiclass.dataset.add(_image((16, 16)), mask, mask_mode="label-map", label_map={300: 1, 7: 2})
    assert record.mask_mode == "label-map"
    assert record.source_labels == [0, 7, 9, 300]
    assert record.saved_labels == [0, 1, 2]
    assert "unmapped" in record.label_transform
    assert record.mask_dtype == "uint8"
    saved = multiclass.dataset.load(record.pair_id)[1]
    assert saved[0, 0] == 1 and saved[6, 0] == 2 and saved[12, 0] == 0


def test_add_multilabel_from_a_list_of_masks(multilabel):
    masks = [_binary((16, 16)) * (i + 1) for i in range(3)]
    record = multilabel.dataset.add(_image((16, 16)), masks, mask_mode="multilabel")
    assert record.mask_mode == "multilabel"
    assert record.mask_shape == [3, 16, 16]
    assert record.image_shape == [16, 16]
    assert record.saved_labels == [0, 1]
    saved = multilabel.dataset.load(record.pair_id)[1]
    np.testing.assert_array_equal(saved, np.stack([(m > 0).astype(np.uint8) for m in masks]))


def test_add_multilabel_with_a_mask_channel_axis(multilabel):
    stack = _binary((16, 16, 3))
    record = multilabel.dataset.add(_image((16, 16)), stack, mask_mode="multilabel", mask_channel_axis=-1)
    assert record.mask_shape == [3, 16, 16]
    np.testing.assert_array_equal(multilabel.dataset.load(record.pair_id)[1], np.moveaxis(stack, -1, 0))


def test_multilabel_refusals(multilabel, project):
    with pytest.raises(DatasetError, match=r"2 channel\(s\) but the architecture has output_channels 3"):
        multilabel.dataset.add(_image((16, 16)), [_binary((16, 16))] * 2, mask_mode="multilabel")
    with pytest.raises(DatasetError, match="output mode is multilabel"):
        multilabel.dataset.add(_image((16, 16)), _binary((16, 16)))
    with pytest.raises(DatasetError, match="needs its channel axis"):
        multilabel.dataset.add(_image((16, 16)), _binary((3, 16, 16)), mask_mode="multilabel")
    with pytest.raises(DatasetError, match="needs a multilabel project"):
        project.dataset.add(_image((16, 16)), [_binary((16, 16))], mask_mode="multilabel")
    assert len(multilabel.dataset) == 0
    assert len(project.dataset) == 0


def test_binary_project_refuses_labels_above_one(project):
    mask = np.zeros((16, 16), np.uint8)
    mask[:4] = 2
    with pytest.raises(DatasetError, match=r"outside 0\.\.1"):
        project.dataset.add(_image((16, 16)), mask, mask_mode="multiclass")
    with pytest.raises(DatasetError, match=r"outside 0\.\.1"):
        project.dataset.add(_image((16, 16)), mask, mask_mode="label-map", label_map={2: 2})
    with pytest.raises(DatasetError, match="target class id 2"):
        project.dataset.add(_image((16, 16)), mask, mask_mode="target-class", target_class=2)
    assert len(project.dataset) == 0
    # binary mode is the way: nonzero -> 1
    assert project.dataset.add(_image((16, 16)), mask).saved_labels == [0, 1]


def test_unknown_mask_mode_is_refused(project):
    with pytest.raises(DatasetError, match="unknown mask mode"):
        project.dataset.add(_image((16, 16)), _binary((16, 16)), mask_mode="instances")


# ----------------------------------------------------------------------------- splits


def test_auto_split_sequence(project, add_pair):
    splits = [add_pair(project, seed=i).split for i in range(20)]
    assert splits[:5] == ["train", "train", "val", "train", "benchmark"]
    assert splits[0] == "train"
    # one in five becomes benchmark once there are five
    for n in range(1, 21):
        assert splits[:n].count("benchmark") == n // 5
    assert [i + 1 for i, s in enumerate(splits) if s == "benchmark"] == [5, 10, 15, 20]
    others = [s for s in splits if s != "benchmark"]
    assert others.count("val") == round(0.2 * len(others))
    assert all(p.split_assigned_by == "auto" for p in project.dataset.pairs)
    assert project.dataset.split_counts() == {"train": 13, "val": 3, "benchmark": 4}
    assert project.dataset.ids("benchmark") == ["pair_0005", "pair_0010", "pair_0015", "pair_0020"]


def test_auto_split_follows_project_settings(project, add_pair):
    def change(config):
        config.benchmark_every = 3
        config.training.val_fraction = 0.0

    project.update_config(change)
    splits = [add_pair(project, seed=i).split for i in range(6)]
    assert splits == ["train", "train", "benchmark", "train", "train", "benchmark"]


def test_auto_split_is_a_pure_function():
    assert auto_split([]) == "train"


def test_explicit_split_wins_and_is_recorded_as_user(project, add_pair):
    record = add_pair(project, split="benchmark")
    assert record.split == "benchmark"
    assert record.split_assigned_by == "user"
    record = add_pair(project, seed=1, split="val")
    assert (record.split, record.split_assigned_by) == ("val", "user")
    # the explicit benchmark pair counts towards the one-in-five quota
    splits = [add_pair(project, seed=i).split for i in range(2, 5)]
    assert "benchmark" not in splits
    assert project.dataset.split_counts()["benchmark"] == 1


def test_unknown_split_is_refused(project, add_pair):
    with pytest.raises(DatasetError, match="split 'test' is not one of train, val, benchmark"):
        add_pair(project, split="test")
    assert len(project.dataset) == 0


def test_set_split(project, add_pair):
    record = add_pair(project)
    assert record.split_assigned_by == "auto"
    changed = project.dataset.set_split(record.pair_id, "benchmark")
    assert (changed.split, changed.split_assigned_by) == ("benchmark", "user")
    reread = TrainingProject.open(project.root).dataset.get(record.pair_id)
    assert (reread.split, reread.split_assigned_by) == ("benchmark", "user")
    with pytest.raises(DatasetError, match="split 'holdout'"):
        project.dataset.set_split(record.pair_id, "holdout")
    with pytest.raises(DatasetError, match="no pair 'pair_0099'"):
        project.dataset.set_split("pair_0099", "val")


# ----------------------------------------------------------------------------- removal


def test_remove_deletes_files_and_entry_and_leaves_a_tombstone(project, add_pair):
    keep = add_pair(project, seed=1)
    gone = add_pair(project, seed=2)
    tombstone = project.dataset.remove(gone.pair_id)
    assert not (project.root / gone.image_path).exists()
    assert not (project.root / gone.mask_path).exists()
    assert (project.root / keep.image_path).exists()
    assert project.dataset.ids() == [keep.pair_id]
    manifest = project.manifest
    assert manifest.get(gone.pair_id) is None
    assert [r.pair_id for r in manifest.removed_pairs] == [gone.pair_id]
    assert tombstone.image_sha256 == gone.image_sha256
    assert tombstone.mask_sha256 == gone.mask_sha256
    assert tombstone.split == gone.split
    assert tombstone.removed_at.tzinfo is not None
    with pytest.raises(DatasetError, match="no pair"):
        project.dataset.get(gone.pair_id)
    with pytest.raises(DatasetError, match="no pair"):
        project.dataset.remove(gone.pair_id)


def test_removed_pair_keeps_checkpoint_records_readable(project, add_pair):
    pair = add_pair(project)
    checkpoint_id, path = project.checkpoints.reserve()
    path.write_bytes(b"weights")
    project.checkpoints.register(
        checkpoint_id,
        architecture=project.architecture.model_dump(mode="json"),
        dataset_pair_ids=[pair.pair_id],
        split={"train": [pair.pair_id]},
    )
    assert project.dataset.get(pair.pair_id).used_by_checkpoints == [checkpoint_id]
    tombstone = project.dataset.remove(pair.pair_id)
    assert tombstone.used_by_checkpoints == [checkpoint_id]
    reopened = TrainingProject.open(project.root)
    record = reopened.checkpoints.get(checkpoint_id)
    assert record.dataset_pair_ids == [pair.pair_id]
    assert reopened.manifest.removed_pairs[0].used_by_checkpoints == [checkpoint_id]


def test_pair_ids_are_never_reused(project, add_pair):
    ids = [add_pair(project, seed=i).pair_id for i in range(3)]
    assert ids == ["pair_0001", "pair_0002", "pair_0003"]
    project.dataset.remove("pair_0003")
    project.dataset.remove("pair_0001")
    assert add_pair(project, seed=9).pair_id == "pair_0004"
    assert project.dataset.ids() == ["pair_0002", "pair_0004"]
    assert project.manifest.next_pair_number == 5


# ----------------------------------------------------------------------------- from files


def test_add_files_from_tiff_png_and_npy(project, tmp_path):
    from PIL import Image

    image = _image((16, 16))
    mask = _binary((16, 16)) * 255
    tifffile.imwrite(tmp_path / "img.tif", image)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "mask.npy", mask)
    Image.fromarray(image).save(tmp_path / "img.png")
    tifffile.imwrite(tmp_path / "mask.tif", mask)

    a = project.dataset.add_files(tmp_path / "img.tif", tmp_path / "mask.png")
    b = project.dataset.add_files(str(tmp_path / "img.npy"), str(tmp_path / "mask.npy"), allow_duplicate=True)
    c = project.dataset.add_files(tmp_path / "img.png", tmp_path / "mask.tif", split="val", allow_duplicate=True)
    assert a.source_files == {"image": str(tmp_path / "img.tif"), "mask": str(tmp_path / "mask.png")}
    assert b.source_files["mask"] == str(tmp_path / "mask.npy")
    assert c.split == "val"
    for record in (a, b, c):
        assert record.source_labels == [0, 255]
        assert record.saved_labels == [0, 1]
        saved_image, saved_mask = project.dataset.load(record.pair_id)
        np.testing.assert_array_equal(saved_image, image)
        np.testing.assert_array_equal(saved_mask, (mask > 0).astype(np.uint8))
    assert a.image_sha256 == b.image_sha256 == c.image_sha256


def test_add_files_multilabel_from_several_files(multilabel, tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"m{i}.npy"
        np.save(path, _binary((16, 16)))
        paths.append(path)
    np.save(tmp_path / "img.npy", _image((16, 16)))
    record = multilabel.dataset.add_files(tmp_path / "img.npy", paths, mask_mode="multilabel")
    assert record.mask_shape == [3, 16, 16]
    assert record.source_files["mask"] == ";".join(str(p) for p in paths)


def test_add_files_missing_file_is_refused(project, tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        project.dataset.add_files(tmp_path / "nope.tif", tmp_path / "nope_mask.tif")


# ----------------------------------------------------------------------------- failures change nothing


@pytest.mark.parametrize(
    "bad_mask",
    [
        np.full((16, 16), -1, np.int16),  # negative labels
        np.full((16, 16), 0.5, np.float32),  # probabilities
        np.zeros((16, 17), np.uint8),  # wrong shape
        np.array([["a"] * 16] * 16),  # not numbers
    ],
)
def test_failed_add_changes_nothing_on_disk(project, add_pair, tree, bad_mask):
    add_pair(project)
    before_tree = tree(project.root)
    before = {p: (project.root / p).read_bytes() for p in before_tree if (project.root / p).is_file()}
    with pytest.raises(DatasetError):
        project.dataset.add(_image((16, 16)), bad_mask)
    assert tree(project.root) == before_tree
    assert {p: (project.root / p).read_bytes() for p in before} == before
    assert add_pair(project, seed=5).pair_id == "pair_0002"


def test_saved_files_hash_to_the_manifest(project, add_pair):
    for i in range(3):
        add_pair(project, seed=i)
    for pair in project.dataset.pairs:
        assert array_sha256(read_tiff(project.root / pair.image_path)) == pair.image_sha256
        assert array_sha256(read_tiff(project.root / pair.mask_path)) == pair.mask_sha256
        assert len(pair.image_sha256) == len(hashlib.sha256().hexdigest())


def test_add_never_overwrites_orphan_files_left_on_disk(project, add_pair):
    add_pair(project, seed=1)
    orphan_image = project.layout.images_dir / "pair_0002.tif"
    orphan_mask = project.layout.masks_dir / "pair_0003.tif"
    orphan_image.write_bytes(b"left by an interrupted add")
    orphan_mask.write_bytes(b"also left behind")
    record = add_pair(project, seed=2)
    assert record.pair_id == "pair_0004"
    assert orphan_image.read_bytes() == b"left by an interrupted add"
    assert orphan_mask.read_bytes() == b"also left behind"
    assert project.manifest.next_pair_number == 5
    assert add_pair(project, seed=3).pair_id == "pair_0005"


def test_add_after_an_older_manifest_was_restored_keeps_the_newer_pair_files(project, add_pair):
    from napari_training_assistant.project.doctor import run_doctor

    add_pair(project, seed=1)
    older = project.layout.manifest.read_bytes()  # e.g. a copy someone kept, restored by hand
    newer = add_pair(project, seed=2)
    newer_image = (project.root / newer.image_path).read_bytes()
    project.layout.manifest.write_text("{ damaged")
    (project.layout.manifest.parent / "manifest.json.bak").write_bytes(older)
    run_doctor(project.root)  # restores the older copy: pair_0002's files become unlisted
    assert project.dataset.ids() == ["pair_0001"]
    record = add_pair(project, seed=3)
    assert record.pair_id != newer.pair_id
    assert (project.root / newer.image_path).read_bytes() == newer_image
