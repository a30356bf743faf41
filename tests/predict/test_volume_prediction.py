"""Block-wise prediction (`predict_volume`): equal to whole-image prediction, every source kind, resumable,
safe outputs, one-line errors with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr

from napari_training_assistant.cancel import CancelToken
from napari_training_assistant.model import build_model, load_model, save_checkpoint
from napari_training_assistant.predict import predict_image, probabilities_to_labels
from napari_training_assistant.predict.volume_prediction import PredictionFailed, predict_volume
from napari_training_assistant.predict.volume_store import OutputInUse
from napari_training_assistant.preprocess import normalize
from napari_training_assistant.progress import EventKind
from napari_training_assistant.project.errors import CheckpointError, DatasetError
from napari_training_assistant.project.schemas import ArchitectureConfig
from napari_training_assistant.project.user_input import InputError

IN_PROCESS = {"scheduler": "in-process"}


@pytest.fixture
def checkpoint(tmp_path):
    """checkpoint(**architecture) -> path of a random-weight depth-2 U-Net checkpoint with non-trivial BatchNorm."""

    def _make(name="model.pt", normalization="percentile", **arch):
        torch.manual_seed(len(tmp_path.name) + len(arch))
        architecture = ArchitectureConfig(**{"depth": 2, "base_channels": 8, **arch}).model_dump()
        model = build_model(architecture)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        path = tmp_path / name
        save_checkpoint(path, model, architecture, {"normalization": normalization})
        return path

    return _make


def _volume(shape, seed=0, channels=None):
    rng = np.random.default_rng(seed)
    full = shape if channels is None else (channels, *shape)
    return (rng.random(full) * 4000 + 100).astype(np.uint16)


def _reference(path, image, tile, channel_axis_first=False):
    normalised = normalize(image, "percentile", channel_axis_first=channel_axis_first)
    return predict_image(load_model(path), normalised, tile_size=tile, overlap=0.5)


def _stored(target, name="probabilities", level=0):
    return zarr.open_group(str(target), mode="r")[f"{name}/{level}"][...]


CASES = [
    pytest.param({}, (150, 211), None, 32, 48, id="2d-binary"),
    pytest.param({"spatial_dims": "3d", "output_mode": "multiclass", "num_classes": 3, "output_channels": 3, "activation": "softmax", "loss": "ce_dice"}, (12, 30, 26), None, 16, [8, 16, 16], id="3d-multiclass"),
    pytest.param({"input_channels": 2, "output_mode": "multilabel", "output_channels": 2}, (90, 77), 2, 32, 40, id="2d-2channels-multilabel"),
]


@pytest.mark.parametrize(("arch", "shape", "channels", "tile", "block"), CASES)
def test_blockwise_equals_whole_image_prediction(checkpoint, tmp_path, arch, shape, channels, tile, block):
    path = checkpoint(**arch)
    image = _volume(shape, channels=channels)
    target = tmp_path / "out.zarr"

    result = predict_volume(path, image, target, tile_size=tile, block_shape=block, probabilities="float32", channel_axis=0 if channels else None, **IN_PROCESS)

    reference = _reference(path, image, tile, channel_axis_first=channels is not None)
    assert result.status == "completed" and result.blocks >= 6 and result.blocks_predicted == result.blocks
    assert np.abs(_stored(target) - reference).max() < 1e-4
    expected_labels = probabilities_to_labels(reference, ArchitectureConfig(**{"depth": 2, "base_channels": 8, **arch}).model_dump())
    np.testing.assert_array_equal(_stored(target, "labels"), expected_labels)
    assert result.parameters["recompute_ratio"] > 1.0 and all(h > 0 for h in result.parameters["halo"])


def test_pyramid_levels_are_every_other_voxel_and_ome_metadata_describes_them(checkpoint, tmp_path):
    path = checkpoint()
    target = tmp_path / "out.zarr"
    predict_volume(path, _volume((600, 520)), target, tile_size=64, block_shape=128, probabilities="uint8", roi="40:600,8:520", **IN_PROCESS)

    group = zarr.open_group(str(target), mode="r")
    labels = group["labels"]
    multiscale = labels.attrs["multiscales"][0]
    assert multiscale["version"] == "0.4" and [a["name"] for a in multiscale["axes"]] == ["y", "x"]
    assert "image-label" in labels.attrs.asdict()
    levels = [d["path"] for d in multiscale["datasets"]]
    assert len(levels) >= 2
    full = labels["0"][...]
    assert full.shape == (560, 512)
    for level in levels[1:]:
        step = 2 ** int(level)
        np.testing.assert_array_equal(labels[level][...], full[::step, ::step])
    transforms = multiscale["datasets"][1]["coordinateTransformations"]
    assert transforms[0] == {"type": "scale", "scale": [2.0, 2.0]}
    assert transforms[1] == {"type": "translation", "translation": [40.0, 8.0]}
    probabilities = group["probabilities/0"]
    assert probabilities.dtype == np.uint8 and probabilities.shape == (1, 560, 512)
    assert [a["name"] for a in group["probabilities"].attrs["multiscales"][0]["axes"]] == ["c", "y", "x"]


# ---- sources -----------------------------------------------------------------------------------------------


SOURCES = [
    "tiff", "bigtiff", "tiled-tiff", "zarr-v2", "zarr-v3", "zarr-group-dataset", "ome-zarr-0.4",
    "ome-zarr-0.4-level1", "ome-zarr-0.5", "precomputed", "dask", "napari-multiscale",
]  # see the `volume_source` fixture


@pytest.mark.parametrize("kind", SOURCES)
def test_every_source_kind_predicts_like_its_voxels_in_memory(checkpoint, tmp_path, volume_source, kind):
    path = checkpoint()
    source, options, voxels = volume_source(kind, _volume((130, 150), seed=3), tmp_path)

    result = predict_volume(path, source, tmp_path / "out.zarr", tile_size=32, block_shape=64, probabilities="float32", **IN_PROCESS, **options)

    assert result.status == "completed" and result.shape == list(voxels.shape)
    assert np.abs(_stored(tmp_path / "out.zarr") - _reference(path, voxels, 32)).max() < 1e-4


# ---- resumable and safe -----------------------------------------------------------------------------------


def _cancel_after(blocks: int):
    token = CancelToken()

    def listen(event):
        if event.kind == EventKind.STEP and event.step >= blocks:
            token.cancel("test")

    return token, listen


def test_a_stopped_run_keeps_its_blocks_and_the_same_call_finishes_it_identically(checkpoint, tmp_path):
    path = checkpoint()
    image = _volume((200, 180), seed=5)
    options = {"tile_size": 32, "block_shape": 48, "probabilities": "float16", **IN_PROCESS}
    predict_volume(path, image, tmp_path / "whole.zarr", **options)
    token, listen = _cancel_after(3)

    first = predict_volume(path, image, tmp_path / "out.zarr", listener=listen, cancel=token, **options)
    attributes = json.loads((tmp_path / "out.zarr" / ".zattrs").read_text())["nta_prediction"]
    second = predict_volume(path, image, tmp_path / "out.zarr", **options)

    assert first.status == "cancelled" and 3 <= first.blocks_predicted < first.blocks and attributes["status"] == "running"
    assert second.status == "completed" and second.blocks_before >= 3
    assert second.blocks_before + second.blocks_predicted == second.blocks
    for name in ("labels", "probabilities"):
        np.testing.assert_array_equal(_stored(tmp_path / "out.zarr", name), _stored(tmp_path / "whole.zarr", name))
    third = predict_volume(path, image, tmp_path / "out.zarr", **options)  # complete: nothing to do, no cluster
    assert third.blocks_predicted == 0 and third.blocks_before == third.blocks


def test_an_output_holding_something_else_is_refused_unless_overwrite(checkpoint, tmp_path):
    path = checkpoint()
    image = _volume((64, 64))
    predict_volume(path, image, tmp_path / "out.zarr", tile_size=32, **IN_PROCESS)
    (tmp_path / "other.zarr").mkdir()
    (tmp_path / "other.zarr" / "keep.txt").write_text("mine")

    with pytest.raises(OutputInUse, match="different prediction.*--overwrite"):
        predict_volume(path, image, tmp_path / "out.zarr", tile_size=32, roi="0:32,0:64", **IN_PROCESS)
    with pytest.raises(OutputInUse, match="other data"):
        predict_volume(path, image, tmp_path / "other.zarr", tile_size=32, **IN_PROCESS)
    assert (tmp_path / "other.zarr" / "keep.txt").read_text() == "mine"

    result = predict_volume(path, image, tmp_path / "out.zarr", tile_size=32, roi="0:32,0:64", overwrite=True, **IN_PROCESS)
    assert result.status == "completed" and _stored(tmp_path / "out.zarr", "labels").shape == (32, 64)


def test_roi_predicts_the_region_like_a_crop_and_a_mask_skips_empty_blocks(checkpoint, tmp_path):
    path = checkpoint()
    image = _volume((160, 160), seed=7)
    mask = np.zeros((40, 40), np.uint8)  # a quarter-resolution mask: only the top-left corner is tissue
    mask[:5, :5] = 1

    cropped = predict_volume(path, image, tmp_path / "roi.zarr", tile_size=32, roi="16:144,32:160", probabilities="float32", **IN_PROCESS)
    masked = predict_volume(path, image, tmp_path / "masked.zarr", tile_size=32, block_shape=32, mask=mask, **IN_PROCESS)

    assert cropped.shape == [128, 128]
    assert np.abs(_stored(tmp_path / "roi.zarr") - _reference(path, image[16:144, 32:160], 32)).max() < 1e-4
    assert masked.blocks == 25 and masked.blocks_skipped == 24 and masked.blocks_predicted == 1
    labels = _stored(tmp_path / "masked.zarr", "labels")
    assert not labels[32:, :].any() and not labels[:, 32:].any()


class _FailingReads:
    """An array whose reads touching x >= `bad_from` fail (a broken disk region)."""

    def __init__(self, data, bad_from):
        self.data, self.bad_from = data, bad_from
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, index):
        if index[-1].stop > self.bad_from:
            raise OSError("read error on the storage")
        return self.data[index]


def test_a_block_failing_twice_stops_the_run_with_a_clear_message_and_keeps_finished_blocks(checkpoint, tmp_path):
    path = checkpoint(normalization="none")  # no statistics to read first
    source = _FailingReads(_volume((64, 256)), bad_from=180)

    with pytest.raises(PredictionFailed, match=r"block \d+ \(.*\) failed twice \(OSError: read error.*run the same command again"):
        predict_volume(path, source, tmp_path / "out.zarr", tile_size=32, block_shape=[64, 64], **IN_PROCESS)

    states = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["nta_blocks"][...]
    assert states[0] == 1 and states[-1] == 0


@pytest.mark.parametrize(
    ("arch", "source", "options", "message"),
    [
        ({}, "missing-dataset", {"dataset": "nope"}, "has no dataset 'nope'"),
        ({}, "2d", {"roi": "0:10,0:999"}, "outside the volume"),
        ({}, "2d", {"block_shape": 2}, "smaller than the model pools"),
        ({"input_channels": 2}, "2d", {}, "the checkpoint expects 2"),
        ({"spatial_dims": "3d"}, "2d", {}, "does not fit the checkpoint, a 3D model"),
        ({}, "3d", {}, "does not fit the checkpoint, a 2D model"),
        ({}, "url", {}, "127.0.0.1"),
        ({}, "2d", {"labels": False}, "nothing to write"),
        ({"spatial_dims": "2d"}, "2d", {"halo": [40, 40]}, "0 <= halo < tile"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(checkpoint, tmp_path, monkeypatch, arch, source, options, message):
    monkeypatch.setattr("napari_training_assistant.data.volumes._precomputed.INFO_TIMEOUT_S", 1.0)
    path = checkpoint(**arch)
    sources = {
        "2d": _volume((64, 64)),
        "3d": _volume((8, 64, 64)),
        "url": "http://127.0.0.1:9/volume",
    }
    if source == "missing-dataset":
        zarr.open_group(str(tmp_path / "g.zarr"), mode="w").create_array("raw", shape=(8, 8), dtype="uint8")
        sources[source] = str(tmp_path / "g.zarr")

    with pytest.raises((DatasetError, InputError, CheckpointError)) as caught:
        predict_volume(path, sources[source], tmp_path / "out.zarr", tile_size=32, **options, **IN_PROCESS)

    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out.zarr").exists()


def test_each_worker_loads_the_model_once(checkpoint, tmp_path, monkeypatch):
    import napari_training_assistant.model as model_package

    path = checkpoint()
    loads = []
    real = model_package.load_model
    monkeypatch.setattr(model_package, "load_model", lambda p: loads.append(p) or real(p))

    result = predict_volume(path, _volume((96, 96)), tmp_path / "out.zarr", tile_size=32, block_shape=32, **IN_PROCESS)

    assert result.blocks_predicted == 9 and len(loads) == 1


def test_the_recorded_halo_is_the_asked_overlap_and_reach_what_blocks_read(checkpoint, tmp_path):
    path = checkpoint()
    result = predict_volume(path, _volume((300, 300)), tmp_path / "out.zarr", tile_size=64, halo=16, block_shape=128, **IN_PROCESS)
    assert result.parameters["halo"] == [16, 16] and min(result.parameters["reach"]) >= 16
