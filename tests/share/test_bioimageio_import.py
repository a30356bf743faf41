"""`nta import-weights` of a bioimage.io package: this tool's exports round-trip (export -> import into a new
project -> the same network outputs), other packages map by their keys, and every refusal is one line that
writes nothing and runs nothing of the package."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from napari_training_assistant.cli.main import main
from napari_training_assistant.data.synthetic_nuclei import make_nuclei
from napari_training_assistant.model import build_model, load_model
from napari_training_assistant.project import CheckpointError, TrainingProject
from napari_training_assistant.project.schemas import ImportedModel
from napari_training_assistant.share import export_model
from napari_training_assistant.share.bioimageio_import import import_pretrained
from napari_training_assistant.train import TrainOptions, train_project
from napari_training_assistant.train.starting import resolve_start

pytest.importorskip("bioimageio.spec")
pytest.importorskip("onnx")

ARCH = {"preset": "custom", "depth": 2, "base_channels": 4}
FAST = {"epochs": 1, "samples_per_epoch": 4, "batch_size": 2, "device": "cpu"}


def _project(root: Path, name: str, *, pairs: int = 0, spatial_dims: str = "2d") -> TrainingProject:
    project = TrainingProject.create(root / name, name, spatial_dims=spatial_dims, architecture=ARCH)
    for index, split in enumerate(("train", "train", "val")[:pairs]):
        image, labels = make_nuclei((48, 48), n_nuclei=4, radius_range=(4.0, 7.0), seed=index)
        project.dataset.add(image, labels, mask_mode="binary", split=split)
    return project


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny trained project and its bioimage.io export (model.zip)."""
    root = tmp_path_factory.mktemp("exported")
    project = _project(root, "source", pairs=3)
    train_project(project, TrainOptions(**FAST))
    result = export_model(project, "latest", format="bioimageio", output=root / "model.zip", authors=["Ada Lovelace"])
    return project, result.path


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_package(target: Path, rdf: dict, files: dict[str, bytes], *, zipped: bool = True) -> Path:
    """A package made by hand: rdf.yaml plus `files`, zipped or as a folder."""
    entries = {"rdf.yaml": yaml.safe_dump(rdf).encode(), **files}
    if not zipped:
        target.mkdir()
        for name, data in entries.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(data)
        return target
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return target


def _state_bytes(state: dict, tmp_path: Path) -> bytes:
    file = tmp_path / "state.pt"
    torch.save(state, file)
    return file.read_bytes()


def _foreign_rdf(weights: dict | None = None, **overrides) -> dict:
    """A 0.5-style model description of someone else's U-Net (its own code in unet.py)."""
    rdf = {
        "format_version": "0.5.4",
        "type": "model",
        "id": "affable-shark",
        "version": "1.1",
        "name": "Other lab U-Net",
        "description": "nuclei",
        "authors": [{"name": "Grace Hopper"}, {"name": "Alan Turing"}],
        "inputs": [{"id": "raw", "axes": [{"type": "batch"}, {"type": "channel"}, {"type": "space", "id": "y"}, {"type": "space", "id": "x"}]}],
        "weights": weights
        if weights is not None
        else {
            "pytorch_state_dict": {
                "source": "weights/model.pth",
                "architecture": {"source": "unet.py", "callable": "UNet2d", "kwargs": {"depth": 2}},
            },
            "onnx": {"source": "weights.onnx"},
        },
    }
    return {**rdf, **overrides}


# ------------------------------------------------------------------------------------------- round trip


@pytest.mark.slow
def test_export_import_round_trip_reproduces_the_network_and_its_lineage(exported, tmp_path):
    source, package = exported
    original = source.checkpoints.get("latest")
    target = _project(tmp_path, "target", pairs=3)

    record = import_pretrained(target, package)

    assert record.name == _package_name(package) and record.source_filename == "model.zip"
    assert record.architecture == source.architecture.model_dump(mode="json") and record.key_prefix_stripped == ""
    facts = record.package
    assert facts["format"] == "bioimageio" and facts["weights_format"] == "pytorch_state_dict"
    assert facts["authors"] == ["Ada Lovelace"] and facts["architecture_callable"] == "nta_unet"
    assert facts["sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert facts["exported_from"]["checkpoint_id"] == original.checkpoint_id
    assert facts["exported_from"]["checkpoint_sha256"] == original.file_sha256
    assert facts["exported_from"]["manifest_sha256"] == original.manifest_sha256
    sidecar = json.loads(next(target.layout.imported_dir.glob("*.record.json")).read_text())
    assert sidecar["package"] == facts  # the registry can be rebuilt with it

    target.set_starting_weights(f"imported:{record.model_id}")  # nta start PROJECT imported:ID
    start = resolve_start(target, target.architecture.model_dump(mode="json"), None)
    image = torch.from_numpy(source.dataset.load(source.dataset.pairs[0].pair_id)[0].astype(np.float32) / 255)[None, None]
    with torch.no_grad():
        assert torch.equal(start.model.eval()(image), load_model(source.checkpoints.path_of("latest"))(image))

    trained = train_project(target, TrainOptions(**FAST))  # starts from the imported weights
    checkpoint = target.checkpoints.get(trained.checkpoint_id)
    assert checkpoint.starting_weights["source_id"] == record.model_id
    from napari_training_assistant.share.lineage import lineage

    started = lineage(target, checkpoint)["started_from"]
    assert started["imported"]["package"]["exported_from"]["checkpoint_id"] == original.checkpoint_id


def _package_name(package: Path) -> str:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))["name"]


@pytest.mark.slow
def test_unzipped_package_imports_as_a_folder_or_by_its_rdf(exported, tmp_path):
    _, package = exported
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)

    by_folder = import_pretrained(_project(tmp_path, "a"), folder)
    by_rdf = import_pretrained(_project(tmp_path, "b"), folder / "rdf.yaml")

    for record in (by_folder, by_rdf):
        assert record.package["source"] == "unpacked" and record.package["sha256"] is None
        assert record.package["authors"] == ["Ada Lovelace"]
    assert by_folder.sha256 == by_rdf.sha256


@pytest.mark.parametrize("zipped", [True, False])
def test_other_packages_map_by_their_keys_without_running_their_code(tmp_path, zipped):
    project = _project(tmp_path, "proj")
    marker = tmp_path / "ran"
    state = {f"model.{k}": v for k, v in build_model(project.architecture).state_dict().items()}
    files = {
        "weights/model.pth": _state_bytes(state, tmp_path),
        "unet.py": f"open({str(marker)!r}, 'w').close()\n".encode(),
        "weights.onnx": b"not read",
    }
    package = _write_package(tmp_path / ("pkg.zip" if zipped else "pkg"), _foreign_rdf(), files, zipped=zipped)

    record = import_pretrained(project, package)

    assert record.key_prefix_stripped == "model." and record.architecture == project.architecture.model_dump(mode="json")
    facts = record.package
    assert (facts["id"], facts["version"], facts["authors"]) == ("affable-shark", "1.1", ["Grace Hopper", "Alan Turing"])
    assert facts["architecture_callable"] == "UNet2d" and "exported_from" not in facts
    assert not marker.exists()


def test_format_0_4_architecture_string_and_nickname(tmp_path):
    project = _project(tmp_path, "proj")
    weights = {"pytorch_state_dict": {"source": "w.pt", "architecture": "unet.py:UNet2d", "kwargs": {}}}
    rdf = _foreign_rdf(weights, format_version="0.4.10", id=None, config={"bioimageio": {"nickname": "loyal-squid"}})
    rdf["inputs"] = [{"name": "raw", "axes": "bcyx"}]
    package = _write_package(tmp_path / "old.zip", rdf, {"w.pt": _state_bytes(build_model(project.architecture).state_dict(), tmp_path)})

    record = import_pretrained(project, package)

    assert (record.package["id"], record.package["architecture_callable"]) == ("loyal-squid", "UNet2d")


def test_registry_entries_without_a_package_still_load():
    entry = {
        "model_id": "imported_001", "name": "w", "source_filename": "w.pt", "path": "models/imported/imported_001_w.pt",
        "sha256": "0" * 64, "format": "pt", "architecture": {}, "imported_at": "2026-01-01T00:00:00+00:00", "tensor_count": 1,
    }  # fmt: skip
    assert ImportedModel.model_validate(entry).package is None


# ------------------------------------------------------------------------------------------- refusals


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _refusals(tmp_path: Path, state: dict) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (package, fragments its one-line refusal contains)."""
    good = _state_bytes(state, tmp_path)
    with_weights = {"weights/model.pth": good}

    def package(name: str, rdf: dict | None = None, files: dict | None = None, *, zipped: bool = True) -> Path:
        return _write_package(tmp_path / name, rdf or _foreign_rdf(), with_weights if files is None else files, zipped=zipped)

    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(os.urandom(2000))
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("notes.txt", "hello")
        archive.writestr("data/table.csv", "a,b\n1,2\n")
    traversal = tmp_path / "traversal.zip"
    with zipfile.ZipFile(traversal, "w") as archive:
        archive.writestr("rdf.yaml", yaml.safe_dump(_foreign_rdf()))
        archive.writestr("../evil", "x")
    truncated = package("truncated.zip")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": state, "hook": Evil(tmp_path / "marker")}, evil)
    other_arch = {k.replace("encoder", "down"): v for k, v in state.items()}
    weights_3d = {"pytorch_state_dict": {"source": "weights/model.pth", "architecture": {"callable": "UNet3d", "source": "unet.py"}}}
    url = {"pytorch_state_dict": {"source": "https://example.org/weights.pt", "architecture": {"callable": "UNet2d"}}}
    wrong_hash = {"pytorch_state_dict": {"source": "weights/model.pth", "sha256": "0" * 64, "architecture": {"callable": "UNet2d"}}}
    outside = {"pytorch_state_dict": {"source": "../model.pth", "architecture": {"callable": "UNet2d"}}}
    (tmp_path / "model.pth").write_bytes(good)
    three_d = _foreign_rdf(weights_3d)
    three_d["inputs"][0]["axes"].append({"type": "space", "id": "z"})
    return {
        "garbage_zip": (garbage, ("garbage.zip", "not a readable zip")),
        "truncated_zip": (truncated, ("truncated.zip", "not a readable zip")),
        "foreign_zip": (foreign, ("not a bioimage.io package", "rdf.yaml")),
        "empty_folder": (_mkdir(tmp_path / "empty"), ("folder", "not a bioimage.io package")),
        "member_traversal": (traversal, ("refusing", "../evil", "outside")),
        "weights_outside_folder": (package("outside", _foreign_rdf(outside), zipped=False), ("refusing", "outside")),
        "code_executing_pickle": (package("evil.zip", files={"weights/model.pth": evil.read_bytes()}), ("refusing", "evil.zip:weights/model.pth", "system")),
        "only_onnx": (package("onnx.zip", _foreign_rdf({"onnx": {"source": "w.onnx"}}), {"w.onnx": b"x"}), ("no pytorch_state_dict weights", "it has: onnx", "only pytorch_state_dict")),
        "not_a_model": (package("dataset.zip", {"type": "dataset", "name": "cells"}), ("bioimage.io dataset", "'cells'", "not a model")),
        "not_yaml": (package("bad.zip", files=with_weights | {"rdf.yaml": b"a: [b"}), ("bad.zip", "not valid YAML")),
        "keys_do_not_fit": (package("other.zip", files={"weights/model.pth": _state_bytes(other_arch, tmp_path)}), ("architecture `UNet2d` from unet.py", "do not fit this project's architecture", "unexpected")),
        "3d_into_2d": (package("three.zip", three_d), ("3D model", "this project is 2D")),
        "weights_at_a_url": (package("url.zip", _foreign_rdf(url)), ("https://example.org/weights.pt", "not in the package")),
        "weights_changed": (package("changed.zip", _foreign_rdf(wrong_hash)), ("weights/model.pth", "sha256")),
        "missing_weights": (package("missing.zip", files={}), ("names weights/model.pth but does not contain it",)),
    }


def _mkdir(folder: Path) -> Path:
    folder.mkdir()
    return folder


@pytest.fixture
def refused(tmp_path):
    project = _project(tmp_path, "proj")
    inputs = _mkdir(tmp_path / "inputs")
    return project, inputs, _refusals(inputs, build_model(project.architecture).state_dict())


REFUSALS = (
    "garbage_zip", "truncated_zip", "foreign_zip", "empty_folder", "member_traversal", "weights_outside_folder",
    "code_executing_pickle", "only_onnx", "not_a_model", "not_yaml", "keys_do_not_fit", "3d_into_2d",
    "weights_at_a_url", "weights_changed", "missing_weights",
)  # fmt: skip


def test_refusals_are_one_line_and_write_nothing(refused):
    project, inputs, cases = refused
    assert sorted(cases) == sorted(REFUSALS)
    before = _tree(project.root)
    for name, (package, fragments) in cases.items():
        with pytest.raises(CheckpointError) as caught:
            import_pretrained(project, package)
        message = str(caught.value)
        assert "\n" not in message and all(f in message for f in fragments), (name, message)
        assert "nta-package-" not in message, (name, message)  # names files inside the package, not staged copies
    assert _tree(project.root) == before
    assert not (inputs / "marker").exists()


@pytest.mark.slow
def test_damaged_weights_inside_an_export_are_refused(exported, tmp_path):
    _, package = exported
    data = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as archive:
        info = archive.getinfo("weights.pt")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    project = _project(tmp_path, "proj")
    before = _tree(project.root)

    with pytest.raises(CheckpointError, match="corrupt|sha256"):
        import_pretrained(project, damaged)
    assert _tree(project.root) == before


# ------------------------------------------------------------------------------------------- CLI


def test_cli_imports_a_package_and_refuses_in_one_line(tmp_path, capsys):
    project = _project(tmp_path, "proj")
    files = {"weights/model.pth": _state_bytes(build_model(project.architecture).state_dict(), tmp_path)}
    package = _write_package(tmp_path / "pkg.zip", _foreign_rdf(), files)

    assert main(["import-weights", str(project.root), str(package)]) == 0
    out = capsys.readouterr().out
    assert "bioimage.io model 'Other lab U-Net' from pkg.zip (id affable-shark, version 1.1, by Grace Hopper, Alan Turing)" in out
    assert f"imported:{project.imported_models.registry.models[0].model_id}" in out

    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert main(["import-weights", str(project.root), str(foreign)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "not a bioimage.io package" in captured.err
