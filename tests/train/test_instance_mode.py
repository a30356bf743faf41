"""Instance output mode (issue 14, item 1): masks keep object ids, the target is foreground + boundary,
a seeded watershed recovers touching objects, and object matching reaches validation, the benchmark
and predictions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_training_assistant.predict.instances import (
    InstanceSettings,
    instance_labels,
    targets_from_instances,
)
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.errors import DatasetError
from napari_training_assistant.project.masks import MaskWarning, prepare_mask
from napari_training_assistant.project.schemas import default_architecture
from napari_training_assistant.train.instance_metrics import match


def _touching_pair() -> np.ndarray:
    labels = np.zeros((40, 48), np.uint16)
    labels[5:20, 5:20] = 7  # two squares sharing a face
    labels[5:20, 20:35] = 9
    labels[28:36, 30:44] = 12  # a third one, apart
    return labels


def test_the_architecture_derives_two_sigmoid_channels():
    arch = default_architecture(output_mode="instance")
    assert (arch.output_channels, arch.activation, arch.loss) == (2, "sigmoid", "bce_dice")
    with pytest.raises(ValueError, match="output_channels 2"):
        arch.model_copy(update={"output_channels": 3}).model_validate(arch.model_dump() | {"output_channels": 3})
    with pytest.raises(ValueError, match="does not fit"):
        default_architecture(output_mode="instance", output_channels=3)


def test_instance_masks_keep_their_objects_renumbered():
    prepared = prepare_mask(_touching_pair(), "instance")
    assert prepared.saved_labels == [0, 1, 2, 3] and prepared.source_labels == [0, 7, 9, 12]
    assert prepared.array.dtype == np.uint16 and prepared.warning is None
    assert "renumbered 1..3" in prepared.label_transform
    many = np.arange(70_000, dtype=np.int64).reshape(280, 250)
    assert prepare_mask(many, "instance").array.dtype == np.uint32  # beyond uint16: kept, not refused
    with pytest.raises(DatasetError, match="negative"):
        prepare_mask(-_touching_pair().astype(np.int32), "instance")


def test_a_semantic_mask_in_an_instance_project_is_added_with_a_warning_naming_it(tmp_path):
    project = TrainingProject.create(tmp_path / "p", "p", output_mode="instance")
    image = np.random.default_rng(0).integers(0, 255, (40, 48), np.uint8)
    semantic = (_touching_pair() > 0).astype(np.uint8)
    semantic[30:34, 2:6] = 1  # three separate blobs, one id
    with pytest.warns(MaskWarning, match=r"pair_0001 \(cells_labels\): 3 separate objects share 1 id.*give every object its own id"):
        record = project.dataset.add(image, semantic, mask_layer="cells_labels")
    assert record.mask_mode == "instance"  # the default binary keeps ids in an instance project
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        project.dataset.add(image, _touching_pair())  # a real instance mask: no warning
    assert project.dataset.pairs[1].saved_labels == [0, 1, 2, 3]


def test_mask_modes_must_fit_the_output_mode(tmp_path):
    image = np.zeros((40, 48), np.uint8)
    instance = TrainingProject.create(tmp_path / "i", "i", output_mode="instance")
    with pytest.raises(DatasetError, match="output mode is instance"):
        instance.dataset.add(image, _touching_pair(), mask_mode="target-class", target_class="foreground")
    binary = TrainingProject.create(tmp_path / "b", "b")
    with pytest.raises(DatasetError, match="needs an instance project"):
        binary.dataset.add(image, _touching_pair(), mask_mode="instance")
    assert not instance.dataset.pairs and not binary.dataset.pairs


def test_targets_separate_touching_objects_by_a_rim_and_not_at_crop_edges():
    labels = _touching_pair()
    foreground, boundary = targets_from_instances(labels)
    assert foreground.sum() == (labels > 0).sum()
    assert boundary[10, 19] == 1 and boundary[10, 20] == 1 and boundary[10, 12] == 0  # the shared face, both sides
    assert (boundary <= foreground).all()
    edge = np.zeros((10, 10), np.uint8)
    edge[:, :5] = 1  # an object cut by the crop at y = 0, y = 9 and x = 0
    rim = targets_from_instances(edge)[1]
    assert rim[5, 0] == 0 and rim[0, 2] == 0 and rim[5, 4] == 1


def test_the_watershed_recovers_touching_objects_that_a_threshold_merges():
    labels = _touching_pair()
    probabilities = targets_from_instances(labels) * 0.9 + 0.05
    found = instance_labels(probabilities)
    assert found.dtype == np.uint32 and found.max() == 3
    assert match(labels, found)[-1].accuracy == 1.0  # every object at IoU 0.95
    from scipy import ndimage

    assert ndimage.label(probabilities[0] > 0.5)[1] == 2  # what connected components would give


def test_foreground_without_a_seed_is_kept_and_small_objects_are_removed():
    probabilities = np.zeros((2, 30, 30), np.float32)
    probabilities[0, 2:12, 2:12] = 0.9  # all boundary: no seed
    probabilities[1, 2:12, 2:12] = 0.9
    probabilities[0, 20:22, 20:22] = 0.9  # 4 pixels: noise
    found = instance_labels(probabilities)
    assert found.max() == 1 and (found > 0).sum() == 100
    assert instance_labels(probabilities, InstanceSettings(min_size=1)).max() == 2
    assert InstanceSettings().record(3) == {
        "instance_foreground_threshold": 0.5, "instance_boundary_threshold": 0.5, "instance_min_size": 40, "instance_min_seed_size": 10,
        "instance_split_depth": 0.0,
    }  # fmt: skip
    for bad in ({"foreground_threshold": 1.0}, {"boundary_threshold": 0.0}, {"min_size": -1}, {"min_size": 2.5}):
        with pytest.raises(ValueError):
            InstanceSettings(**bad)
    with pytest.raises(ValueError, match="foreground and boundary"):
        instance_labels(np.zeros((3, 8, 8)))


def test_the_watershed_works_in_3d():
    labels = np.zeros((8, 24, 24), np.uint16)
    labels[1:7, 2:12, 2:12] = 1
    labels[1:7, 2:12, 12:22] = 2
    found = instance_labels(targets_from_instances(labels) * 0.9 + 0.05)
    assert found.max() == 2 and match(labels, found)[0].accuracy == 1.0


def test_samplers_give_foreground_and_boundary_targets_and_validation_keeps_the_objects(make_project):
    from napari_training_assistant.train.sampler import PatchSampler, ValidationTiles, load_pairs

    project = make_project(output_mode="instance")
    pairs = load_pairs(project, [p.pair_id for p in project.dataset.pairs], "percentile")
    sample = PatchSampler(pairs, (32, 32), output_mode="instance", seed=1)[0]
    assert tuple(sample["target"].shape) == (2, 32, 32) and sample["target"].dtype == torch.float32
    assert (sample["target"][1] <= sample["target"][0]).all()
    tile = ValidationTiles(pairs, (32, 32), output_mode="instance")[0]
    assert tuple(tile["instances"].shape) == (32, 32) and int(tile["instances"].max()) >= 1
    assert torch.equal(tile["target"][0], (tile["instances"] > 0).float())


def test_pixel_scores_of_an_instance_model_are_the_foreground_channel():
    from napari_training_assistant.train.losses import make_loss
    from napari_training_assistant.train.metrics import ScoreAccumulator

    arch = default_architecture(output_mode="instance")
    target = torch.from_numpy(targets_from_instances(_touching_pair()))[None]
    logits = torch.where(target > 0, 5.0, -5.0)
    logits[:, 1] = -5.0  # boundary entirely missed: pixel scores do not see it ...
    scores = ScoreAccumulator(arch)
    scores.update(logits, target)
    assert scores.compute()["dice"] == pytest.approx(1.0) and len(scores.compute()["dice_per_class"]) == 1
    loss = make_loss(arch)
    assert float(loss(logits, target)) > float(loss(torch.where(target > 0, 5.0, -5.0), target))  # ... the loss does


def test_an_instance_project_trains_validates_benchmarks_and_predicts_objects(make_project, fast_options):
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.predict.project_prediction import predict_array
    from napari_training_assistant.project.image_io import read_tiff
    from napari_training_assistant.train import train_project

    project = make_project(output_mode="instance")
    result = train_project(project, fast_options(epochs=2))
    for key in ("accuracy_50", "accuracy_mean", "f1_50", "panoptic_quality_50"):
        assert 0.0 <= result.metrics["objects"][key] <= 1.0
    row = project.history.latest_benchmark()
    assert 0.0 <= row["instance_accuracy_50"] <= 1.0 and 0.0 <= row["dice"] <= 1.0
    image, _ = make_nuclei((48, 48), n_nuclei=4, radius_range=(4.0, 7.0), seed=50)
    record = predict_array(project, image, source="unseen", instance=InstanceSettings(min_size=2))
    labels = read_tiff(project.layout.absolute(record.path))
    assert labels.dtype == np.uint32 and record.parameters["output_mode"] == "instance"
    assert record.parameters["instance_min_size"] == 2 and record.parameters["objects"] == int(labels.max())
    assert sorted(np.unique(labels[labels > 0])) == list(range(1, int(labels.max()) + 1))  # ids 1..N, consecutive


def test_a_3d_instance_project_trains_and_predicts_objects(make_project, fast_options):
    from napari_training_assistant.predict.project_prediction import predict_array
    from napari_training_assistant.project.image_io import read_tiff
    from napari_training_assistant.train import train_project

    project = make_project(spatial_dims="3d", output_mode="instance")
    assert project.dataset.pairs[0].mask_mode == "instance" and project.architecture.output_channels == 2
    result = train_project(project, fast_options(patch_size=[8, 16, 16]))
    assert "accuracy_50" in result.metrics["objects"]
    image, _ = project.dataset.load(project.dataset.pairs[0].pair_id)
    record = predict_array(project, image, source="pair 1", instance=InstanceSettings(min_size=1))
    labels = read_tiff(project.layout.absolute(record.path))
    assert labels.shape == image.shape and labels.dtype == np.uint32 and record.parameters["instance_min_size"] == 1
