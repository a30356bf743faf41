"""What a run or a prediction is asked: ranges from the schemas, one-line errors naming the input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from napari_training_assistant.project.errors import ProjectError
from napari_training_assistant.project.run_options import PredictOptions, TrainOptions
from napari_training_assistant.project.schemas import TrainingSettings
from napari_training_assistant.project.user_input import DatasetInputError, InputError, field_type

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": 0}, "epochs: must be greater than or equal to 1 (found 0)"),
        ({"batch_size": 0}, "batch_size: must be greater than or equal to 1 (found 0)"),
        ({"learning_rate": NAN}, "learning_rate: must be a finite number (found nan)"),
        ({"learning_rate": -1.0}, "learning_rate: must be greater than 0 (found -1.0)"),
        ({"learning_rate": INF}, "learning_rate: must be a finite number (found inf)"),
        ({"devices": 0}, "devices: must be greater than or equal to 1 (found 0)"),
        ({"num_nodes": 0}, "num_nodes: must be greater than or equal to 1 (found 0)"),
        ({"patch_size": [0]}, "patch_size: must be greater than or equal to 1 (found 0)"),
        ({"patch_size": [8, 8, 8, 8]}, "patch_size: must have at most 3 items, not 4"),
        ({"seed": -1}, "seed: must be greater than or equal to 0 (found -1)"),
        ({"num_workers": -1}, "num_workers: must be greater than or equal to 0 (found -1)"),
        ({"samples_per_epoch": 0}, "samples_per_epoch: must be greater than or equal to 1 (found 0)"),
        ({"precision": "64"}, "precision: must be 'auto', '32', '16-mixed' or 'bf16-mixed' (found '64')"),
        ({"device": "gpu9"}, "device: use auto, cpu, cuda, cuda:N or mps (found 'gpu9')"),
        ({"start": "yesterday"}, "start: use scratch, latest, best, checkpoint:ID or imported:ID (found 'yesterday')"),
        ({"epoch": 3}, "epoch: is not an option"),
    ],
)
def test_bad_train_options_raise_one_line_naming_the_field(values, message):
    with pytest.raises(InputError) as info:
        TrainOptions(**values)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ProjectError) and isinstance(info.value, ValueError)  # widget and API catch either


def test_ranges_are_the_training_settings_ranges():
    assert field_type(TrainingSettings, "epochs").__metadata__ == TrainOptions.model_fields["epochs"].annotation.__args__[0].__metadata__
    with pytest.raises(InputError, match="less than or equal to 100000"):
        TrainOptions(epochs=100_001)
    with pytest.raises(InputError, match="less than 10"):
        TrainOptions(learning_rate=10.0)


def test_good_train_options_and_patch_sizes_per_project():
    options = TrainOptions(epochs=3, patch_size=[32], learning_rate=1e-3, device="CUDA:1", start="imported:imported_001")
    assert options.device == "CUDA:1" and options.user_fixed() == {"epochs", "patch_size"}
    assert options.patch_size_for("3d") == [32, 32, 32] and TrainOptions().patch_size_for("2d") is None
    with pytest.raises(InputError) as info:
        TrainOptions(patch_size=[32, 32, 32]).patch_size_for("2d")
    assert str(info.value) == "patch_size has 3 values but the project is 2d: give 1 or 2"
    assert info.value.render({"patch_size": "--patch-size"}).startswith("--patch-size has 3 values")
    options.num_nodes = 2  # point runs take the spec's node count
    assert options.num_nodes == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"overlap": 1.0}, "overlap: must be less than 1 (found 1.0)"),
        ({"overlap": 1.5}, "overlap: must be less than 1"),
        ({"overlap": NAN}, "overlap: must be a finite number (found nan)"),
        ({"overlap": -0.1}, "overlap: must be greater than or equal to 0"),
        ({"tile_size": [0, 0]}, "tile_size: must be greater than or equal to 1 (found 0)"),
        ({"tile_size": 0}, "tile_size: must be greater than or equal to 1 (found 0)"),
        ({"batch_size": 0}, "batch_size: must be greater than or equal to 1 (found 0)"),
        ({"device": "tpu"}, "device: use auto, cpu, cuda, cuda:N or mps (found 'tpu')"),
    ],
)
def test_bad_predict_options(values, message):
    with pytest.raises(InputError) as info:
        PredictOptions(**values)
    assert str(info.value).startswith(message)


def test_tile_size_one_value_or_one_per_axis_and_at_least_the_pooling():
    levels = [(2, 2)] * 3  # three 2x2 poolings: 8 per axis
    assert PredictOptions(tile_size=64).tile_for("2d", levels) == [64, 64]
    assert PredictOptions(tile_size=np.int64(16)).tile_for("2d", levels) == [16, 16]
    assert PredictOptions(tile_size=(32, 48)).tile_for("2d", levels) == [32, 48]
    assert PredictOptions().tile_for("3d") is None
    assert PredictOptions(tile_size=[8, 16, 16]).tile_for("3d", [(1, 2, 2), (2, 2, 2)]) == [8, 16, 16]
    with pytest.raises(InputError, match=r"tile_size \[4, 64\] is smaller than the model pools \(\[8, 8\] per axis\): use at least 8"):
        PredictOptions(tile_size=[4, 64]).tile_for("2d", levels)
    with pytest.raises(InputError, match="tile_size has 3 values but the model is 2d: give 1 or 2"):
        PredictOptions(tile_size=[64, 64, 64]).tile_for("2d", levels)


def test_input_errors_render_names_and_survive_pickling():
    error = DatasetInputError("`slice_index` 9 is outside the stack; or declare `channel_axis`=0")
    assert str(error) == "slice_index 9 is outside the stack; or declare channel_axis=0"
    assert error.render({"slice_index": "--slice", "channel_axis": "--channel-axis"}) == (
        "--slice 9 is outside the stack; or declare --channel-axis=0"
    )
    assert error.fields == ["slice_index", "channel_axis"]
    copy = pickle.loads(pickle.dumps(error))  # the napari child process sends failures as pickles
    assert type(copy) is DatasetInputError and copy.render({"slice_index": "Slice"}).startswith("Slice 9")


def test_long_values_are_cut_in_messages():
    with pytest.raises(InputError) as info:
        TrainOptions(device="x" * 10_000)
    assert len(str(info.value)) < 300
