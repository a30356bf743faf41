"""Object post-processing tuned on the validation pairs after an instance run (issue 14's quality goal):
the grid finds settings the defaults miss, ties keep the defaults, too little validation keeps them with a
reason, and every prediction and benchmark of the checkpoint starts from what was tuned."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.predict.instances import InstanceSettings, checkpoint_settings, instance_labels
from napari_training_assistant.project.errors import CheckpointError
from napari_training_assistant.train.instance_metrics import match_dataset, summary
from napari_training_assistant.train.instance_tuning import MIN_OBJECTS, _central_box, tune_settings


def _discs(count: int, seed: int = 0) -> np.ndarray:
    """`count` separate discs of radius 5-8 on a grid, ids 1..count."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(count)))
    labels = np.zeros((side * 24, side * 24), np.uint16)
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    for i in range(count):
        cy, cx, r = 12 + 24 * (i // side), 12 + 24 * (i % side), rng.uniform(5, 8)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = i + 1
    return labels


def _probabilities(labels: np.ndarray, inside: float) -> np.ndarray:
    """Foreground `inside` on the objects (0.05 outside), boundary 0.9 on their rims (0.1 elsewhere)."""
    from skimage.segmentation import find_boundaries

    rim = find_boundaries(labels, mode="inner") & (labels > 0)
    return np.stack([np.where(labels > 0, inside, 0.05), np.where(rim, 0.9, 0.1)]).astype(np.float32)


def _accuracy(labels: np.ndarray, probabilities: np.ndarray, settings: InstanceSettings) -> float:
    return summary(match_dataset([(labels, instance_labels(probabilities, settings))]))["accuracy_50"]


def test_dim_objects_the_default_threshold_misses_are_found_by_the_tuned_one():
    truth = _discs(12)
    dim = _probabilities(truth, inside=0.45)  # below the default foreground threshold 0.5
    assert _accuracy(truth, dim, InstanceSettings()) == 0.0
    tuning = tune_settings([(dim, truth)], 2)
    assert tuning.settings.foreground_threshold < 0.45 and tuning.accuracy_50 == 1.0 and tuning.default_accuracy_50 == 0.0
    record = tuning.record()
    assert record["tuned"] and record["val_objects"] == 12 and record["val_images"] == 1
    assert record["settings"] == tuning.settings.as_dict() and "0.000 -> 1.000" in tuning.summary()
    fresh = _discs(12, seed=1)  # other objects, same kind of model output: the tuned settings carry over
    assert _accuracy(fresh, _probabilities(fresh, 0.45), tuning.settings) == 1.0


def test_ties_keep_the_defaults_and_too_few_objects_are_not_tuned():
    truth = _discs(12)
    clear = _probabilities(truth, inside=0.95)  # every setting of the grid finds every object
    tuning = tune_settings([(clear, truth)], 2)
    assert tuning.settings == InstanceSettings().resolved(2) and tuning.accuracy_50 == 1.0
    few = _discs(MIN_OBJECTS - 1)
    kept = tune_settings([(_probabilities(few, 0.45), few)], 2)
    assert kept.settings == InstanceSettings().resolved(2) and kept.accuracy_50 is None
    assert not kept.record()["tuned"] and f"fewer than {MIN_OBJECTS}" in kept.summary()


def test_a_large_validation_pair_is_cropped_to_the_budget():
    assert _central_box((100, 80), 10_000) == (slice(0, 100), slice(0, 80))
    box = _central_box((1000, 1000), 250_000)
    assert [b.stop - b.start for b in box] == [500, 500] and box[0].start == 250
    assert _central_box((1000, 1000), 100) is None  # thinner than 32 px: not worth tuning on
    assert _central_box((4, 1000, 1000), 1_000_000) == (slice(0, 4), slice(250, 750), slice(250, 750))  # a thin axis stays whole


def test_the_users_settings_win_field_by_field_over_the_checkpoints():
    tuned = {"foreground_threshold": 0.3, "boundary_threshold": 0.7, "min_size": 30, "min_seed_size": 7, "split_depth": 1.0}
    merged = checkpoint_settings(InstanceSettings(min_size=60), tuned, "unet_run_001")
    assert merged == InstanceSettings(0.3, 0.7, 60, None, 1.0)
    assert merged.resolved(2).min_seed_size == 15  # a quarter of the user's min_size, not the tuned 7
    assert checkpoint_settings(None, tuned, "unet_run_001").resolved(2) == InstanceSettings(0.3, 0.7, 30, 7, 1.0)
    assert checkpoint_settings(None, None, "old") == InstanceSettings()
    with pytest.raises(CheckpointError, match=r"^checkpoint bad records unusable object post-processing \(foreground_threshold must lie in \(0, 1\)"):
        checkpoint_settings(None, {"foreground_threshold": 7}, "bad")


def test_a_finished_run_tunes_on_its_val_pair_and_predictions_and_the_benchmark_use_it(make_project, fast_options):
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.predict.project_prediction import predict_array
    from napari_training_assistant.train import train_project

    project = make_project(output_mode="instance", splits=("train", "train", "benchmark"))
    image, labels = make_nuclei((96, 96), n_nuclei=14, radius_range=(4.0, 7.0), seed=77)
    project.dataset.add(image, labels, split="val")
    lines = []
    result = train_project(project, fast_options(epochs=2), listener=lambda event: lines.append(event.message))
    tuning = result.metrics["instance_postprocessing"]
    assert tuning["val_images"] == 1 and tuning["val_objects"] == int(labels.max()) >= MIN_OBJECTS
    assert tuning["tuned"] and 0.0 <= tuning["default_val_accuracy_50"] <= tuning["val_accuracy_50"] <= 1.0
    assert any(line.startswith("object post-processing tuned on 1 validation image(s)") for line in lines)
    settings = tuning["settings"]
    assert project.checkpoints.get("latest").metrics["instance_postprocessing"] == tuning  # registered with it
    record = predict_array(project, image, source="val image")
    assert record.parameters["instance_tuned"] is True
    assert {k: record.parameters[f"instance_{k}"] for k in settings} == settings
    own = predict_array(project, image, source="val image", instance=InstanceSettings(boundary_threshold=0.05))
    assert own.parameters["instance_boundary_threshold"] == 0.05
    assert own.parameters["instance_foreground_threshold"] == settings["foreground_threshold"]


def test_a_run_without_val_pairs_keeps_the_defaults_and_says_why(make_project, fast_options):
    from napari_training_assistant.predict.project_prediction import predict_array
    from napari_training_assistant.train import train_project

    project = make_project(output_mode="instance", splits=("train", "train"))
    tuning = train_project(project, fast_options()).metrics["instance_postprocessing"]
    assert not tuning["tuned"] and tuning["note"] == "no val pairs: the run validated on its training pairs"
    assert tuning["settings"] == InstanceSettings().resolved(2).as_dict()
    image, _ = project.dataset.load(project.dataset.pairs[0].pair_id)
    assert predict_array(project, image, source="pair 1").parameters["instance_tuned"] is False


def test_an_exported_package_tells_how_its_objects_are_made():
    from napari_training_assistant.share.bioimageio_package import _objects_line

    arch = {"output_mode": "instance", "spatial_dims": "2d"}
    tuned = {"foreground_threshold": 0.3, "boundary_threshold": 0.7, "min_size": 30, "min_seed_size": 7, "split_depth": 1.0}
    (line,) = _objects_line(arch, tuned, "unet_run_001")
    assert line.startswith("Objects (tuned on the validation pairs after training): seeds are the connected pieces of foreground > 0.3 and boundary < 0.7")
    assert "under 30 px removed" in line
    assert "Objects (defaults): seeds are the connected pieces of foreground > 0.5" in _objects_line(arch, None, "old")[0]
    assert _objects_line({"output_mode": "binary", "spatial_dims": "2d"}, None, "b") == []


def test_a_failed_tuning_keeps_the_checkpoint_with_the_defaults(make_project, fast_options, monkeypatch):
    from napari_training_assistant.train import instance_tuning, train_project

    def broken(run):
        raise MemoryError("no room for the validation probabilities")

    monkeypatch.setattr(instance_tuning, "tune_run", broken)
    project = make_project(output_mode="instance")
    lines = []
    result = train_project(project, fast_options(), listener=lambda event: lines.append(event.message))
    assert result.status == "completed" and project.checkpoints.get("latest").checkpoint_id == result.checkpoint_id
    assert "instance_postprocessing" not in result.metrics
    assert "object post-processing not tuned (MemoryError: no room for the validation probabilities): predictions use the defaults" in lines
