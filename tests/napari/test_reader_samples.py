"""npe2 manifest, reader (a project folder dropped on napari), sample data and plugin preferences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import napari_training_assistant

PLUGIN = "napari-training-assistant"
MANIFEST = Path(napari_training_assistant.__file__).parent / "napari.yaml"


def test_manifest_is_valid_and_installed():
    import npe2

    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == PLUGIN and manifest.display_name == "Training Assistant"
    contributions = manifest.contributions
    assert [w.display_name for w in contributions.widgets] == ["Training Assistant"]
    assert contributions.readers[0].accepts_directories and contributions.readers[0].filename_patterns == ["*"]
    assert {s.key for s in contributions.sample_data} == {"nuclei", "synapses"}
    properties = contributions.configurations["general"].properties
    assert properties["device"].enum == ["auto", "cpu", "cuda", "mps"]
    for command in contributions.commands:  # every python_name resolves
        assert callable(_resolve(command.python_name))
    installed = npe2.PluginManager()  # a fresh manager: found through the napari.manifest entry point
    installed.discover()
    assert installed.get_manifest(PLUGIN).display_name == "Training Assistant"


def _resolve(python_name: str):
    import importlib

    module, _, attr = python_name.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_preferences_are_readable():
    from napari.settings import get_plugin_settings

    from napari_training_assistant.napari import preferences

    general = get_plugin_settings(PLUGIN).general
    assert general.device in ("auto", "cpu", "cuda", "mps")
    assert preferences._settings() is not None
    assert preferences.default_device() == general.device
    assert preferences.default_project_folder() in (None, general.default_project_folder)


def test_get_reader_only_claims_project_folders(make_project, tmp_path):
    from napari_training_assistant.napari.reader import get_reader, read_project

    project = make_project(splits=("train",))
    (tmp_path / "plain").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert get_reader(str(project.root)) is read_project
    assert get_reader([str(project.root)]) is read_project
    assert get_reader(str(tmp_path / "plain")) is None
    assert get_reader(str(tmp_path / "file.txt")) is None
    assert get_reader([str(project.root), str(tmp_path / "plain")]) is None


@pytest.mark.qt
def test_project_folder_opens_as_layers(make_napari_viewer, make_project):
    from napari.layers import Image, Labels

    project = make_project(splits=("train", "benchmark"))
    labels = np.zeros((48, 48), np.uint8)
    labels[10:20, 10:20] = 1
    project.predictions.save(labels, source="test", checkpoint_id="unet_run_001", parameters={"output_mode": "binary"})
    viewer = make_napari_viewer()
    viewer.open(str(project.root), plugin=PLUGIN)

    names = [layer.name for layer in viewer.layers]
    assert names == ["pair_0001", "pair_0001 mask", "pair_0002", "pair_0002 mask", "prediction_001 (unet_run_001)"]
    kinds = [type(layer) for layer in viewer.layers]
    assert kinds == [Image, Labels, Image, Labels, Labels]
    image, mask = project.dataset.load("pair_0002")
    np.testing.assert_array_equal(viewer.layers["pair_0002"].data, image)
    np.testing.assert_array_equal(viewer.layers["pair_0002 mask"].data, mask)
    np.testing.assert_array_equal(viewer.layers["prediction_001 (unet_run_001)"].data, labels)
    assert viewer.layers["pair_0001"].visible and not viewer.layers["pair_0002"].visible


def _zarr_prediction(project, levels: list[np.ndarray], output_mode: str = "binary"):
    """A block-wise prediction as `predict_volume_into_project` leaves it: an OME-Zarr labels image in
    predictions/prediction_001.zarr, recorded."""
    import zarr

    output = project.layout.predictions_dir / "prediction_001.zarr"
    image = zarr.open_group(str(output), mode="w", zarr_format=2).create_group("labels")
    for index, level in enumerate(levels):
        image.create_array(str(index), data=level)
    channel = [{"name": "c", "type": "channel"}] if output_mode == "multilabel" else []
    axes = channel + [{"name": a, "type": "space"} for a in "yx"]
    image.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": str(i)} for i in range(len(levels))]}]
    return project.predictions.record_zarr(
        output, images={"labels": "labels"}, source="test", checkpoint_id="unet_run_001",
        shape=list(levels[0].shape), parameters={"format": "ome-zarr", "output_mode": output_mode}, duration_s=1.0,
    )


@pytest.mark.qt
def test_block_wise_prediction_opens_lazily_as_multiscale_labels(make_napari_viewer, make_project):
    import dask.array as da
    from napari.layers import Labels

    project = make_project(splits=("train",))
    full = np.zeros((64, 96), np.uint8)
    full[8:40, 16:80] = 1
    _zarr_prediction(project, [full, full[::2, ::2]])
    viewer = make_napari_viewer()
    viewer.open(str(project.root), plugin=PLUGIN)

    layer = viewer.layers["prediction_001 (unet_run_001)"]
    assert isinstance(layer, Labels) and layer.multiscale and not layer.visible
    assert all(isinstance(level, da.Array) for level in layer.data)  # read only where napari looks
    np.testing.assert_array_equal(np.asarray(layer.data[0]), full)
    np.testing.assert_array_equal(np.asarray(layer.data[1]), full[::2, ::2])


def test_multilabel_zarr_prediction_is_one_layer_per_class(make_project):
    from napari_training_assistant.napari.reader import read_project

    project = make_project(splits=("train",))
    channels = np.zeros((2, 48, 48), np.uint8)
    channels[1, :8] = 1
    _zarr_prediction(project, [channels], output_mode="multilabel")
    *_, first, second = read_project(str(project.root))
    names = [f"prediction_001 (unet_run_001) {name}" for name in project.config.class_names]
    assert [first[1]["name"], second[1]["name"]] == names
    assert "multiscale" not in first[1]  # a single level is a plain (lazy) array
    np.testing.assert_array_equal(np.asarray(second[0]), channels[1])


def test_multichannel_pairs_are_split_on_axis_0(make_project):
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.napari.reader import read_project

    project = make_project(splits=(), architecture={"input_channels": 2})
    image, labels = make_nuclei((32, 32), n_nuclei=2, seed=1)
    project.dataset.add(np.stack([image, image // 2]), labels, channel_axis=0, split="train")
    layers = read_project(str(project.root))
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    data, meta, _ = layers[0]
    assert data.shape == (2, 32, 32) and meta["channel_axis"] == 0
    assert meta["name"] == ["pair_0001 ch0", "pair_0001 ch1"]


@pytest.mark.qt
def test_sample_data_opens(make_napari_viewer):
    from napari.layers import Image, Labels

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei")
    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei labels"]
    assert isinstance(viewer.layers["nuclei"], Image) and isinstance(viewer.layers["nuclei labels"], Labels)
    assert viewer.layers["nuclei labels"].data.max() > 0


@pytest.mark.qt
def test_synapse_sample_has_tagged_regions(make_napari_viewer):
    from napari.layers import Shapes

    from napari_training_assistant.data.annotations.regions import regions_from_napari_shapes
    from napari_training_assistant.data.synthetic_em import make_em_volume

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "synapses")
    names = [layer.name for layer in viewer.layers]
    assert names == ["synthetic EM", "cells", "pre (label0)", "post (label1)", "synapses", "synapse lines", "regions"]
    shapes = viewer.layers["regions"]
    assert isinstance(shapes, Shapes) and list(shapes.features["split"]) == ["train", "train", "train", "val"]
    regions = regions_from_napari_shapes(shapes.data, shapes.shape_type, shapes.features.to_dict("list"))
    expected = make_em_volume().regions
    assert [(list(r.box.start), list(r.box.stop), sorted(r.tags)) for r in regions] == [
        (e["start"], e["stop"], e["tags"]) for e in expected
    ]
