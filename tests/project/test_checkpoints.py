"""Checkpoint registry: numbering, registration, latest.pt, never overwriting (fake checkpoint bytes)."""

from __future__ import annotations

import threading

import pytest

from napari_training_assistant.project import CheckpointError, TrainingProject
from napari_training_assistant.project.checkpoints import checkpoint_name, file_sha256
from napari_training_assistant.project.errors import ProjectError


def _arch(project):
    return project.architecture.model_dump(mode="json")


def _new(project, payload: bytes, status: str = "completed", **fields):
    checkpoint_id, path = project.checkpoints.reserve()
    path.write_bytes(payload)
    record = project.checkpoints.register(checkpoint_id, architecture=_arch(project), status=status, **fields)
    return record, path


# ----------------------------------------------------------------------------- reserve


def test_reserve_numbers_checkpoints_in_order(project):
    reserved = [project.checkpoints.reserve() for _ in range(3)]
    assert [name for name, _ in reserved] == ["unet_run_001", "unet_run_002", "unet_run_003"]
    assert [path for _, path in reserved] == [
        project.layout.checkpoints_dir / f"unet_run_00{i}.pt" for i in (1, 2, 3)
    ]
    assert not any(path.exists() for _, path in reserved)  # reserving writes no checkpoint file
    assert project.checkpoints.registry.next_number == 4
    assert TrainingProject.open(project.root).checkpoints.reserve()[0] == "unet_run_004"


def test_checkpoint_name_pads_to_three_digits():
    assert checkpoint_name(7) == "unet_run_007"
    assert checkpoint_name(1234) == "unet_run_1234"


def test_reserve_skips_numbers_of_files_already_on_disk(project):
    (project.layout.checkpoints_dir / "unet_run_007.pt").write_bytes(b"left by a crashed run")
    (project.layout.checkpoints_dir / "unet_run_xyz.pt").write_bytes(b"ignored")
    assert project.checkpoints.reserve()[0] == "unet_run_008"
    assert project.checkpoints.reserve()[0] == "unet_run_009"
    assert (project.layout.checkpoints_dir / "unet_run_007.pt").read_bytes() == b"left by a crashed run"


def test_reserve_with_a_lost_registry_counter_does_not_reuse_files(project):
    first, _ = _new(project, b"one")
    project.update(
        project.layout.checkpoint_registry,
        type(project.checkpoints.registry),
        lambda r: setattr(r, "next_number", 1),
    )
    name, path = project.checkpoints.reserve()
    assert name == "unet_run_002"
    assert not path.exists()


def test_concurrent_reservation_never_collides(project):
    names: list[str] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker():
        handle = TrainingProject.open(project.root)  # its own handle, as another session would have
        try:
            for _ in range(10):
                name, _path = handle.checkpoints.reserve()
                with guard:
                    names.append(name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(names) == 30
    assert len(set(names)) == 30
    assert sorted(names) == [checkpoint_name(i) for i in range(1, 31)]


# ----------------------------------------------------------------------------- register


def test_register_records_the_checkpoint(project, add_pair):
    pair = add_pair(project)
    record, path = _new(
        project,
        b"weights-1",
        dataset_pair_ids=[pair.pair_id],
        image_count=1,
        patch_count=8,
        split={"train": [pair.pair_id]},
        metrics={"train_loss": 0.5},
        run_id="run_1",
        starting_weights={"choice": "scratch"},
    )
    assert record.checkpoint_id == "unet_run_001"
    assert record.path == "checkpoints/unet_run_001.pt"
    assert record.file_sha256 == file_sha256(path)
    assert record.status == "completed"
    assert record.architecture == _arch(project)
    assert record.manifest_sha256 is not None
    assert record.timestamp.tzinfo is not None
    assert (record.image_count, record.patch_count, record.metrics, record.run_id) == (
        1,
        8,
        {"train_loss": 0.5},
        "run_1",
    )
    assert project.checkpoints.get("unet_run_001") == record
    assert project.checkpoints.path_of("unet_run_001") == path


def test_register_refuses_an_unwritten_file(project):
    checkpoint_id, path = project.checkpoints.reserve()
    before = project.layout.checkpoint_registry.read_bytes()
    with pytest.raises(CheckpointError, match=f"cannot register {checkpoint_id}: .* was not written"):
        project.checkpoints.register(checkpoint_id, architecture=_arch(project))
    assert project.layout.checkpoint_registry.read_bytes() == before
    assert project.checkpoints.records == []


def test_register_refuses_a_duplicate_id(project):
    record, path = _new(project, b"first")
    registry_before = project.layout.checkpoint_registry.read_bytes()
    with pytest.raises(CheckpointError, match="already registered; checkpoints are never overwritten"):
        project.checkpoints.register(record.checkpoint_id, architecture=_arch(project))
    assert project.layout.checkpoint_registry.read_bytes() == registry_before
    assert path.read_bytes() == b"first"
    assert len(project.checkpoints.records) == 1


def test_completed_registration_updates_latest(project):
    assert project.checkpoints.latest_id is None
    assert not project.layout.latest_checkpoint.exists()
    first, first_path = _new(project, b"first weights")
    assert project.checkpoints.latest_id == first.checkpoint_id
    assert project.layout.latest_checkpoint.read_bytes() == first_path.read_bytes() == b"first weights"
    second, _ = _new(project, b"second weights")
    assert project.checkpoints.latest_id == second.checkpoint_id
    assert project.layout.latest_checkpoint.read_bytes() == b"second weights"
    assert file_sha256(project.layout.latest_checkpoint) == second.file_sha256
    assert list(project.layout.checkpoints_dir.glob(".*.tmp")) == []


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_cancelled_and_failed_runs_do_not_move_latest(project, status):
    good, _ = _new(project, b"good")
    bad, bad_path = _new(project, b"interrupted", status=status)
    assert bad.status == status
    assert project.checkpoints.latest_id == good.checkpoint_id
    assert project.layout.latest_checkpoint.read_bytes() == b"good"
    assert bad_path.read_bytes() == b"interrupted"  # the file is kept and registered
    assert [c.checkpoint_id for c in project.checkpoints.records] == [good.checkpoint_id, bad.checkpoint_id]


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_cancelled_first_run_creates_no_latest(project, status):
    _new(project, b"interrupted", status=status)
    assert project.checkpoints.latest_id is None
    assert not project.layout.latest_checkpoint.exists()
    with pytest.raises(CheckpointError, match="no completed checkpoint yet"):
        project.checkpoints.get("latest")


def test_checkpoint_files_are_never_overwritten(project):
    payloads = [f"weights {i}".encode() for i in range(4)]
    paths = [_new(project, payload)[1] for payload in payloads]
    assert len(set(paths)) == 4
    for path, payload in zip(paths, payloads, strict=True):
        assert path.read_bytes() == payload
    for record, payload in zip(project.checkpoints.records, payloads, strict=True):
        assert project.checkpoints.path_of(record.checkpoint_id).read_bytes() == payload


def test_register_marks_pairs_as_used(project, add_pair):
    pairs = [add_pair(project, seed=i) for i in range(3)]
    first, _ = _new(project, b"a", dataset_pair_ids=[pairs[0].pair_id, pairs[1].pair_id])
    second, _ = _new(project, b"b", dataset_pair_ids=[pairs[1].pair_id])
    used = {p.pair_id: p.used_by_checkpoints for p in project.dataset.pairs}
    assert used == {
        "pair_0001": [first.checkpoint_id],
        "pair_0002": [first.checkpoint_id, second.checkpoint_id],
        "pair_0003": [],
    }


def test_mark_used_is_idempotent_and_ignores_unknown_pairs(project, add_pair):
    pair = add_pair(project)
    project.dataset.mark_used([pair.pair_id, "pair_0404"], "unet_run_001")
    project.dataset.mark_used([pair.pair_id], "unet_run_001")
    assert project.dataset.get(pair.pair_id).used_by_checkpoints == ["unet_run_001"]


def test_get_latest(project):
    with pytest.raises(CheckpointError, match="no completed checkpoint yet"):
        project.checkpoints.get("latest")
    first, _ = _new(project, b"a")
    assert project.checkpoints.get("latest") == first
    second, _ = _new(project, b"b")
    assert project.checkpoints.get("latest").checkpoint_id == second.checkpoint_id
    assert (
        project.checkpoints.path_of("latest") == project.layout.checkpoints_dir / f"{second.checkpoint_id}.pt"
    )


def test_unknown_id_error_lists_known_ids(project):
    with pytest.raises(
        CheckpointError, match=r"no checkpoint 'unet_run_099' in this project \(latest ones: none\)"
    ):
        project.checkpoints.get("unet_run_099")
    for payload in (b"a", b"b"):
        _new(project, payload)
    with pytest.raises(CheckpointError) as info:
        project.checkpoints.get("unet_run_099")
    assert "unet_run_001, unet_run_002" in str(info.value)
    assert isinstance(info.value, ProjectError)


def test_latest_file_matches(project):
    assert project.checkpoints.latest_file_matches()  # no latest, no file
    project.layout.latest_checkpoint.write_bytes(b"stray")
    assert not project.checkpoints.latest_file_matches()  # a file but no registered latest
    project.layout.latest_checkpoint.unlink()
    _new(project, b"real weights")
    assert project.checkpoints.latest_file_matches()
    project.layout.latest_checkpoint.write_bytes(b"tampered")
    assert not project.checkpoints.latest_file_matches()
    project.layout.latest_checkpoint.unlink()
    assert not project.checkpoints.latest_file_matches()


def test_manifest_sha256_tracks_the_dataset(project, add_pair):
    empty = project.checkpoints.manifest_sha256()
    add_pair(project)
    assert project.checkpoints.manifest_sha256() != empty
    record, _ = _new(project, b"w")
    assert record.manifest_sha256 == project.dataset.content_sha256()  # stable: marking pairs used does not change it
    given, _ = _new(project, b"v", manifest_sha256="f" * 64)
    assert given.manifest_sha256 == "f" * 64


def test_registered_checkpoint_can_be_the_starting_point(project):
    record, _ = _new(project, b"w")
    choice = project.set_starting_weights(f"checkpoint:{record.checkpoint_id}")
    assert choice.describe() == f"checkpoint:{record.checkpoint_id}"
