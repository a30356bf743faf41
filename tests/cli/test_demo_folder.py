"""`nta demo --dir X` replaces only the untouched folder a previous demo left (issue 10, finding 3):
never a user's project that happens to be named like the demo, nor a demo the user added to."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_training_assistant.demo import DEMO_MARKER, DEMO_NAME, _replace_old_demo
from napari_training_assistant.project import ProjectError, TrainingProject


def _demo_like(folder) -> TrainingProject:
    """What `run_demo` leaves before training: the demo project, its pairs and its marker."""
    project = TrainingProject.create(folder, DEMO_NAME)
    rng = np.random.default_rng(0)
    project.dataset.add(rng.integers(0, 255, (16, 16), np.uint8), (rng.random((16, 16)) > 0.5).astype(np.uint8))
    (folder / DEMO_MARKER).write_text(json.dumps({"dataset_sha256": project.dataset.content_sha256()}))
    return project


def test_an_untouched_demo_folder_is_replaced(tmp_path):
    project = _demo_like(tmp_path / "demo")
    _replace_old_demo(project.root)
    assert not project.root.exists()


def test_a_users_project_named_like_the_demo_is_never_deleted(tmp_path):
    mine = TrainingProject.create(tmp_path / "mine", DEMO_NAME)
    (mine.root / "notes.txt").write_text("a year of work")
    with pytest.raises(ProjectError, match="is not a demo project"):
        _replace_old_demo(mine.root)
    assert (mine.root / "notes.txt").read_text() == "a year of work"


def test_a_demo_the_user_added_pairs_or_files_to_is_kept(tmp_path):
    project = _demo_like(tmp_path / "demo")
    rng = np.random.default_rng(1)
    project.dataset.add(rng.integers(0, 255, (16, 16), np.uint8), (rng.random((16, 16)) > 0.5).astype(np.uint8))
    with pytest.raises(ProjectError, match="dataset was changed"):
        _replace_old_demo(project.root)
    other = _demo_like(tmp_path / "demo2")
    (other.root / "my_results.csv").write_text("keep")
    with pytest.raises(ProjectError, match="files the demo did not write"):
        _replace_old_demo(other.root)
    assert TrainingProject.is_project(project.root) and (other.root / "my_results.csv").exists()


def test_a_demo_holding_a_link_is_kept(tmp_path):
    project = _demo_like(tmp_path / "demo")
    target = tmp_path / "data"
    target.mkdir()
    (target / "precious.tif").write_bytes(b"x")
    (project.layout.images_dir / "data").symlink_to(target, target_is_directory=True)
    with pytest.raises(ProjectError, match="symbolic links"):
        _replace_old_demo(project.root)
    assert (target / "precious.tif").exists()


def test_empty_or_missing_folders_are_fine_and_files_are_refused(tmp_path):
    _replace_old_demo(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    _replace_old_demo(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ProjectError, match="not a demo project"):
        _replace_old_demo(tmp_path / "file.txt")


def test_the_demo_corrects_only_the_wrong_objects_keeping_the_predicted_ids():
    from napari_training_assistant.demo import correct_like_a_user

    truth = np.zeros((20, 20), np.uint16)
    truth[2:8, 2:8], truth[2:8, 8:14], truth[15:18, 15:18] = 1, 2, 3
    predicted = np.zeros((20, 20), np.uint32)
    predicted[2:8, 2:14] = 5  # two touching nuclei merged (IoU 0.5 with each: not a match)
    predicted[15:18, 15:18] = 9  # right
    predicted[0:2, 18:20] = 4  # spurious
    corrected = correct_like_a_user(predicted, truth)
    assert (corrected[15:18, 15:18] == 9).all() and (corrected[0:2, 18:20] == 0).all()
    assert len({int(corrected[5, 5]), int(corrected[5, 10])} - {0, 9}) == 2  # split into two new ids
