"""`nta export` / `export_model`: bioimage.io packages that the reference tool (bioimageio.core) loads and
reproduces for every weight format, ONNX and TorchScript files that match PyTorch, the lineage they carry, and
the refusals (cancelled or changed checkpoints, existing outputs) that write nothing."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
import yaml

from napari_training_assistant.cli.main import main
from napari_training_assistant.model import load_model
from napari_training_assistant.project.errors import CheckpointError
from napari_training_assistant.share import ExportError, export_model
from napari_training_assistant.train import train_project

pytest.importorskip("bioimageio.core")
pytest.importorskip("onnxruntime")

CASES = {
    "2d-binary": {"spatial_dims": "2d", "output_mode": "binary"},
    "2d-instance": {"spatial_dims": "2d", "output_mode": "instance"},
    "2d-multilabel-zscore": {"spatial_dims": "2d", "output_mode": "multilabel"},
    "3d-multiclass": {"spatial_dims": "3d", "output_mode": "multiclass", "num_classes": 3, "architecture": {"normalization": "group"}},
}


def _trained(make_project, fast_options, name: str, runs: int = 1):
    project = make_project(name, **CASES[name])
    if "zscore" in name:
        from napari_training_assistant.project.schemas import ProjectConfig

        with project.editing(project.layout.project_config, ProjectConfig) as config:
            config.training.normalization = "zscore"
    for index in range(runs):
        train_project(project, fast_options(start="latest" if index else "scratch"))
    return project


@pytest.fixture
def trained(make_project, fast_options):
    return lambda name, runs=1: _trained(make_project, fast_options, name, runs)


def _rdf(package) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_bioimageio_package_passes_the_reference_model_test(tmp_path, trained, name):
    from bioimageio.core import test_model

    project = trained(name)
    result = export_model(project, format="bioimageio", output=tmp_path / "model.zip", authors=["Ada Lovelace"])
    assert result.path.is_file() and result.checkpoint_id == "unet_run_001"
    for weight_format in ("pytorch_state_dict", "torchscript", "onnx"):
        summary = test_model(result.path, weight_format=weight_format)
        failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status == "failed"]
        assert summary.status == "passed", (weight_format, failed)
    rdf = _rdf(result.path)
    arch = load_model(project.checkpoints.path_of("latest")).architecture
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["output_mode"] == arch["output_mode"]
    channel = next(a for a in rdf["outputs"][0]["axes"] if a["type"] == "channel")
    assert len(channel["channel_names"]) == arch["output_channels"]
    if "zscore" in name:
        assert any(op["id"] == "zero_mean_unit_variance" for op in rdf["inputs"][0]["preprocessing"])
    spaces = [a["id"] for a in rdf["inputs"][0]["axes"] if a["type"] == "space"]
    assert spaces == (["z", "y", "x"] if arch["spatial_dims"] == "3d" else ["y", "x"])


@pytest.mark.slow
def test_package_carries_lineage_documentation_and_preprocessing(tmp_path, trained):
    project = trained("2d-binary", runs=2)
    record = project.checkpoints.get("latest")
    package = export_model(project, format="bioimageio", output=tmp_path / "m.zip", authors=["A", "B"]).path
    rdf = _rdf(package)
    facts = rdf["config"]["napari_training_assistant"]
    assert facts["checkpoint"] == {"id": record.checkpoint_id, "sha256": record.file_sha256, "timestamp": facts["checkpoint"]["timestamp"]}
    assert [a["checkpoint_id"] for a in facts["ancestry"]] == ["unet_run_002", "unet_run_001"]
    assert facts["started_from"]["choice"] == "scratch"
    assert facts["dataset"]["manifest_sha256"] == record.manifest_sha256
    assert facts["dataset"]["pairs"] == len(record.dataset_pair_ids)
    assert facts["training"]["epochs"] == 1 and facts["training"]["loss"]["name"] == "bce_dice"
    assert "AdamW" in facts["training"]["optimizer"]
    assert [r["checkpoint_id"] for r in facts["benchmark_history"]] == ["unet_run_001", "unet_run_002"]
    assert rdf["training_data"]["config"]["napari_training_assistant"]["manifest_sha256"] == record.manifest_sha256
    assert [a["name"] for a in rdf["authors"]] == ["A", "B"]
    scale = rdf["inputs"][0]["preprocessing"]
    assert {"id": "scale_range"} .items() <= next(p for p in scale if p["id"] == "scale_range").items()
    assert next(p for p in scale if p["id"] == "scale_range")["kwargs"]["max_percentile"] == 99.8
    assert rdf["outputs"][0]["postprocessing"][0]["id"] == "sigmoid"
    with zipfile.ZipFile(package) as archive:
        readme = archive.read("README.md").decode()
        assert "unet_run_001" in readme and "Frozen benchmark history" in readme and "1 and 99.8 percentiles" in readme
        assert json.loads(archive.read("lineage.json"))["checkpoint"]["id"] == "unet_run_002"
        test_input = np.load(archive.open("test_input.npy"))
        assert test_input.shape[:2] == (1, 1) and test_input.shape[2] % 4 == 0  # a benchmark pair's raw values
        assert archive.read("cover.png")[:4] == b"\x89PNG"
        assert "def nta_unet" in archive.read("unet_source.py").decode()


def test_onnx_and_torchscript_files_match_pytorch(tmp_path, trained):
    import onnxruntime as ort

    project = trained("2d-instance")
    model = load_model(project.checkpoints.path_of("latest"))
    onnx_file = export_model(project, format="onnx", output=tmp_path / "m.onnx").path
    script_file = export_model(project, format="torchscript", output=tmp_path / "m.pt").path
    x = torch.rand(2, 1, 40, 24)
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": x.numpy()})[0] - expected).max() < 1e-4
    assert np.abs(torch.jit.load(str(script_file))(x).detach().numpy() - expected).max() < 1e-5


def _tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_refusals_write_nothing(tmp_path, trained):
    project = trained("2d-binary")
    before = _tree(project.root)
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="exists: choose another path or allow replacing it"):
        export_model(project, format="onnx", output=existing)
    with pytest.raises(ExportError, match="should end with .zip"):
        export_model(project, format="bioimageio", output=tmp_path / "m.onnx.txt")
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(project, format="keras", output=tmp_path / "m.h5")
    with pytest.raises(CheckpointError, match="no checkpoint 'unet_run_009'"):
        export_model(project, "unet_run_009", format="torchscript", output=tmp_path / "x.pt")
    registry_file = project.layout.checkpoint_registry
    registry = json.loads(registry_file.read_text())
    registry["checkpoints"][0]["status"] = "cancelled"
    registry_file.write_text(json.dumps(registry))
    with pytest.raises(CheckpointError, match="unet_run_001 is cancelled: only completed checkpoints are exported"):
        export_model(project, "unet_run_001", format="torchscript", output=tmp_path / "x.pt")
    registry["checkpoints"][0]["status"] = "completed"
    registry_file.write_text(json.dumps(registry))
    weights = project.checkpoints.path_of("unet_run_001")
    original = weights.read_bytes()
    weights.write_bytes(original + b"\0")
    with pytest.raises(CheckpointError, match="no longer matches the sha256 recorded"):
        export_model(project, "unet_run_001", format="torchscript", output=tmp_path / "x.pt")
    weights.write_bytes(original)
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != project.root.name) == ["m.onnx"]
    assert _tree(project.root).keys() == before.keys()
    export_model(project, format="onnx", output=existing, overwrite=True)
    assert existing.read_bytes()[:4] != b"keep"


def test_cli_export(tmp_path, trained, capsys):
    project = trained("2d-binary")
    out = tmp_path / "m.pt"
    assert main(["export", str(project.root), "--format", "torchscript", "--output", str(out), "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["checkpoint_id"] == "unet_run_001" and reply["path"] == str(out) and out.is_file()
    assert main(["export", str(project.root), "--format", "torchscript", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
