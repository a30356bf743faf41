"""`read_checkpoint_info`: training mode, normalisation, tile size and applicability from checkpoint metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from napari_training_assistant.model import CheckpointInfo, build_model, read_checkpoint_info, save_checkpoint
from napari_training_assistant.project import CheckpointError
from napari_training_assistant.project.schemas.architecture import default_architecture

PAIRS = {"normalization": "zscore", "patch_size": [64, 64]}
POINTS = {
    "normalization": "region",
    "window_size": [8, 32, 32],
    "centre_marker": False,
    "targets": "labels",
    "resolution": [40.0, 4.0, 4.0],
    "axis_order": "zyx",
}


def _checkpoint(tmp_path: Path, metadata: dict | None, spatial_dims: str = "2d", **arch) -> Path:
    architecture = default_architecture(spatial_dims, preset="tiny_unet", **arch).model_dump(mode="json")
    path = tmp_path / "unet_run_001.pt"
    save_checkpoint(path, build_model(architecture), architecture, metadata)
    return path


def test_pair_checkpoints_keep_their_normalisation_and_predict_with_the_default_tile(tmp_path):
    info = read_checkpoint_info(_checkpoint(tmp_path, PAIRS))
    assert (info.training_mode, info.normalization, info.patch_size) == ("pairs", "zscore", (64, 64))
    assert info.tile_size is None and info.input_channels == 1 and info.spatial_dims == "2d"
    assert info.inapplicable_reason() is None and info.prediction_parameters() == {}


def test_older_checkpoints_without_metadata_get_the_defaults(tmp_path):
    info = read_checkpoint_info(_checkpoint(tmp_path, None))
    assert (info.training_mode, info.normalization, info.centre_marker) == ("pairs", "percentile", False)
    assert CheckpointInfo.from_metadata({"spatial_dims": "3d"}, {"window_size": [4, 16, 16]}).normalization == "region"


def test_point_checkpoints_predict_with_their_window_and_record_axes(tmp_path):
    info = read_checkpoint_info(_checkpoint(tmp_path, POINTS, "3d", output_mode="multilabel", output_channels=2))
    assert (info.training_mode, info.normalization, info.window_size) == ("point_windows", "region", (8, 32, 32))
    assert info.tile_size == [8, 32, 32] and info.inapplicable_reason() is None
    assert info.prediction_parameters() == {"axis_order": "zyx", "resolution": [40.0, 4.0, 4.0]}
    info.require_applicable("unet_run_001")


def test_a_centre_marker_or_an_unknown_normalisation_is_refused_in_one_line(tmp_path):
    marker = read_checkpoint_info(_checkpoint(tmp_path, {**POINTS, "centre_marker": True}, "3d", input_channels=2))
    with pytest.raises(CheckpointError, match=r"^checkpoint unet_run_001 was trained with a centre marker.*centre_marker: false`$"):
        marker.require_applicable("unet_run_001")
    future = CheckpointInfo.from_metadata({"spatial_dims": "2d"}, {"normalization": "quantile_v2"})
    assert "records normalization 'quantile_v2', which this version cannot apply" in future.inapplicable_reason()
    for info in (marker, future):
        assert "\n" not in info.inapplicable_reason()


def test_weights_without_an_architecture_are_refused(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="does not say which architecture it holds"):
        read_checkpoint_info(path)
