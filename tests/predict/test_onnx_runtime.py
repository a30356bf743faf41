"""`runtime="onnx"` / `nta predict --runtime onnx`: the checkpoint's U-Net exported to ONNX and run by
onnxruntime predicts what PyTorch predicts, in memory and block-wise, recorded as such; without
onnxruntime it is refused in one line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from napari_training_assistant.cli.main import main
from napari_training_assistant.model import build_model, describe, load_model, save_checkpoint
from napari_training_assistant.predict.inference_model import prepare_inference_model
from napari_training_assistant.predict.onnx_runtime import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    OnnxUNet,
    execution_provider,
    onnx_model,
)
from napari_training_assistant.predict.project_prediction import predict_array, predict_volume_into_project
from napari_training_assistant.predict.volume_prediction import predict_volume
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.image_io import read_tiff
from napari_training_assistant.project.schemas import ArchitectureConfig
from napari_training_assistant.project.user_input import InputError

needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "onnxscript")), reason="the 'share' extra is not installed"
)

TINY = {"depth": 2, "base_channels": 4}
MISSING = '--runtime onnx needs onnxruntime and onnxscript: pip install "napari-training-assistant[share]"'


def _project(root: Path, spatial_dims: str, metadata: dict, **architecture) -> TrainingProject:
    """A project holding one registered random-weight tiny U-Net (non-trivial BatchNorm statistics)."""
    project = TrainingProject.create(root, spatial_dims=spatial_dims, architecture={"preset": "tiny_unet", **TINY})
    arch = ArchitectureConfig(**{"spatial_dims": spatial_dims, **TINY, **architecture}).model_dump(mode="json")
    torch.manual_seed(0)
    model = build_model(arch).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    checkpoint_id, path = project.checkpoints.reserve()
    save_checkpoint(path, model, arch, {"checkpoint_id": checkpoint_id, **metadata})
    project.checkpoints.register(
        checkpoint_id,
        architecture=arch,
        dataset_pair_ids=[],
        metrics={"dice": 0.5, "iou": 0.4},
        parent_id=None,
        starting_weights=project.starting_weights.model_dump(mode="json"),
        architecture_summary=describe(arch),
    )
    return project


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> TrainingProject:
    """2D binary pairs checkpoint (exported once per test module: the cache is keyed by its sha256)."""
    return _project(tmp_path_factory.mktemp("onnx2d") / "proj", "2d", {"normalization": "percentile"})


@pytest.fixture(scope="module")
def points(tmp_path_factory) -> TrainingProject:
    """3D point-window checkpoint: 2 channels, region normalisation, a training window."""
    metadata = {"normalization": "region", "window_size": [8, 16, 16], "axis_order": "zyx", "resolution": [40.0, 8.0, 8.0]}
    return _project(tmp_path_factory.mktemp("onnx3d") / "proj", "3d", metadata, output_mode="multilabel", output_channels=2)


def _image(shape, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 4000 + 100).astype(np.uint16)


def _checkpoint(project: TrainingProject) -> Path:
    return project.layout.absolute(project.checkpoints.get("latest").path)


def _arrays(project: TrainingProject, record) -> tuple[np.ndarray, np.ndarray]:
    return read_tiff(project.layout.absolute(record.path)), read_tiff(project.layout.absolute(record.probabilities_path))


@needs_onnx
def test_onnx_model_equals_the_unet_at_any_size_and_is_used_as_it_is(flat):
    path = _checkpoint(flat)
    unet, onnx = load_model(path), onnx_model(path)
    assert isinstance(onnx, OnnxUNet) and onnx.provider == CPU_PROVIDER and onnx.architecture == unet.architecture
    assert onnx_model(path) is onnx  # exported and opened once per process
    for shape in [(45, 61), (3, 64), (1, 1), (5, 6)]:  # a 1-cell bottleneck axis included
        x = torch.rand(2, 1, *shape)
        with torch.no_grad():
            assert (onnx(x) - unet(x)).abs().max() < 1e-5
    prepared = prepare_inference_model(onnx, torch.device("cpu"))
    assert prepared.module is onnx  # not deep-copied, folded or moved
    with pytest.raises(ValueError, match="U-Net expects input"):
        onnx(torch.rand(1, 2, 8, 8))


@needs_onnx
def test_in_memory_onnx_prediction_equals_pytorch_and_is_recorded(flat):
    image = _image((45, 61))
    common = {"source": "odd.tif", "tile_size": 22, "save_probabilities": True}  # 3 x 4 tiles, each padded

    torch_record = predict_array(flat, image, **common)
    onnx_record = predict_array(flat, image, runtime="onnx", **common)

    torch_labels, torch_prob = _arrays(flat, torch_record)
    onnx_labels, onnx_prob = _arrays(flat, onnx_record)
    assert np.abs(onnx_prob - torch_prob).max() < 1e-4
    np.testing.assert_array_equal(onnx_labels, torch_labels)
    assert onnx_record.parameters["runtime"] == "onnx" and onnx_record.parameters["execution_provider"] == CPU_PROVIDER
    assert torch_record.parameters["runtime"] == "torch" and "execution_provider" not in torch_record.parameters


@needs_onnx
def test_point_window_checkpoints_predict_the_same_with_onnx(points):
    volume = _image((10, 37, 29), seed=1)
    torch_record = predict_array(points, volume, source="em", save_probabilities=True)
    onnx_record = predict_array(points, volume, source="em", save_probabilities=True, runtime="onnx")

    torch_labels, torch_prob = _arrays(points, torch_record)
    onnx_labels, onnx_prob = _arrays(points, onnx_record)
    assert onnx_prob.shape == (2, 10, 37, 29) and np.abs(onnx_prob - torch_prob).max() < 1e-4
    np.testing.assert_array_equal(onnx_labels, torch_labels)
    assert onnx_record.parameters["tile_size"] == [8, 16, 16] and onnx_record.parameters["axis_order"] == "zyx"


@needs_onnx
def test_blockwise_onnx_prediction_equals_pytorch_and_is_recorded(points):
    volume = _image((12, 30, 26), seed=2)
    options = {"block_shape": [8, 16, 16], "probabilities": "float32", "scheduler": "in-process"}

    torch_record, torch_result = predict_volume_into_project(points, volume, source_name="vol", **options)
    onnx_record, onnx_result = predict_volume_into_project(points, volume, source_name="vol", runtime="onnx", **options)

    assert onnx_result.status == "completed" and onnx_result.blocks >= 4 and onnx_result.blocks_predicted == onnx_result.blocks
    outputs = [zarr.open_group(str(result.output), mode="r") for result in (torch_result, onnx_result)]
    assert np.abs(outputs[1]["probabilities/0"][...] - outputs[0]["probabilities/0"][...]).max() < 1e-4
    np.testing.assert_array_equal(outputs[1]["labels/0"][...], outputs[0]["labels/0"][...])
    assert onnx_record.parameters["runtime"] == "onnx" and onnx_record.parameters["execution_provider"] == CPU_PROVIDER
    assert torch_record.parameters["runtime"] == "torch"


@needs_onnx
def test_nta_predict_runtime_onnx_end_to_end(flat, tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "img.tif", _image((33, 50), seed=3))
    outputs = {}
    for runtime in ("torch", "onnx"):
        assert main(["predict", str(flat.layout.root), "--image", str(tmp_path / "img.tif"), "--tile-size", "24", "--runtime", runtime, "--json"]) == 0
        outputs[runtime] = json.loads(capsys.readouterr().out)
    assert outputs["onnx"]["parameters"]["runtime"] == "onnx"
    labels = {runtime: read_tiff(Path(report["prediction_path"])) for runtime, report in outputs.items()}
    np.testing.assert_array_equal(labels["onnx"], labels["torch"])


@pytest.mark.parametrize("missing", ["onnxruntime", "onnxscript"])
def test_without_onnxruntime_or_onnxscript_it_is_one_line_and_nothing_is_written(flat, tmp_path, capsys, monkeypatch, missing):
    import tifffile

    tifffile.imwrite(tmp_path / "img.tif", _image((20, 20)))
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
    before = len(flat.predictions.registry.predictions)

    assert main(["predict", str(flat.layout.root), "--image", str(tmp_path / "img.tif"), "--runtime", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == f"nta predict: error: {MISSING}"
    with pytest.raises(InputError, match="needs onnxruntime and onnxscript"):
        predict_volume(_checkpoint(flat), _image((20, 20)), tmp_path / "out.zarr", runtime="onnx", scheduler="in-process")
    assert not (tmp_path / "out.zarr").exists() and len(flat.predictions.registry.predictions) == before


@needs_onnx
def test_the_provider_is_cuda_only_when_asked_and_offered(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    assert execution_provider("cuda:1") == CUDA_PROVIDER
    assert execution_provider(None) == execution_provider("cpu") == CPU_PROVIDER
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU_PROVIDER])
    assert execution_provider(torch.device("cuda")) == CPU_PROVIDER
