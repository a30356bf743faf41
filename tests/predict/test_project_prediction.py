"""Predicting with a project checkpoint: numbered TIFFs, the registry, input checks, output modes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_training_assistant.data.synthetic_nuclei import make_nuclei
from napari_training_assistant.predict.project_prediction import predict_array, predict_file
from napari_training_assistant.project.errors import CheckpointError, DatasetError
from napari_training_assistant.project.image_io import read_tiff, write_tiff
from napari_training_assistant.project.user_input import InputError
from napari_training_assistant.train import train_project


@pytest.fixture
def trained(make_project, fast_options):
    """trained(**project_options): a tiny project with one completed checkpoint."""

    def _trained(**project_options):
        project = make_project(splits=("train", "val"), **project_options)
        train_project(project, fast_options(run_benchmark=False))
        return project

    return _trained


def _image(shape=(48, 48), seed=50) -> np.ndarray:
    return make_nuclei(shape, n_nuclei=4, radius_range=(4.0, 7.0), seed=seed)[0]


def test_predictions_are_numbered_and_recorded(trained):
    project = trained()
    image = _image()

    first = predict_array(project, image, source="layer nuclei", overlap=0.25)
    second = predict_array(project, image, source="layer nuclei (again)", checkpoint_id="unet_run_001")

    assert (first.prediction_id, second.prediction_id) == ("prediction_001", "prediction_002")
    assert first.path == "predictions/prediction_001.tif" and second.path == "predictions/prediction_002.tif"
    labels = read_tiff(project.layout.absolute(first.path))
    assert labels.shape == image.shape and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}
    assert first.shape == list(image.shape) and first.probabilities_path is None

    registry = json.loads(project.layout.prediction_registry.read_text())
    assert [p["prediction_id"] for p in registry["predictions"]] == ["prediction_001", "prediction_002"]
    record = registry["predictions"][0]
    assert record["source"] == "layer nuclei" and record["checkpoint_id"] == "unet_run_001"
    assert record["created_at"] and record["duration_s"] is not None
    parameters = record["parameters"]
    assert parameters["overlap"] == 0.25 and parameters["output_mode"] == "binary"
    assert parameters["normalization"] == "percentile" and parameters["threshold"] == 0.5
    assert registry["next_number"] == 3
    assert project.predictions.registry.predictions[1].source == "layer nuclei (again)"


def test_predict_file_records_the_file_as_source(trained, tmp_path):
    project = trained()
    path = write_tiff(tmp_path / "unseen.tif", _image(seed=51))
    record = predict_file(project, path)
    assert record.source == str(path) and record.checkpoint_id == "unet_run_001"
    assert project.layout.absolute(record.path).is_file()


def test_probabilities_are_saved_as_a_float_tiff(trained):
    project = trained()
    image = _image()
    record = predict_array(project, image, source="x", save_probabilities=True)
    assert record.probabilities_path == "predictions/prediction_001_probabilities.tif"
    probabilities = read_tiff(project.layout.absolute(record.probabilities_path))
    assert probabilities.dtype == np.float32 and probabilities.shape == (1, *image.shape)
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    labels = read_tiff(project.layout.absolute(record.path))
    np.testing.assert_array_equal(labels, (probabilities[0] > 0.5).astype(np.uint8))


def test_images_the_checkpoint_cannot_take_are_refused(trained):
    project = trained()
    image = _image()
    two_channels = np.stack([image, image])
    with pytest.raises(DatasetError, match=r"2 channel\(s\).*expects 1 channel\(s\)"):
        predict_array(project, two_channels, source="rgb-ish", channel_axis=0)
    with pytest.raises(DatasetError, match="3D.*2d"):
        predict_array(project, np.stack([image] * 4), source="a stack")
    with pytest.raises(DatasetError, match="1D"):
        predict_array(project, image[0], source="a line")
    assert project.predictions.registry.predictions == []
    assert not list(project.layout.predictions_dir.glob("*.tif"))


def test_non_finite_or_complex_images_and_bad_options_are_refused_before_any_write(trained):
    project = trained()
    image = _image().astype(np.float32)
    image[:2, :5] = np.nan
    image[10, 10] = -np.inf
    with pytest.raises(DatasetError, match=r"image layer x has 11 non-finite value\(s\) of 2304 \(10 NaN, 1 infinite\)"):
        predict_array(project, image, source="layer x")
    with pytest.raises(DatasetError, match="complex values"):
        predict_array(project, _image().astype(np.complex64), source="c")
    for options, message in [
        ({"overlap": 1.0}, "overlap: must be less than 1"),
        ({"overlap": float("nan")}, "overlap: must be a finite number"),
        ({"tile_size": [0, 0]}, "tile_size: must be greater than or equal to 1"),
        ({"tile_size": [2]}, r"tile_size \[2, 2\] is smaller than the model pools"),
        ({"tile_size": [32, 32, 32]}, "tile_size has 3 values but the model is 2d"),
        ({"batch_size": 0}, "batch_size: must be greater than or equal to 1"),
        ({"device": "warp-drive"}, "device: use auto, cpu, cuda, cuda:N or mps"),
    ]:
        with pytest.raises(InputError, match=message):
            predict_array(project, _image(), source="x", **options)
    assert project.predictions.registry.predictions == []
    assert not list(project.layout.predictions_dir.glob("*.tif"))


def test_one_tile_size_applies_to_every_axis(trained):
    record = predict_array(trained(), _image(), source="x", tile_size=32)
    assert record.parameters["tile_size"] == [32, 32]


def test_unknown_or_missing_checkpoints_are_refused(make_project, trained):
    untrained = make_project("untrained")
    with pytest.raises(CheckpointError, match="no completed checkpoint yet"):
        predict_array(untrained, _image(), source="x")
    project = trained()
    with pytest.raises(CheckpointError, match="no checkpoint 'unet_run_042'"):
        predict_array(project, _image(), source="x", checkpoint_id="unet_run_042")


def test_multiclass_predictions_are_class_labels(trained):
    project = trained(output_mode="multiclass", num_classes=3)
    image = _image()
    record = predict_array(project, image, source="x", save_probabilities=True)
    labels = read_tiff(project.layout.absolute(record.path))
    assert labels.shape == image.shape and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
    probabilities = read_tiff(project.layout.absolute(record.probabilities_path))
    assert probabilities.shape == (3, *image.shape)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(labels, probabilities.argmax(axis=0))
    assert record.parameters["output_mode"] == "multiclass"


def test_multilabel_predictions_have_one_channel_per_label(trained):
    project = trained(output_mode="multilabel")
    image = _image()
    record = predict_array(project, image, source="x")
    labels = read_tiff(project.layout.absolute(record.path))
    assert labels.shape == (2, *image.shape) and set(np.unique(labels)) <= {0, 1}


def test_3d_prediction_keeps_the_stack_shape(trained):
    project = trained(spatial_dims="3d")
    stack = np.stack([_image((32, 32))] * 12)  # fewer planes than the training patch: padded, then cropped
    record = predict_array(project, stack, source="stack")
    labels = read_tiff(project.layout.absolute(record.path))
    assert labels.shape == stack.shape and set(np.unique(labels)) <= {0, 1}
    with pytest.raises(DatasetError, match="2D.*3d"):
        predict_array(project, _image(), source="a plane")
