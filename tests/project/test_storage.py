"""Atomic validated project files: temp files, backups, error messages, schema versions, the lock."""

from __future__ import annotations

import json
import os
import threading

import pytest

from napari_training_assistant.project import (
    ProjectError,
    ProjectFileError,
    SchemaVersionError,
    TrainingProject,
)
from napari_training_assistant.project.schemas import ProjectConfig, Sam3Config
from napari_training_assistant.project.storage import (
    ProjectLock,
    atomic_copy,
    atomic_write_bytes,
    backup_path,
    read_model,
    write_model,
)


def _temp_files(folder):
    return [p.name for p in folder.rglob("*.tmp")]


# ----------------------------------------------------------------------------- atomic writes and backups


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_atomic_copy_leaves_no_temp_files(tmp_path):
    source = tmp_path / "a.bin"
    source.write_bytes(b"payload")
    atomic_copy(source, tmp_path / "out" / "b.bin")
    assert (tmp_path / "out" / "b.bin").read_bytes() == b"payload"
    assert _temp_files(tmp_path) == []


def test_write_model_leaves_no_temp_files(project):
    for threshold in (0.2, 0.3, 0.4):
        project.update_sam3(lambda s, t=threshold: setattr(s, "threshold", t))
    assert _temp_files(project.root) == []
    assert project.sam3.threshold == 0.4


def test_backup_mirrors_the_latest_write_from_the_first_one_on(tmp_path):
    path = tmp_path / "sam3_config.json"
    write_model(path, Sam3Config(threshold=0.1))
    assert backup_path(path).name == "sam3_config.json.bak"
    assert backup_path(path).read_bytes() == path.read_bytes()  # a file written once has a backup too
    write_model(path, Sam3Config(threshold=0.2))
    assert read_model(backup_path(path), Sam3Config).threshold == 0.2
    assert read_model(path, Sam3Config).threshold == 0.2


def test_a_file_broken_by_hand_leaves_the_latest_good_write_in_the_backup(tmp_path):
    path = tmp_path / "sam3_config.json"
    write_model(path, Sam3Config(threshold=0.1))
    write_model(path, Sam3Config(threshold=0.2))
    path.write_text("{ broken")
    assert read_model(backup_path(path), Sam3Config).threshold == 0.2  # not one write behind
    write_model(path, Sam3Config(threshold=0.3))
    assert read_model(backup_path(path), Sam3Config).threshold == 0.3
    assert read_model(path, Sam3Config).threshold == 0.3


def test_project_update_keeps_a_backup_of_the_latest_write(project):
    project.update_config(lambda c: setattr(c, "notes", "first"))
    project.update_config(lambda c: setattr(c, "notes", "second"))
    backup = read_model(backup_path(project.layout.project_config), ProjectConfig)
    assert backup.notes == "second"
    assert project.config.notes == "second"


def test_every_json_file_of_a_new_project_has_a_backup(project):
    for path in project.layout.json_files():
        assert backup_path(path).read_bytes() == path.read_bytes(), path.name


def test_files_are_pretty_json_with_trailing_newline(project):
    text = project.layout.sam3_config.read_text()
    assert text.endswith("}\n")
    assert json.loads(text)["schema_version"] == 1
    assert "\n  " in text


# ----------------------------------------------------------------------------- error messages


def test_broken_json_names_file_line_column_and_doctor(project):
    path = project.layout.project_config
    path.write_text('{\n  "project_name": "x",\n  "notes": oops\n}\n')
    with pytest.raises(ProjectFileError) as info:
        _ = project.config
    message = str(info.value)
    assert "project_config.json" in message
    assert "line 3" in message
    assert "column 12" in message
    assert "nta doctor" in message
    assert str(project.root) in message


def test_broken_json_hint_mentions_the_backup_when_there_is_one(project):
    project.update_sam3(lambda s: setattr(s, "threshold", 0.3))
    project.layout.sam3_config.write_text("[1, 2")
    with pytest.raises(ProjectFileError, match=r"sam3/sam3_config\.json.*nta doctor.*sam3_config\.json\.bak"):
        _ = project.sam3


def test_non_object_json_is_refused(project):
    project.layout.sam3_config.write_text("[1, 2, 3]\n")
    with pytest.raises(ProjectFileError, match="must hold a JSON object, found list"):
        _ = project.sam3


def test_missing_file_is_reported(project):
    project.layout.sam3_config.unlink()
    with pytest.raises(ProjectFileError, match=r"sam3/sam3_config\.json is missing.*nta doctor"):
        _ = project.sam3


def test_unreadable_bytes_are_reported(project):
    project.layout.sam3_config.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProjectFileError, match=r"cannot be read.*nta doctor"):
        _ = project.sam3


def test_validation_error_names_field_path_and_value(project):
    data = json.loads(project.layout.project_config.read_text())
    data["training"]["epochs"] = -3
    project.layout.project_config.write_text(json.dumps(data))
    with pytest.raises(ProjectFileError) as info:
        _ = project.config
    message = str(info.value)
    assert "project_config.json" in message
    assert "'training.epochs'" in message
    assert "found -3" in message
    assert "nta doctor" in message


def test_validation_error_for_a_wrong_type(project):
    data = json.loads(project.layout.project_config.read_text())
    data["training"]["learning_rate"] = "fast"
    project.layout.project_config.write_text(json.dumps(data))
    with pytest.raises(ProjectFileError, match=r"field 'training\.learning_rate'.*found 'fast'"):
        _ = project.config


def test_validation_error_counts_further_problems(project):
    data = json.loads(project.layout.sam3_config.read_text())
    data["threshold"] = 5
    data["prompt_mode"] = "telepathy"
    project.layout.sam3_config.write_text(json.dumps(data))
    with pytest.raises(ProjectFileError, match=r"and 1 more problem"):
        _ = project.sam3


def test_unknown_keys_are_refused(project):
    data = json.loads(project.layout.sam3_config.read_text())
    data["surprise"] = 1
    project.layout.sam3_config.write_text(json.dumps(data))
    with pytest.raises(ProjectFileError, match="surprise"):
        _ = project.sam3


def test_manifest_validation_error_names_the_nested_path(project, add_pair):
    add_pair(project)
    data = json.loads(project.layout.manifest.read_text())
    data["pairs"][0]["split"] = "holdout"
    project.layout.manifest.write_text(json.dumps(data))
    with pytest.raises(
        ProjectFileError, match=r"dataset/manifest\.json: field 'pairs\.0\.split'.*found 'holdout'"
    ):
        _ = project.manifest


# ----------------------------------------------------------------------------- schema versions


def test_schema_version_from_the_future_is_refused(project):
    data = json.loads(project.layout.project_config.read_text())
    data["schema_version"] = 99
    project.layout.project_config.write_text(json.dumps(data))
    with pytest.raises(SchemaVersionError, match=r"schema_version 99.*upgrade napari-training-assistant"):
        TrainingProject.open(project.root)


def test_future_version_of_another_file_is_refused_on_access(project):
    data = json.loads(project.layout.manifest.read_text())
    data["schema_version"] = 2
    project.layout.manifest.write_text(json.dumps(data))
    opened = TrainingProject.open(project.root)
    with pytest.raises(SchemaVersionError, match="upgrade"):
        _ = opened.manifest


@pytest.mark.parametrize("bad", [-1, "1", 1.5])
def test_schema_version_must_be_a_whole_number(project, bad):
    data = json.loads(project.layout.sam3_config.read_text())
    data["schema_version"] = bad
    project.layout.sam3_config.write_text(json.dumps(data))
    with pytest.raises(ProjectFileError, match="schema_version"):
        _ = project.sam3


def test_version_0_project_config_is_migrated(project):
    old = {
        "name": "legacy cells",
        "image_layer": "raw image",
        "mask_layer": "ground truth",
        "created_at": "2024-05-01T10:00:00+00:00",
        "class_names": ["background", "cell"],
        "some_old_ui_flag": True,
    }
    project.layout.project_config.write_text(json.dumps(old))
    opened = TrainingProject.open(project.root)
    config = opened.config
    assert config.project_name == "legacy cells"
    assert config.schema_version == ProjectConfig.SCHEMA_VERSION
    assert config.ui.selected_layers == {"image": "raw image", "mask": "ground truth"}
    assert config.class_names == ["background", "cell"]
    assert config.created_at.year == 2024
    # the next write stores the migrated form and keeps the old file as <file>.v0.orig
    opened.update_config(lambda c: setattr(c, "notes", "migrated"))
    on_disk = json.loads(opened.layout.project_config.read_text())
    assert on_disk["schema_version"] == ProjectConfig.SCHEMA_VERSION
    assert on_disk["project_name"] == "legacy cells"
    assert "name" not in on_disk
    original = opened.layout.project_config.with_name("project_config.json.v0.orig")
    assert json.loads(original.read_text())["name"] == "legacy cells"
    opened.update_config(lambda c: setattr(c, "notes", "again"))  # kept once, never overwritten
    assert json.loads(original.read_text())["name"] == "legacy cells"
    assert TrainingProject.open(project.root).config.ui.selected_layers["image"] == "raw image"


def test_version_1_project_config_moves_the_train_tab_settings_out_of_the_selected_layers(project):
    data = json.loads(project.layout.project_config.read_text())
    data["schema_version"] = 1
    data["ui"] = {"selected_layers": {"dataset.image": "raw", "train.epochs": "7", "train.points": "synapses"}, "active_tab": "Train"}
    project.layout.project_config.write_text(json.dumps(data))
    opened = TrainingProject.open(project.root)
    ui = opened.config.ui
    assert ui.selected_layers == {"dataset.image": "raw"}
    assert ui.train_tab == {"train.epochs": "7", "train.points": "synapses"} and ui.active_tab == "Train"
    opened.update_config(lambda c: setattr(c, "notes", "migrated"))
    assert json.loads(opened.layout.project_config.read_text())["ui"]["train_tab"]["train.epochs"] == "7"
    original = opened.layout.project_config.with_name("project_config.json.v1.orig")
    assert json.loads(original.read_text())["ui"]["selected_layers"]["train.epochs"] == "7"


def test_version_0_project_config_without_a_date_gets_one(project):
    project.layout.project_config.write_text(json.dumps({"name": "bare"}))
    config = TrainingProject.open(project.root).config
    assert config.project_name == "bare"
    assert config.created_at.tzinfo is not None


def test_version_0_sam3_and_architecture_drop_old_keys(project):
    project.layout.sam3_config.write_text(
        json.dumps({"prompt_mode": "2d_points", "last_window_size": [3, 4]})
    )
    project.layout.architecture_config.write_text(json.dumps({"depth": 3, "gui_colour": "red"}))
    assert project.sam3.prompt_mode == "2d_points"
    assert project.architecture.depth == 3


# ----------------------------------------------------------------------------- crashes during a write


def test_crash_during_replace_keeps_the_old_file_and_no_temp(project, monkeypatch):
    path = project.layout.sam3_config
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk pulled out"):
        project.update_sam3(lambda s: setattr(s, "threshold", 0.9))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _temp_files(project.root) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["sam3_config.json", "sam3_config.json.bak"]
    assert project.sam3.threshold == 0.5


def test_crash_when_replacing_the_target_after_the_backup(project, monkeypatch):
    path = project.layout.sam3_config
    before = path.read_bytes()
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(path):
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="power cut"):
        project.update_sam3(lambda s: setattr(s, "threshold", 0.9))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert backup_path(path).read_bytes() == before
    assert _temp_files(project.root) == []


def test_crash_during_data_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def broken_fsync(fd):
        raise OSError("io error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="io error"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_failed_manifest_write_leaves_the_dataset_unchanged(project, add_pair, monkeypatch):
    add_pair(project, seed=1)
    before = project.layout.manifest.read_bytes()
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(project.layout.manifest):
            raise OSError("crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        add_pair(project, seed=2)
    monkeypatch.undo()
    assert project.layout.manifest.read_bytes() == before
    assert _temp_files(project.root) == []
    assert [p.pair_id for p in project.dataset.pairs] == ["pair_0001"]


# ----------------------------------------------------------------------------- the lock


def test_project_lock_is_re_entrant_in_one_thread(tmp_path):
    lock = ProjectLock(tmp_path / ".nta.lock", timeout=1)
    with lock(), lock(), lock():
        pass
    with lock():
        pass


def test_project_operations_nest_inside_the_lock(project, add_pair):
    with project.locked():
        project.update_config(lambda c: setattr(c, "notes", "inside"))
        add_pair(project)
        with project.locked():
            project.set_starting_weights("latest")
    assert project.config.notes == "inside"
    assert len(project.dataset) == 1


def test_two_handles_in_one_thread_nest(project):
    other = TrainingProject(project.root)
    with project.locked(), other.locked():
        other.update_config(lambda c: setattr(c, "notes", "nested"))
    assert project.config.notes == "nested"


def test_project_lock_excludes_another_thread(tmp_path):
    lock = ProjectLock(tmp_path / ".nta.lock", timeout=1)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder():
        with lock():
            order.append("holder in")
            inside.set()
            release.wait(5)
            order.append("holder out")

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(5)
    waiter_done = threading.Event()

    def waiter():
        with lock():
            order.append("waiter in")
        waiter_done.set()

    second = threading.Thread(target=waiter)
    second.start()
    assert not waiter_done.wait(0.2)
    release.set()
    thread.join(5)
    second.join(5)
    assert order == ["holder in", "holder out", "waiter in"]


def test_lock_timeout_gives_a_clear_error(tmp_path):
    import filelock

    path = tmp_path / ".nta.lock"
    held = threading.Event()
    release = threading.Event()

    def holder():
        # another lock object on the same file, as another process would hold it
        other = filelock.FileLock(str(path) + "", timeout=1, is_singleton=False)
        with other:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)
    try:
        with (
            pytest.raises(ProjectError, match="another process has held the project lock"),
            ProjectLock(path, timeout=0.1)(),
        ):
            pass
    finally:
        release.set()
        thread.join(5)


# ----------------------------------------------------------------------------- permissions


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_project_files_follow_the_umask_like_the_dataset_tiffs(tmp_path, add_pair):
    old = os.umask(0o027)
    try:
        project = TrainingProject.create(tmp_path / "shared")
        add_pair(project)
        add_pair(project, seed=1)  # second manifest write: makes manifest.json.bak
        checkpoint_id, path = project.checkpoints.reserve()
        path.write_bytes(b"weights")
        project.checkpoints.register(checkpoint_id, architecture=project.architecture.model_dump(mode="json"))
        project.history.append_benchmark({"checkpoint_id": checkpoint_id, "dice": 0.5})
    finally:
        os.umask(old)
    layout = project.layout
    files = [
        *layout.json_files(),
        backup_path(layout.manifest),
        layout.benchmark_history,
        layout.training_log,
        layout.latest_checkpoint,
        layout.images_dir / "pair_0001.tif",
    ]
    modes = {project.layout.relative(f): oct(f.stat().st_mode & 0o777) for f in files if f.exists()}
    assert set(modes.values()) == {oct(0o640)}, modes
