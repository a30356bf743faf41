"""The YAML spec of point-windowed training: loading, one-line errors naming the key, relative paths."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path

import pytest
import yaml

from napari_training_assistant.data.synthetic_em import spec_dict, write_synapse_dataset
from napari_training_assistant.project.errors import ProjectError
from napari_training_assistant.train.point_inputs import load_point_inputs, resolve_location
from napari_training_assistant.train.point_run import dry_run
from napari_training_assistant.train.point_spec import PointSpec, load_spec


def write_spec(folder: Path, spec: dict | None = None, text: str | None = None, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text if text is not None else yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def broken(tmp_path: Path, change) -> str:
    spec = copy.deepcopy(spec_dict(partners=False))
    change(spec)
    with pytest.raises(ProjectError) as info:
        load_spec(write_spec(tmp_path, spec))
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "spec.yaml") in message
    return message


def test_the_synthetic_spec_loads(tmp_path):
    paths = write_synapse_dataset(tmp_path / "data", shape=(16, 64, 64))
    spec, base = load_spec(paths["spec"])
    assert isinstance(spec, PointSpec) and base == paths["spec"].parent
    assert spec.project == "synapse-project" and spec.axis_order == "zyx"
    assert spec.resolution == [40, 4, 4] and spec.window_size == [8, 48, 48]
    assert set(spec.layers) == {"img", "label0", "label1", "segmentation", "points"}
    assert spec.label_keys() == ["label0", "label1"]
    # the partner-assignment regime: marker, the segments of each synapse, loss on the window's centre
    assert spec.targets == "line_segments" and spec.line_point == "midpoint"
    assert spec.model.depth == 3 and spec.model.base_channels == 16 and spec.model.output_channels == 2
    assert spec.training.loss_crop_pad == [2, 12, 12] and spec.training.class_balance == "none"
    assert spec.training.centre_marker is True and spec.training.augment is True
    assert spec.training.epochs is None and spec.training.time_budget_minutes == 10
    assert spec.training.memory_budget_gb == 8.0
    labels, _ = load_spec(write_spec(tmp_path, {**spec_dict(partners=False), "project": "p"}))
    assert labels.targets == "labels" and labels.window_size == [16, 64, 64] and labels.training.centre_marker is False
    assert labels.training.epochs == 10 and labels.training.class_balance == "default"
    assert spec.regions.path == "regions.json" and spec.train_tags == ["train"] and spec.val_tags == ["val"]


def test_defaults_fill_a_minimal_spec(tmp_path):
    minimal = {
        "project": "p",
        "resolution": [40, 4, 4],
        "layers": {"em": {"path": "img.zarr"}, "a": {"path": "pre.zarr"}, "b": {"path": "post.zarr"}, "syn": {"path": "s.csv"}},
        "rename": {"em": "img", "a": "label0", "b": "label1", "syn": "points"},
        "regions": {"path": "r.json"},
        "window_size": [8, 32, 32],
    }
    spec, _ = load_spec(write_spec(tmp_path, minimal))
    assert spec.training.epochs is None and spec.training.time_budget_minutes == 10  # epochs for the budget
    assert spec.training.batch_size == 4 and spec.model.depth == 3 and spec.training.augment is True
    assert spec.label_keys() == ["label0", "label1"]


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (lambda s: s["layers"].pop("img"), "layers", r"missing \['img'\].*needs img and points"),
        (lambda s: s["layers"].pop("points"), "layers", r"missing \['points'\]"),
        (lambda s: s.update(window_size=[16, 64]), "window_size", r"three positive sizes.*e\.g\. \[16, 64, 64\].*found \[16, 64\]"),
        (lambda s: s.update(window_size=[16, 0, 64]), "window_size", r"three positive sizes"),
        (lambda s: s["training"].update(loss_crop_pad=[8, 4, 4]), "training.loss_crop_pad", r"leaves nothing of the window.*smaller"),
        (lambda s: s["training"].update(loss_crop_pad=[1, 40, 4]), "training.loss_crop_pad", r"leaves nothing"),
        (lambda s: s["training"].update(loss_crop_pad=[1, 4]), "training.loss_crop_pad", r"three values"),
        (lambda s: s.update(trainig=s.pop("training")), "trainig", r"unknown key \(did you mean 'training'\?\).*expected one of .*training"),
        (lambda s: s["training"].update(epoch=3), "training.epoch", r"did you mean 'epochs'"),
        (lambda s: s["layers"]["img"].update(pth="img.zarr"), "layers.img.pth", r"did you mean 'path'.*expected one of path, dataset"),
        (lambda s: s["model"].update(output_channels=3), "model.output_channels", r"3 but 2 label layers \(\['label0', 'label1'\]\)"),
        (lambda s: s["layers"].pop("label1"), "layers", r"targets 'labels' need \['label1'\]"),
        (lambda s: s["layers"].update(label2={"path": "x.zarr"}), "model.output_channels", r"2 but 3 label layers"),
        (lambda s: s.update(val_tags=["val", "train"]), "val_tags", r"cannot both train and validate"),
        (lambda s: s.update(targets="line_segments") or s["layers"].pop("segmentation"), "layers", r"targets 'line_segments' need \['segmentation'\]"),
        (lambda s: s.update(targets="edges"), "targets", r"'labels' or 'line_segments'"),
        (lambda s: s.update(resolution=[4, 4]), "resolution", r"three positive voxel sizes"),
        (lambda s: s.update(axis_order="zyy"), "axis_order", r"permutation of 'zyx'"),
        (lambda s: s.pop("project"), "project", r"missing: add it \(Training Project Folder"),
        (lambda s: s["training"].update(batch_size=0), "training.batch_size", r"greater than or equal to 1.*found 0"),
    ],
)
def test_broken_specs_name_the_key_and_the_expected_form(tmp_path, change, key, expected):
    message = broken(tmp_path, change)
    assert f"key '{key}'" in message, message
    assert re.search(expected, message), message


def test_line_segments_with_segmentation_and_two_channels_is_valid(tmp_path):
    spec = copy.deepcopy(spec_dict())
    spec["targets"] = "line_segments"
    spec["layers"] = {"img": {"path": "img.zarr"}, "segmentation": {"path": "seg.zarr"}, "points": {"path": "synapses.csv"}}
    loaded, _ = load_spec(write_spec(tmp_path, spec))
    assert loaded.targets == "line_segments"
    spec["model"]["output_channels"] = 3
    with pytest.raises(ProjectError, match=r"key 'model.output_channels': line_segments targets have 2 channels"):
        load_spec(write_spec(tmp_path, spec))


def test_bad_yaml_names_line_and_column(tmp_path):
    text = "project: p\nresolution: [40, 4, 4]\nlayers:\n  img: {path: img.zarr\n  label0: {path: pre.zarr}\n"
    with pytest.raises(ProjectError) as info:
        load_spec(write_spec(tmp_path, text=text))
    message = str(info.value)
    assert "not valid YAML" in message and re.search(r"line \d+, column \d+", message), message
    assert "line 5" in message, message


def test_an_alias_bomb_is_refused_at_once_in_one_short_line(tmp_path):
    """Nine levels of nine aliases expand to 9**9 strings (gigabytes) when walked; it used to be echoed whole."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        name, previous = "abcdefghi"[level], "abcdefghi"[level - 1]
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    path = write_spec(tmp_path, text="\n".join([*lines, "project: *i", ""]))
    started = time.perf_counter()
    with pytest.raises(ProjectError) as info:
        load_spec(path)
    assert time.perf_counter() - started < 10  # only a hang fails this
    message = str(info.value)
    assert "alias *a found: a spec allows no aliases" in message and "line 2" in message
    assert len(message) < 300 and "\n" not in message


def test_anchors_without_aliases_load(tmp_path):
    spec = copy.deepcopy(spec_dict(partners=False))
    text = yaml.safe_dump(spec, sort_keys=False).replace("training:", "training: &settings", 1)
    loaded, _ = load_spec(write_spec(tmp_path, text=text))
    assert loaded.training.epochs == spec["training"]["epochs"]


def test_echoed_values_are_cut(tmp_path):
    message = broken(tmp_path, lambda s: s.update(project=["x" * 5000]))
    assert "key 'project'" in message and len(message) < 300 + len(str(tmp_path))


@pytest.mark.parametrize(("key", "value"), [("lr", float("nan")), ("memory_budget_gb", float("inf")), ("dice_weight", float("inf"))])
def test_non_finite_numbers_are_refused(tmp_path, key, value):
    message = broken(tmp_path, lambda s: s["training"].update({key: value}))
    assert f"key 'training.{key}'" in message and "finite number" in message


def test_a_spec_that_is_not_a_mapping_or_missing(tmp_path):
    with pytest.raises(ProjectError, match="must hold a mapping of keys.*found list"):
        load_spec(write_spec(tmp_path, text="- img\n- label0\n"))
    with pytest.raises(ProjectError, match="does not exist"):
        load_spec(tmp_path / "nowhere.yaml")


def test_relative_paths_start_at_the_spec_folder(tmp_path, monkeypatch):
    data = tmp_path / "deep" / "data"
    paths = write_synapse_dataset(data, shape=(16, 64, 64))
    spec, base = load_spec(paths["spec"])
    assert resolve_location(base, "img.zarr") == str(data / "img.zarr")
    assert resolve_location(base, str(tmp_path / "abs.zarr")) == str(tmp_path / "abs.zarr")
    assert resolve_location(base, "gs://bucket/volume") == "gs://bucket/volume"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    inputs = load_point_inputs(spec, base, paths["spec"], read=False)
    assert inputs.layers.image.path.startswith(str(data))
    report = dry_run(Path("..") / "deep" / "data" / "spec.yaml")  # a relative spec path works too
    assert report["points"]["train"] > 0 and report["points"]["val"] > 0
    assert not (elsewhere / "synapse-project").exists() and not (data / "synapse-project").exists()  # dry: no project
    # a layer path relative to a spec in another folder
    spec_dict_ = yaml.safe_load(paths["spec"].read_text())
    spec_dict_["layers"]["img"]["path"] = "../data/img.zarr"
    other = tmp_path / "deep" / "specs"
    other.mkdir()
    for name in ("label0", "label1", "segmentation", "points"):
        spec_dict_["layers"][name]["path"] = "../data/" + spec_dict_["layers"][name]["path"]
    spec_dict_["regions"]["path"] = "../data/regions.json"
    assert dry_run(write_spec(other, spec_dict_))["points"] == report["points"]
