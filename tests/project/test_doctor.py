"""`nta doctor`: safe repairs, reports without repairs, and never deleting user data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_training_assistant.project import NotAProjectError, TrainingProject
from napari_training_assistant.project.doctor import run_doctor
from napari_training_assistant.project.image_io import write_tiff
from napari_training_assistant.project.schemas import (
    ArchitectureConfig,
    ModelRegistry,
    Sam3Config,
    TrainingRunHistory,
)
from napari_training_assistant.project.storage import backup_path


def _register(project, payload: bytes, **fields):
    checkpoint_id, path = project.checkpoints.reserve()
    path.write_bytes(payload)
    return project.checkpoints.register(
        checkpoint_id, architecture=project.architecture.model_dump(mode="json"), **fields
    )


@pytest.fixture
def busy(project, add_pair) -> TrainingProject:
    """A healthy project with pairs, two checkpoints, backups and history."""
    for seed in range(3):
        add_pair(project, seed=seed)
    _register(project, b"weights one", dataset_pair_ids=["pair_0001"])
    _register(project, b"weights two", dataset_pair_ids=["pair_0001", "pair_0002"])
    project.update_config(lambda c: setattr(c, "notes", "v1"))
    project.update_config(lambda c: setattr(c, "notes", "v2"))
    project.update_sam3(lambda s: setattr(s, "threshold", 0.3))
    project.history.append_benchmark({"checkpoint_id": "unet_run_002", "dice": 0.8})
    return project


def _snapshot(root):
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    }


def _levels(report):
    return [(f.level, f.file) for f in report.findings]


# ----------------------------------------------------------------------------- healthy


def test_fresh_project_is_healthy(project):
    report = run_doctor(project.root)
    assert report.findings == []
    assert report.healthy_after
    assert report.summary().endswith("healthy")
    assert report.as_dict()["healthy"] is True


def test_busy_project_is_healthy_and_untouched(busy):
    before = _snapshot(busy.root)
    report = run_doctor(busy.root)
    assert report.findings == []
    assert _snapshot(busy.root) == before


def test_non_project_folder_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "image.tif").write_bytes(b"x")
    before = _snapshot(tmp_path)
    with pytest.raises(NotAProjectError, match="not a Training Project Folder"):
        run_doctor(tmp_path / "data")
    with pytest.raises(NotAProjectError):
        run_doctor(tmp_path / "missing")
    with pytest.raises(NotAProjectError):
        run_doctor(tmp_path / "data" / "image.tif")
    assert _snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- broken JSON


def test_broken_json_with_backup_is_restored_to_the_latest_write_and_kept(busy):
    path = busy.layout.project_config
    good_backup = backup_path(path).read_bytes()
    path.write_text('{"project_name": "x", oops')
    report = run_doctor(busy.root)
    assert _levels(report) == [("fixed", "project_config.json")]
    assert "restored the last good copy from project_config.json.bak" in report.findings[0].message
    assert "not valid JSON" in report.findings[0].message
    assert path.read_bytes() == good_backup
    assert TrainingProject.open(busy.root).config.notes == "v2"  # the latest write, not one behind
    broken = list(busy.root.glob("project_config.json.broken-*"))
    assert len(broken) == 1
    assert broken[0].read_text() == '{"project_name": "x", oops'
    assert report.healthy_after
    assert run_doctor(busy.root).findings == []  # a second run finds nothing


def test_invalid_manifest_with_backup_is_restored(busy):
    path = busy.layout.manifest
    data = json.loads(path.read_text())
    data["pairs"][0]["split"] = "nonsense"
    path.write_text(json.dumps(data))
    report = run_doctor(busy.root)
    assert ("fixed", "dataset/manifest.json") in _levels(report)
    assert busy.manifest.pairs  # readable again
    assert list(path.parent.glob("manifest.json.broken-*"))


def test_broken_json_without_backup_is_reported_and_untouched(project):
    path = project.layout.sam3_config
    backup_path(path).unlink()
    path.write_text("{ broken")
    report = run_doctor(project.root)
    assert _levels(report) == [("problem", "sam3/sam3_config.json")]
    assert "fix it by hand" in report.findings[0].message
    assert path.read_text() == "{ broken"
    assert not list(path.parent.glob("*.broken-*"))
    assert not report.healthy_after
    assert "1 problem(s) left" in report.summary()


def test_broken_json_with_a_broken_backup_is_reported(project):
    path = project.layout.model_registry
    path.write_text("{ broken")
    backup_path(path).write_text("also broken")
    report = run_doctor(project.root)
    assert _levels(report) == [("problem", "models/model_registry.json")]
    assert path.read_text() == "{ broken"
    assert backup_path(path).read_text() == "also broken"


def test_missing_file_with_backup_is_restored(busy):
    backup = backup_path(busy.layout.project_config).read_bytes()
    busy.layout.project_config.unlink()
    report = run_doctor(busy.root)
    assert ("fixed", "project_config.json") in _levels(report)
    assert busy.layout.project_config.read_bytes() == backup
    assert TrainingProject.is_project(busy.root)


@pytest.mark.parametrize(
    ("attr", "schema"),
    [
        ("model_registry", ModelRegistry),
        ("training_runs", TrainingRunHistory),
        ("sam3_config", Sam3Config),
        ("starting_weights", None),
    ],
)
def test_missing_recreatable_registries_are_recreated(project, attr, schema):
    path = getattr(project.layout, attr)
    path.unlink()
    backup_path(path).unlink()
    report = run_doctor(project.root)
    assert len(report.findings) == 1
    assert report.findings[0].level == "fixed"
    assert "recreated with defaults" in report.findings[0].message
    assert path.is_file()
    assert TrainingProject.open(project.root).starting_weights.describe() == "scratch"
    if schema is not None:
        assert project.read(path, schema) == schema()


def test_missing_architecture_is_recreated_from_the_latest_checkpoint(project):
    project.set_architecture({"depth": 3, "base_channels": 16, "preset": "custom"})
    _register(project, b"w")
    project.layout.architecture_config.unlink()
    backup_path(project.layout.architecture_config).unlink()
    report = run_doctor(project.root)
    assert report.findings[0].level == "fixed"
    assert "latest checkpoint" in report.findings[0].message
    arch = project.architecture
    assert (arch.depth, arch.base_channels) == (3, 16)


def test_missing_architecture_without_checkpoints_gets_the_default(project):
    project.layout.architecture_config.unlink()
    backup_path(project.layout.architecture_config).unlink()
    report = run_doctor(project.root)
    assert "default architecture" in report.findings[0].message
    assert project.architecture == ArchitectureConfig()


def test_missing_manifest_without_backup_is_a_problem(project):
    project.layout.manifest.unlink()
    backup_path(project.layout.manifest).unlink()
    report = run_doctor(project.root)
    assert _levels(report) == [("problem", "dataset/manifest.json")]
    assert not project.layout.manifest.exists()


# ----------------------------------------------------------------------------- folders and temp files


def test_missing_folders_are_recreated(busy):
    for folder in (busy.layout.predictions_dir, busy.layout.imported_dir, busy.layout.logs_dir):
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    report = run_doctor(busy.root)
    folders = sorted(level for level in _levels(report) if "." not in level[1])
    assert folders == [("fixed", "logs"), ("fixed", "models/imported"), ("fixed", "predictions")]
    assert all(f.level == "fixed" for f in report.findings)  # registries inside them are recreated too
    assert all(f.is_dir() for f in busy.layout.folders())
    assert run_doctor(busy.root).findings == []


def test_stray_temporary_files_are_removed(busy):
    strays = [
        busy.layout.manifest.parent / ".manifest.json.abc123.tmp",
        busy.layout.checkpoints_dir / ".latest.pt.xyz.tmp",
        busy.layout.images_dir / ".pair_0009.tif.1.deadbeef.tmp",
    ]
    for stray in strays:
        stray.write_bytes(b"half written")
    keep = busy.root / "notes.tmp"  # not one of ours (not hidden): left alone
    keep.write_text("mine")
    report = run_doctor(busy.root)
    assert sorted(f.file for f in report.findings) == sorted(busy.layout.relative(s) for s in strays)
    assert all(f.level == "fixed" for f in report.findings)
    assert not any(s.exists() for s in strays)
    assert keep.read_text() == "mine"


# ----------------------------------------------------------------------------- --check


def test_check_mode_changes_nothing(busy):
    busy.layout.sam3_config.write_text("{ broken")  # has a .bak
    busy.layout.model_registry.unlink()  # recreatable
    for child in busy.layout.predictions_dir.iterdir():
        child.unlink()
    busy.layout.predictions_dir.rmdir()
    (busy.layout.checkpoints_dir / ".x.tmp").write_bytes(b"tmp")
    busy.layout.latest_checkpoint.write_bytes(b"tampered")
    (busy.layout.images_dir / "orphan.tif").write_bytes(b"orphan")
    before = _snapshot(busy.root)

    report = run_doctor(busy.root, repair=False)
    assert _snapshot(busy.root) == before
    assert report.repaired is False
    levels = dict((f.file, f.level) for f in report.findings)
    assert levels["sam3/sam3_config.json"] == "problem"
    assert levels["models/model_registry.json"] == "problem"
    assert levels["predictions"] == "info"
    assert levels["checkpoints/.x.tmp"] == "info"
    assert levels["checkpoints/latest.pt"] == "problem"
    assert levels["dataset/images/orphan.tif"] == "info"
    assert not any(f.level == "fixed" for f in report.findings)
    assert "fixable" in report.summary()

    # and a repairing run then fixes what --check reported
    repaired = run_doctor(busy.root)
    assert {f.file for f in repaired.findings if f.level == "fixed"} >= {
        "sam3/sam3_config.json",
        "models/model_registry.json",
        "predictions",
        "checkpoints/.x.tmp",
        "checkpoints/latest.pt",
    }
    assert repaired.healthy_after


# ----------------------------------------------------------------------------- latest.pt


@pytest.mark.parametrize("damage", ["delete", "alter"])
def test_latest_pt_is_copied_again_from_the_registered_checkpoint(busy, damage):
    latest = busy.layout.latest_checkpoint
    if damage == "delete":
        latest.unlink()
    else:
        latest.write_bytes(b"something else")
    report = run_doctor(busy.root)
    assert _levels(report) == [("fixed", "checkpoints/latest.pt")]
    assert "copied it again" in report.findings[0].message
    assert latest.read_bytes() == b"weights two"
    assert busy.checkpoints.latest_file_matches()


def test_latest_pt_with_a_damaged_source_is_a_problem(busy):
    busy.layout.latest_checkpoint.write_bytes(b"tampered")
    busy.checkpoints.path_of("unet_run_002").write_bytes(b"also tampered")
    report = run_doctor(busy.root)
    assert ("problem", "checkpoints/latest.pt") in _levels(report)
    assert ("problem", "checkpoints/unet_run_002.pt") in _levels(report)
    assert busy.layout.latest_checkpoint.read_bytes() == b"tampered"


def test_stray_latest_pt_without_a_registered_latest_is_reported_not_deleted(project):
    project.layout.latest_checkpoint.write_bytes(b"from somewhere")
    report = run_doctor(project.root)
    assert _levels(report) == [("problem", "checkpoints/latest.pt")]
    assert project.layout.latest_checkpoint.read_bytes() == b"from somewhere"


def test_missing_and_unregistered_checkpoint_files(busy):
    busy.checkpoints.path_of("unet_run_001").unlink()
    (busy.layout.checkpoints_dir / "unet_run_077.pt").write_bytes(b"interrupted run")
    report = run_doctor(busy.root)
    assert ("problem", "checkpoints/unet_run_001.pt") in _levels(report)
    assert ("info", "checkpoints/unet_run_077.pt") in _levels(report)
    assert (busy.layout.checkpoints_dir / "unet_run_077.pt").exists()


# ----------------------------------------------------------------------------- dataset files


def test_edited_mask_is_reported_as_a_sha_mismatch(busy):
    pair = busy.dataset.get("pair_0002")
    path = busy.root / pair.mask_path
    before = path.read_bytes()
    write_tiff(path, np.ones((16, 16), np.uint8))
    report = run_doctor(busy.root)
    assert _levels(report) == [("problem", pair.mask_path)]
    assert "changed since it was added (sha256 differs)" in report.findings[0].message
    assert path.read_bytes() != before  # reported, not reverted or deleted


def test_unreadable_and_missing_pair_files_are_reported(busy):
    first, second = busy.dataset.get("pair_0001"), busy.dataset.get("pair_0002")
    (busy.root / first.image_path).write_bytes(b"not a tiff")
    (busy.root / second.mask_path).unlink()
    report = run_doctor(busy.root)
    levels = _levels(report)
    assert ("problem", first.image_path) in levels
    assert ("problem", second.mask_path) in levels
    missing = next(f for f in report.findings if f.file == second.mask_path)
    assert "nta remove-pair" in missing.message
    assert (busy.root / first.image_path).exists()


def test_orphan_dataset_file_is_info_and_not_deleted(busy):
    orphan = busy.layout.images_dir / "pair_0099.tif"
    write_tiff(orphan, np.zeros((16, 16), np.uint8))
    other = busy.layout.masks_dir / "notes.txt"
    other.write_text("mine")
    report = run_doctor(busy.root)
    assert sorted(_levels(report)) == [
        ("info", "dataset/images/pair_0099.tif"),
        ("info", "dataset/masks/notes.txt"),
    ]
    assert report.healthy_after
    assert orphan.exists()
    assert other.read_text() == "mine"


def test_check_mode_says_doctor_recreates_a_missing_architecture(project):
    project.layout.architecture_config.unlink()
    backup_path(project.layout.architecture_config).unlink()
    report = run_doctor(project.root, repair=False)
    assert _levels(report) == [("problem", "architecture/architecture_config.json")]
    assert "`nta doctor` recreates it" in report.findings[0].message
    assert "fix it by hand" not in report.findings[0].message
    assert not project.layout.architecture_config.exists()
