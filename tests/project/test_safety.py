"""A project folder from a stranger: records naming files outside it, links leaving it, hostile ids,
odd files in place of project files. Nothing outside the project is read, written or deleted, and every
refusal is one line (issue 10, findings 1, 2, 5)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from napari_training_assistant.project import DatasetError, ProjectError, ProjectFileError, TrainingProject
from napari_training_assistant.project.doctor import run_doctor
from napari_training_assistant.project.image_io import write_tiff
from napari_training_assistant.project.paths import PathOutsideProjectError, check_id, check_relative, confine
from napari_training_assistant.project.storage import backup_path


@pytest.fixture
def outside(tmp_path):
    """A user's file next to the project, which no project operation may touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    target = folder / "x.tif"
    write_tiff(target, np.full((16, 16), 7, np.uint8))
    return target


def _edit(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and len(text) < 600, text
    return text


# ----------------------------------------------------------------------------- the rules themselves


@pytest.mark.parametrize(
    "bad",
    ["../x.tif", "../../outside/x.tif", "/etc/passwd", "C:/x.tif", "a\\b.tif", "a//b.tif", "./a.tif", "a/./b", "", "a/..", "x\x00y"],
)
def test_check_relative_refuses_paths_that_could_leave_the_project(bad):
    with pytest.raises(ValueError):
        check_relative(bad)


@pytest.mark.parametrize("good", ["dataset/images/pair_0001.tif", "checkpoints/unet_run_001.pt", "a"])
def test_check_relative_accepts_project_paths(good):
    assert check_relative(good) == good


@pytest.mark.parametrize("bad", ["../../../outside/runx", "run/1", ".", "..", ".hidden", "", "a" * 200, "run 1"])
def test_ids_that_are_not_plain_names_are_refused(bad):
    with pytest.raises(ValueError):
        check_id(bad)


def test_confine_refuses_a_link_inside_that_points_outside(project, outside):
    link = project.layout.images_dir / "pair_0001.tif"
    link.symlink_to(outside)
    with pytest.raises(PathOutsideProjectError, match="outside the project"):
        confine(project.root, "dataset/images/pair_0001.tif")


# ----------------------------------------------------------------------------- records naming files elsewhere


@pytest.mark.parametrize("field", ["image_path", "mask_path"])
@pytest.mark.parametrize("value", ["../../outside/x.tif", "/etc/passwd"])
def test_a_manifest_naming_a_file_outside_is_refused_on_reading(project, add_pair, outside, field, value):
    add_pair(project)
    _edit(project.layout.manifest, lambda d: d["pairs"][0].update({field: value}))
    with pytest.raises(ProjectFileError) as info:
        project.dataset.remove("pair_0001")
    assert f"pairs.0.{field}" in _one_line(info.value)
    assert outside.read_bytes()  # the user's file is still there
    report = run_doctor(project.root, repair=False)
    assert ("problem", "dataset/manifest.json") in [(f.level, f.file) for f in report.findings]


def test_an_absolute_checkpoint_path_is_refused(project):
    checkpoint_id, path = project.checkpoints.reserve()
    path.write_bytes(b"w")
    project.checkpoints.register(checkpoint_id, architecture=project.architecture.model_dump(mode="json"))
    _edit(project.layout.checkpoint_registry, lambda d: d["checkpoints"][0].update({"path": "/etc/passwd"}))
    with pytest.raises(ProjectFileError, match="checkpoints.0.path"):
        project.checkpoints.path_of(checkpoint_id)


def test_a_hostile_run_id_is_refused_and_doctor_does_not_call_it_healthy(project, tmp_path):
    victim = tmp_path / "outside" / "runx"
    victim.mkdir(parents=True)
    (victim / "last.ckpt").write_bytes(b"someone else's file")
    project.history.record_run(_run("run_001"))
    _edit(project.layout.training_runs, lambda d: d["runs"][0].update({"run_id": "../../../outside/runx"}))
    with pytest.raises(ProjectFileError, match="runs.0.run_id"):
        _ = project.history.runs
    with pytest.raises(PathOutsideProjectError):
        project.layout.run_dir("../../../outside/runx")
    report = run_doctor(project.root, repair=False)
    assert not report.healthy_after
    assert (victim / "last.ckpt").read_bytes() == b"someone else's file"


def test_removing_a_pair_whose_file_is_a_link_removes_the_link_not_the_target(project, add_pair, outside):
    record = add_pair(project)
    image = project.root / record.image_path
    image.unlink()
    image.symlink_to(outside)
    with pytest.raises(PathOutsideProjectError):
        project.dataset.load(record.pair_id)
    project.dataset.remove(record.pair_id)
    assert not image.is_symlink() and not image.exists()
    assert outside.read_bytes()  # the target is untouched


def test_a_dataset_folder_linked_outside_is_never_written_through(project, add_pair, tmp_path):
    record = add_pair(project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pair_0001.tif").write_bytes(b"precious")
    masks = project.layout.masks_dir
    for child in masks.iterdir():
        child.unlink()
    masks.rmdir()
    masks.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(PathOutsideProjectError):
        project.dataset.remove(record.pair_id)
    assert (elsewhere / "pair_0001.tif").read_bytes() == b"precious"
    assert project.dataset.ids() == [record.pair_id]  # nothing changed


def test_doctor_reports_links_leaving_the_project_and_never_follows_them(project, add_pair, tmp_path, outside):
    add_pair(project)
    linked = tmp_path / "linked"
    linked.mkdir()
    stray = linked / ".half.tmp"
    stray.write_bytes(b"someone's temp file")
    (project.root / "external").symlink_to(linked, target_is_directory=True)
    (project.layout.images_dir / "extra.tif").symlink_to(outside)
    for repair in (False, True):
        report = run_doctor(project.root, repair=repair)
        problems = {f.file for f in report.problems}
        assert {"external", "dataset/images/extra.tif"} <= problems
    assert stray.read_bytes() == b"someone's temp file"  # not a temp file of this project
    assert outside.read_bytes()


def test_a_project_file_that_is_a_link_outside_is_not_read(project, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"threshold": 0.9}))
    project.layout.sam3_config.unlink()
    project.layout.sam3_config.symlink_to(secret)
    with pytest.raises(PathOutsideProjectError):
        _ = project.sam3


# ----------------------------------------------------------------------------- odd files


def test_a_deeply_nested_manifest_is_one_line_and_doctor_restores_the_backup(project, add_pair):
    add_pair(project)
    project.layout.manifest.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ProjectFileError) as info:
        _ = project.manifest
    assert "nested too deeply" in _one_line(info.value)
    report = run_doctor(project.root)
    assert report.findings[0].level == "fixed"
    assert project.dataset.ids() == ["pair_0001"]


def test_a_huge_value_is_not_echoed_in_the_error(project):
    _edit(project.layout.sam3_config, lambda d: d.update({"threshold": "x" * 1_000_000}))
    with pytest.raises(ProjectFileError) as info:
        _ = project.sam3
    _one_line(info.value)


def test_a_lock_that_is_a_folder_is_one_line(tmp_path):
    project = TrainingProject.create(tmp_path / "p")
    project.layout.lock_file.unlink(missing_ok=True)
    project.layout.lock_file.mkdir()
    with pytest.raises(ProjectError) as info:
        project.update_config(lambda c: setattr(c, "notes", "x"))
    assert "is a folder" in _one_line(info.value)


def test_a_pair_image_replaced_by_one_of_another_shape_is_refused(project, add_pair):
    record = add_pair(project)
    write_tiff(project.root / record.image_path, np.zeros((8, 9), np.uint8))
    with pytest.raises(DatasetError) as info:
        project.dataset.load(record.pair_id)
    message = _one_line(info.value)
    assert "changed since it was added" in message and "(8, 9)" in message and "nta remove-pair" in message


def test_the_same_image_and_mask_twice_are_refused_unless_asked(project, add_pair):
    add_pair(project, seed=3)
    with pytest.raises(DatasetError, match="already in the dataset as pair_0001"):
        add_pair(project, seed=3)
    assert project.dataset.ids() == ["pair_0001"]
    assert add_pair(project, seed=3, allow_duplicate=True).pair_id == "pair_0002"


def test_set_split_points_to_the_pair_list(project):
    with pytest.raises(DatasetError, match="nta pairs"):
        project.dataset.set_split("pair_0042", "val")


def _run(run_id: str, **fields):
    from napari_training_assistant.project.clock import now
    from napari_training_assistant.project.schemas import TrainingRun

    return TrainingRun(run_id=run_id, status="running", started_at=now(), **fields)


def test_backups_hold_the_latest_write_of_each_file(project, add_pair):
    add_pair(project)
    project.layout.manifest.write_bytes(project.layout.manifest.read_bytes()[:20])  # truncated
    run_doctor(project.root)
    assert project.dataset.ids() == ["pair_0001"]
    assert backup_path(project.layout.manifest).read_bytes() == project.layout.manifest.read_bytes()


@pytest.mark.skipif(os.name != "posix", reason="POSIX symlinks")
def test_status_of_a_project_with_a_link_outside_still_answers(project, outside):
    from napari_training_assistant.project.status import project_status

    (project.layout.images_dir / "extra.tif").symlink_to(outside)
    assert project_status(project)["dataset_count"] == 0
