"""Predicting with checkpoints of `nta train-points`: a 3D volume in, the 2 channels out; a checkpoint
trained with a centre marker is refused in one line (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from napari_training_assistant.cli.main import main
from napari_training_assistant.data.synthetic_em import make_em_volume, write_synapse_dataset
from napari_training_assistant.model import load_model
from napari_training_assistant.predict.project_prediction import predict_array
from napari_training_assistant.project import CheckpointError, DatasetError, TrainingProject
from napari_training_assistant.project.image_io import read_tiff, write_tiff
from napari_training_assistant.train.point_run import train_points

WINDOW = [8, 32, 32]


@pytest.fixture(scope="module")
def em():
    return make_em_volume((16, 128, 128), seed=0)


@pytest.fixture(scope="module")
def point_project(tmp_path_factory, em):
    """train_point_project(name, **training): a project with one tiny 1-epoch point-window checkpoint."""
    data = tmp_path_factory.mktemp("synapses")
    write_synapse_dataset(data, volume=em, partners=False)  # whole-volume prediction: no centre marker

    def _train(name: str, **training) -> TrainingProject:
        spec = yaml.safe_load((data / "spec.yaml").read_text())
        spec["project"] = str(data / name)
        spec["window_size"] = WINDOW
        spec["model"].update(depth=2, base_channels=8)
        spec["training"].update(epochs=1, device="cpu", batch_size=4, samples_per_epoch=4, **training)
        path = data / f"spec_{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        assert train_points(path).status == "completed"
        return TrainingProject.open(data / name)

    return _train


@pytest.fixture(scope="module")
def plain(point_project) -> TrainingProject:
    return point_project("plain")


def _volume(em, shape=(12, 40, 48)) -> np.ndarray:
    return np.ascontiguousarray(em.image[: shape[0], : shape[1], : shape[2]])


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_nta_predict_writes_the_two_channel_prediction_of_a_volume(plain, em, tmp_path, capsys):
    volume = _volume(em)
    image = write_tiff(tmp_path / "volume.tif", volume)
    capsys.readouterr()
    argv = ["predict", str(plain.root), "--image", str(image), "--checkpoint", "unet_run_001"]
    assert main([*argv, "--json", "--save-probabilities"]) == 0
    payload = json.loads(_one_line(capsys.readouterr().out))
    assert payload["prediction_id"] == "prediction_001" and payload["checkpoint_id"] == "unet_run_001"
    labels = read_tiff(Path(payload["prediction_path"]))
    assert labels.shape == (2, *volume.shape) and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}
    probabilities = read_tiff(plain.layout.absolute(payload["probabilities_path"]))
    assert probabilities.shape == (2, *volume.shape) and probabilities.dtype == np.float32
    np.testing.assert_array_equal(labels, (probabilities > 0.5).astype(np.uint8))
    parameters = payload["parameters"]
    assert parameters["normalization"] == "region" and parameters["tile_size"] == WINDOW  # the training window
    assert parameters["output_mode"] == "multilabel"
    assert parameters["axis_order"] == "zyx" and parameters["resolution"] == [40.0, 4.0, 4.0]
    assert [p.prediction_id for p in plain.predictions.registry.predictions] == ["prediction_001"]


def test_predict_array_normalises_a_volume_as_point_training_did(plain, em):
    window = _volume(em, tuple(WINDOW))  # one tile of the training window: no blending
    record = predict_array(plain, window, source="window", checkpoint_id="unet_run_001", overlap=0.0, save_probabilities=True)
    assert record.shape == [2, *WINDOW]
    probabilities = read_tiff(plain.layout.absolute(record.probabilities_path))
    model = load_model(plain.layout.absolute(plain.checkpoints.get("unet_run_001").path))
    with torch.no_grad():  # 8-bit windows are trained as value / 255 (tests/data/test_point_windows.py)
        expected = torch.sigmoid(model(torch.from_numpy(window.astype(np.float32) / 255.0)[None, None]))[0].numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    with pytest.raises(DatasetError, match=r"2 channel\(s\).*expects 1 channel\(s\), 3d"):
        predict_array(plain, np.stack([window, window], axis=-1), source="two channels", channel_axis=-1)


def test_a_centre_marker_checkpoint_is_refused_in_one_line(point_project, em, tmp_path, capsys):
    project = point_project("marker", centre_marker=True)
    image = write_tiff(tmp_path / "volume.tif", _volume(em))
    capsys.readouterr()
    assert main(["predict", str(project.root), "--image", str(image), "--json"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("nta predict: error: checkpoint unet_run_001 was trained with a centre marker")
    assert "centre_marker: false" in line
    with pytest.raises(CheckpointError, match="centre marker"):
        predict_array(project, _volume(em), source="volume")
    assert project.predictions.registry.predictions == []
    assert not list(project.layout.predictions_dir.glob("*.tif"))
