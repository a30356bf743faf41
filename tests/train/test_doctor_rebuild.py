"""`nta doctor` when a registry and its `.bak` are both gone: rebuilt from the self-describing files on
disk (checkpoints carry their registration, imported weights and predictions a `.record.json`), and
lineage lost by an old manifest restored from the checkpoint registry (issue 10, findings 6 and 9)."""

from __future__ import annotations

import numpy as np
import torch

from napari_training_assistant.model.weights_import import import_weights
from napari_training_assistant.predict.project_prediction import predict_array
from napari_training_assistant.project.doctor import run_doctor
from napari_training_assistant.project.storage import backup_path
from napari_training_assistant.train import train_project


def _lose(path) -> None:
    path.unlink()
    backup_path(path).unlink()


def test_the_checkpoint_registry_is_rebuilt_from_the_checkpoint_files(make_project, fast_options):
    project = make_project()
    first = train_project(project, fast_options())
    second = train_project(project, fast_options(start="latest"))
    before = project.checkpoints.registry
    _lose(project.layout.checkpoint_registry)
    report = run_doctor(project.root)
    assert ("fixed", "checkpoints/checkpoints.json") in [(f.level, f.file) for f in report.findings]
    assert "rebuilt from the files on disk (2 record(s)" in report.findings[0].message
    after = project.checkpoints.registry
    assert after.latest == second.checkpoint_id and after.next_number == before.next_number
    for old, new in zip(before.checkpoints, after.checkpoints, strict=True):
        assert new.model_dump(exclude={"timestamp"}) == old.model_dump(exclude={"timestamp"})
    assert after.get(second.checkpoint_id).parent_id == first.checkpoint_id
    assert run_doctor(project.root).healthy_after


def test_the_imported_model_registry_is_rebuilt_and_a_replaced_file_is_noticed(make_project, fast_options, tmp_path):
    from napari_training_assistant.model import build_model

    project = make_project()
    torch.save(build_model(project.architecture.model_dump()).state_dict(), tmp_path / "pretrained.pt")
    record = import_weights(project, tmp_path / "pretrained.pt")
    _lose(project.layout.model_registry)
    run_doctor(project.root)
    assert project.imported_models.registry.models == [record]
    assert project.imported_models.registry.next_number == 2

    (project.root / record.path).write_bytes(b"replaced")
    report = run_doctor(project.root, repair=False)
    assert ("problem", record.path) in [(f.level, f.file) for f in report.findings]
    assert "replaced since import" in report.problems[0].message


def test_the_prediction_registry_is_rebuilt(make_project, fast_options):
    project = make_project()
    train_project(project, fast_options())
    image, _ = project.dataset.load("pair_0001")
    saved = predict_array(project, image, source="test image")
    _lose(project.layout.prediction_registry)
    run_doctor(project.root)
    assert project.predictions.registry.predictions == [saved]


def test_lineage_lost_by_an_older_manifest_is_restored_from_the_checkpoints(make_project, fast_options):
    project = make_project()
    old_manifest = project.layout.manifest.read_bytes()
    result = train_project(project, fast_options())
    project.layout.manifest.write_bytes(old_manifest)  # e.g. a copy from before the run, put back by hand
    assert project.dataset.get("pair_0001").used_by_checkpoints == []
    check = run_doctor(project.root, repair=False)
    assert not check.healthy_after and "lost the checkpoints that used them" in check.problems[0].message
    run_doctor(project.root)
    assert project.dataset.get("pair_0001").used_by_checkpoints == [result.checkpoint_id]
    assert np.all([result.checkpoint_id in p.used_by_checkpoints for p in project.dataset.pairs if p.split != "benchmark"])
