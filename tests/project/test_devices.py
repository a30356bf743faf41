"""Device names, read without torch: one list for the CLI, the widget, the schemas and SAM3."""

from __future__ import annotations

import pytest

from napari_training_assistant.project.devices import DEVICE_NAMES, DeviceRequest, parse_device
from napari_training_assistant.project.run_options import PredictOptions, TrainOptions
from napari_training_assistant.project.schemas import ProjectConfig
from napari_training_assistant.project.user_input import InputError


@pytest.mark.parametrize(
    ("text", "kind", "index"),
    [(None, "auto", None), ("", "auto", None), (" AUTO ", "auto", None), ("cpu", "cpu", None), ("cuda", "cuda", None),
     ("cuda:1", "cuda", 1), ("gpu", "cuda", None), ("mps", "mps", None)],
)
def test_device_names_parse(text, kind, index):
    assert parse_device(text) == DeviceRequest(kind, index)


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "gpu:0", "mps:0", "meta", "cpu cuda"])
def test_other_names_are_refused_with_the_allowed_ones(text):
    with pytest.raises(ValueError, match="use auto, cpu, cuda, cuda:N or mps"):
        parse_device(text)


def test_the_same_names_are_checked_in_options_and_settings():
    assert str(parse_device("cuda:2")) == "cuda:2" and set(DEVICE_NAMES) == {"auto", "cpu", "cuda", "mps"}
    assert TrainOptions(device="cuda:0").device == "cuda:0" and PredictOptions(device=" mps").device == "mps"
    for options in (TrainOptions, PredictOptions):
        with pytest.raises(InputError, match="^device: use auto, cpu"):
            options(device="tpu")
    settings = ProjectConfig.model_fields["training"].default_factory()
    settings.device = "cuda:1"
    with pytest.raises(ValueError, match="use auto, cpu"):
        settings.device = "tpu"
