"""Every combo box that lists schema values lists exactly the schema's values (no hand-written copies), and
the plugin manifest's device preference offers the shared device names."""

from __future__ import annotations

from importlib.resources import files
from typing import get_args

import pytest
import yaml
from qtpy.QtWidgets import QComboBox

from napari_training_assistant.annotate.accept import AcceptForm
from napari_training_assistant.napari.session import ProjectSession
from napari_training_assistant.napari.tabs.advanced_tab import AdvancedTab
from napari_training_assistant.napari.tabs.dataset_tab import DatasetTab
from napari_training_assistant.napari.tabs.sam3_tab import Sam3Tab
from napari_training_assistant.napari.tabs.train_tab import TrainTab
from napari_training_assistant.project.devices import DEVICE_NAMES
from napari_training_assistant.project.schemas import ArchitectureConfig, PairRecord, TrainingSettings
from napari_training_assistant.project.schemas.registry import StartingWeightsConfig
from napari_training_assistant.project.schemas.sam3 import PromptMode

pytestmark = pytest.mark.qt


def texts(combo: QComboBox) -> tuple[str, ...]:
    return tuple(combo.itemText(i) for i in range(combo.count()))


def keys(combo: QComboBox) -> tuple[str, ...]:
    return tuple(combo.itemData(i) for i in range(combo.count()))


@pytest.fixture
def tab(make_napari_viewer, qtbot):
    def _tab(cls):
        widget = cls(make_napari_viewer(), ProjectSession())
        qtbot.addWidget(widget)
        return widget

    return _tab


def test_train_tab(tab):
    train = tab(TrainTab)
    assert keys(train.mode) == get_args(TrainingSettings.model_fields["training_mode"].annotation)
    schema = list(get_args(StartingWeightsConfig.model_fields["choice"].annotation))
    schema.insert(schema.index("latest") + 1, "best")  # `best`: a start TrainOptions takes, resolved when the run starts
    assert texts(train.start_choice) == tuple(schema)
    assert texts(train.device) == DEVICE_NAMES == ("auto", "cpu", "cuda", "mps")


def test_dataset_tab(tab):
    dataset = tab(DatasetTab)
    assert texts(dataset.mask_mode) == get_args(PairRecord.model_fields["mask_mode"].annotation)
    splits = get_args(PairRecord.model_fields["split"].annotation)
    assert texts(dataset.split_combo) == ("auto", *splits) and texts(dataset.split_target) == splits


def test_sam3_tab(tab):
    sam3 = tab(Sam3Tab)
    assert keys(sam3.mode) == get_args(PromptMode)
    assert keys(sam3.form_combo) == get_args(AcceptForm)
    assert texts(sam3.device) == tuple(name for name in DEVICE_NAMES if name != "mps")


def test_advanced_tab(tab):
    advanced = tab(AdvancedTab)
    for field in ("spatial_dims", "preset", "normalization", "upsampling", "output_mode"):
        assert texts(getattr(advanced, field)) == get_args(ArchitectureConfig.model_fields[field].annotation), field


def test_the_device_preference_of_the_manifest_offers_the_shared_names():
    manifest = yaml.safe_load(files("napari_training_assistant").joinpath("napari.yaml").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "device" in node and isinstance(node["device"], dict) and "enum" in node["device"]:
                found.append(tuple(node["device"]["enum"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(manifest)
    assert found == [DEVICE_NAMES]
