"""The full checkpoint registration flow with real checkpoint files (torch): reserve -> save -> register."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_training_assistant.model import (
    build_model,
    describe,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from napari_training_assistant.project import CheckpointError, TrainingProject
from napari_training_assistant.project.checkpoints import file_sha256


@pytest.fixture
def tiny_project(tmp_path) -> TrainingProject:
    project = TrainingProject.create(tmp_path / "proj", name="registry", architecture={"preset": "tiny_unet"})
    rng = np.random.default_rng(0)
    for split in ("train", "train", "val"):
        image = rng.integers(0, 255, (24, 24), dtype=np.uint8)
        project.dataset.add(image, (image > 128).astype(np.uint8), split=split)
    return project


def _train_and_register(project: TrainingProject, seed: int, *, parent_id=None, status="completed", metrics=None):
    arch = project.architecture.model_dump(mode="json")
    torch.manual_seed(seed)
    model = build_model(arch).eval()
    checkpoint_id, path = project.checkpoints.reserve()
    save_checkpoint(path, model, arch, {"checkpoint_id": checkpoint_id, "seed": seed})
    model.manifest_before = project.checkpoints.manifest_sha256()  # registering marks pairs used
    record = project.checkpoints.register(
        checkpoint_id,
        architecture=arch,
        status=status,
        dataset_pair_ids=project.dataset.ids(),
        split={s: project.dataset.ids(s) for s in ("train", "val", "benchmark")},
        metrics=metrics or {"dice": 0.5 + seed / 100, "iou": 0.4 + seed / 100},
        parent_id=parent_id,
        starting_weights=project.starting_weights.model_dump(mode="json"),
        architecture_summary=describe(arch),
    )
    return record, path, model


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(2, 1, 24, 24)
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_register_a_real_checkpoint(tiny_project):
    project = tiny_project
    record, path, model = _train_and_register(project, seed=1)

    assert record.checkpoint_id == "unet_run_001" and path.name == "unet_run_001.pt"
    assert record.path == "checkpoints/unet_run_001.pt"
    assert record.file_sha256 == file_sha256(path)
    assert record.dataset_pair_ids == ["pair_0001", "pair_0002", "pair_0003"]
    assert record.split == {"train": ["pair_0001", "pair_0002"], "val": ["pair_0003"], "benchmark": []}
    assert record.metrics == pytest.approx({"dice": 0.51, "iou": 0.41})
    assert record.parent_id is None and record.status == "completed"
    assert record.starting_weights["choice"] == "scratch"
    assert record.architecture_summary["encoder_levels"] == 2
    assert record.architecture_summary["parameters"] == sum(p.numel() for p in model.parameters())
    assert record.manifest_sha256 == model.manifest_before  # the dataset as the run saw it

    registry = project.checkpoints.registry
    assert registry.latest == "unet_run_001"
    latest = project.layout.latest_checkpoint
    assert latest.read_bytes() == path.read_bytes()
    assert project.checkpoints.latest_file_matches()
    assert all("unet_run_001" in p.used_by_checkpoints for p in project.dataset.pairs)

    loaded = load_model(latest)
    assert not loaded.training
    assert _same_outputs(loaded, model)
    _, arch, meta = read_checkpoint(latest)
    assert arch == project.architecture.model_dump(mode="json")
    assert meta["metadata"] == {"checkpoint_id": "unet_run_001", "seed": 1}
    assert list(project.layout.checkpoints_dir.glob("*.tmp")) == []
    assert list(project.layout.checkpoints_dir.glob(".*")) == []


def test_lineage_and_latest_pointer(tiny_project):
    project = tiny_project
    first, first_path, first_model = _train_and_register(project, seed=1)
    cancelled, _, _ = _train_and_register(project, seed=2, parent_id=first.checkpoint_id, status="cancelled")
    assert cancelled.checkpoint_id == "unet_run_002" and cancelled.parent_id == "unet_run_001"
    assert project.checkpoints.latest_id == "unet_run_001"  # a cancelled run never becomes latest
    assert project.layout.latest_checkpoint.read_bytes() == first_path.read_bytes()
    assert _same_outputs(load_model(project.layout.latest_checkpoint), first_model)

    project.set_starting_weights("checkpoint:unet_run_001")
    third, third_path, third_model = _train_and_register(project, seed=3, parent_id=first.checkpoint_id)
    assert third.starting_weights["choice"] == "checkpoint" and third.starting_weights["checkpoint_id"] == "unet_run_001"
    assert project.checkpoints.latest_id == "unet_run_003"
    assert _same_outputs(load_model(project.layout.latest_checkpoint), third_model)
    assert _same_outputs(load_model(project.checkpoints.path_of("unet_run_001")), first_model)
    assert first_path.read_bytes() == project.checkpoints.path_of("unet_run_001").read_bytes()  # never overwritten
    assert project.checkpoints.get("latest").checkpoint_id == "unet_run_003"


def test_register_refuses_twice_and_unwritten(tiny_project):
    project = tiny_project
    record, _, _ = _train_and_register(project, seed=1)
    with pytest.raises(CheckpointError, match="already registered"):
        project.checkpoints.register(record.checkpoint_id, architecture=record.architecture)
    reserved, path = project.checkpoints.reserve()
    with pytest.raises(CheckpointError, match="was not written"):
        project.checkpoints.register(reserved, architecture=record.architecture)
    assert [c.checkpoint_id for c in project.checkpoints.records] == ["unet_run_001"]
    assert not path.exists()


def test_cli_checkpoints_json_lists_real_checkpoints(tiny_project):
    project = tiny_project
    _train_and_register(project, seed=1, metrics={"dice": 0.7, "iou": 0.55})
    _train_and_register(project, seed=2, parent_id="unet_run_001", metrics={"dice": 0.75, "iou": 0.6})
    result = subprocess.run(
        [sys.executable, "-m", "napari_training_assistant.cli", "checkpoints", str(project.root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    listing = json.loads(result.stdout.strip().splitlines()[-1])
    assert listing["latest"] == "unet_run_002"
    assert [(c["checkpoint_id"], c["parent_id"]) for c in listing["checkpoints"]] == [
        ("unet_run_001", None),
        ("unet_run_002", "unet_run_001"),
    ]
    assert listing["checkpoints"][1]["metrics"] == {"dice": 0.75, "iou": 0.6}
    assert listing["checkpoints"][0]["file_sha256"] == file_sha256(project.checkpoints.path_of("unet_run_001"))
