"""The spec the napari point mode writes for viewer layers: which regime, and the tab's settings winning."""

from __future__ import annotations

from napari_training_assistant.napari.point_data import layer_spec
from napari_training_assistant.project.run_options import TrainOptions
from napari_training_assistant.train.point_spec import PointSpec


def _spec(tmp_path, options=None, **kwargs):
    spec = layer_spec(tmp_path, (40, 4, 4), [8, 48, 48], 3, 16, options or TrainOptions(), **kwargs)
    return PointSpec.model_validate(spec)  # what `nta train-points` would load


def test_label_layers_without_lines_train_on_the_label_volumes(tmp_path):
    for kwargs in ({}, {"segmentation": True}, {"lines": True}):
        spec = _spec(tmp_path, **kwargs)
        assert spec.targets == "labels" and spec.training.centre_marker is False and spec.training.epochs == 10


def test_a_segmentation_and_line_synapses_give_the_partner_regime(tmp_path):
    spec = _spec(tmp_path, segmentation=True, lines=True)
    assert spec.targets == "line_segments" and spec.training.centre_marker is True
    assert spec.training.loss_crop_pad == [2, 12, 12] and spec.training.class_balance == "none"
    assert spec.training.epochs is None and spec.training.time_budget_minutes == 10  # epochs for the budget


def test_the_tabs_epochs_learning_rate_and_batch_win(tmp_path):
    options = TrainOptions(epochs=3, learning_rate=0.01, batch_size=2)
    for kwargs in ({}, {"segmentation": True, "lines": True}):
        spec = _spec(tmp_path, options, **kwargs)
        assert (spec.training.epochs, spec.training.lr, spec.training.batch_size) == (3, 0.01, 2)
