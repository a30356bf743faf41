"""Runs that do not finish: cancelled, failed, killed; and `resume` continuing them."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
import torch

from napari_training_assistant.cli.main import main
from napari_training_assistant.model import load_model
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.doctor import run_doctor
from napari_training_assistant.project.errors import ProjectError
from napari_training_assistant.project.schemas import CheckpointRegistry
from napari_training_assistant.project.status import project_status
from napari_training_assistant.train import CancelToken, EventKind, TrainingFailed, train_project
from napari_training_assistant.train.module import SegmentationModule


def _cancel_after_step(token: CancelToken, step: int, events: list):
    def listen(event) -> None:
        events.append(event)
        if event.kind == EventKind.STEP and event.step == step:
            token.cancel("stopped by the test")

    return listen


def _epochs_in_metrics(run_dir: Path) -> set[int]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return {int(float(row["epoch"])) for row in csv.DictReader(handle)}


def test_cancel_keeps_latest_then_resume_completes_the_same_run(make_project, fast_options):
    project = make_project()
    first = train_project(project, fast_options())
    latest_bytes = project.layout.latest_checkpoint.read_bytes()
    token, events = CancelToken(), []
    options = fast_options(epochs=3, samples_per_epoch=8)  # 4 steps per epoch

    cancelled = train_project(project, options, listener=_cancel_after_step(token, 2, events), cancel=token)

    assert cancelled.status == "cancelled" and cancelled.run_id == "run_002"
    assert cancelled.metrics["steps"] == 2  # stopped right after the step whose event cancelled
    assert [e.step for e in events if e.kind == EventKind.STEP] == [1, 2]
    assert events[-1].kind == EventKind.FINISHED and events[-1].message.startswith("cancelled")
    record = project.checkpoints.get(cancelled.checkpoint_id)
    assert (
        record.status == "cancelled" and record.run_id == "run_002" and record.checkpoint_id == "unet_run_002"
    )
    assert project.checkpoints.latest_id == first.checkpoint_id
    assert project.layout.latest_checkpoint.read_bytes() == latest_bytes
    run = project.history.runs[-1]
    assert (run.run_id, run.status, run.reason, run.checkpoint_id) == (
        "run_002",
        "cancelled",
        "stopped by the test",
        "unet_run_002",
    )
    assert cancelled.benchmark is None  # only completed checkpoints are benchmarked
    run_dir = project.layout.run_dir("run_002")
    assert (run_dir / "last.ckpt").is_file() and (run_dir / "curves.png").is_file()

    resumed = train_project(project, fast_options(epochs=3, samples_per_epoch=8, resume=True))

    assert resumed.run_id == "run_002" and resumed.status == "completed"
    assert resumed.checkpoint_id == "unet_run_003" and resumed.metrics["epochs_completed"] == 3
    assert resumed.metrics["steps"] == 2 + 2 * 4  # continued from the saved state, not from step 0
    assert [(c.checkpoint_id, c.status) for c in project.checkpoints.records] == [
        ("unet_run_001", "completed"),
        ("unet_run_002", "cancelled"),
        ("unet_run_003", "completed"),
    ]
    assert project.checkpoints.latest_id == "unet_run_003"
    assert project.checkpoints.latest_file_matches()
    assert [(r.run_id, r.status) for r in project.history.runs] == [
        ("run_001", "completed"),
        ("run_002", "completed"),
    ]
    assert project.history.runs[-1].checkpoint_id == "unet_run_003"
    assert not (run_dir / "last.ckpt").exists()
    assert _epochs_in_metrics(run_dir) == {0, 1, 2}  # the curves cover the part before the cancel too


def test_a_cancelled_first_run_leaves_no_latest(make_project, fast_options):
    project = make_project()
    token = CancelToken()
    result = train_project(
        project, fast_options(epochs=2), listener=_cancel_after_step(token, 1, []), cancel=token
    )
    assert result.status == "cancelled" and result.metrics["steps"] == 1
    assert project.checkpoints.get(result.checkpoint_id).status == "cancelled"
    assert project.checkpoints.latest_id is None and not project.layout.latest_checkpoint.exists()
    assert project.history.benchmarks() == []


def test_cancel_before_the_first_step_registers_nothing(make_project, fast_options):
    project = make_project()
    token = CancelToken()

    def listen(event) -> None:
        if event.kind == EventKind.STARTED:
            token.cancel("changed my mind")

    result = train_project(project, fast_options(), listener=listen, cancel=token)
    assert result.status == "cancelled" and result.checkpoint_id is None
    assert project.checkpoints.records == []
    assert project.history.runs[-1].status == "cancelled"


def test_resume_with_nothing_to_resume_is_an_error(make_project, fast_options):
    project = make_project()
    with pytest.raises(ProjectError, match="nothing to resume"):
        train_project(project, fast_options(resume=True))
    train_project(project, fast_options())  # a completed run is not resumable either
    with pytest.raises(ProjectError, match="nothing to resume"):
        train_project(project, fast_options(resume=True))
    assert [r.status for r in project.history.runs] == ["completed"]


def test_a_failing_run_is_recorded_failed_without_a_checkpoint(make_project, fast_options, monkeypatch):
    project = make_project()
    train_project(project, fast_options())
    latest_bytes = project.layout.latest_checkpoint.read_bytes()
    registry_before = project.checkpoints.registry.model_dump(mode="json")

    def broken(self, batch, batch_idx):
        raise RuntimeError("the step broke")

    monkeypatch.setattr(SegmentationModule, "training_step", broken)
    events = []
    with pytest.raises(TrainingFailed, match="training run run_002 failed: RuntimeError: the step broke"):
        train_project(project, fast_options(), listener=events.append)

    run = project.history.runs[-1]
    assert run.run_id == "run_002" and run.status == "failed"
    assert (
        "RuntimeError: the step broke" in run.reason
        and run.checkpoint_id is None
        and run.ended_at is not None
    )
    assert project.checkpoints.registry.model_dump(mode="json") == registry_before
    assert project.layout.latest_checkpoint.read_bytes() == latest_bytes
    assert not list(project.layout.checkpoints_dir.glob("unet_run_002*"))
    assert "run_002 failed" in project.layout.training_log.read_text()
    assert events[-1].kind == EventKind.FINISHED and events[-1].message.startswith("failed")


# --------------------------------------------------------------------------- a killed process
def _loadable(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


@pytest.mark.slow
def test_a_killed_run_leaves_the_project_consistent_and_can_be_resumed(make_project, fast_options, capsys, kill_cli_training):
    project = make_project()
    train_project(project, fast_options())
    latest_bytes = project.layout.latest_checkpoint.read_bytes()
    args = ["--device", "cpu", "--epochs", "8", "--samples-per-epoch", "64", "--batch-size", "2"]
    last = project.layout.run_dir("run_002") / "last.ckpt"
    assert kill_cli_training(project.root, [*args, "--json"], lambda: last.is_file() and _loadable(last), within_s=120) == -signal.SIGKILL

    # nothing half-registered; latest.pt untouched and loadable; every registry readable
    registry = CheckpointRegistry.model_validate(json.loads(project.layout.checkpoint_registry.read_text()))
    assert all(c.status == "completed" for c in registry.checkpoints)
    assert [c.checkpoint_id for c in registry.checkpoints] == [
        "unet_run_001"
    ] and registry.latest == "unet_run_001"
    assert project.layout.latest_checkpoint.read_bytes() == latest_bytes
    assert load_model(project.layout.latest_checkpoint) is not None
    # the run record still says running, but status and doctor see that its process is gone
    report = run_doctor(project.root, repair=False)
    assert [(f.level, f.file) for f in report.findings if f.level != "info"] == [("problem", "history/training_runs.json")]
    assert "run_002 is recorded as running but its process is gone" in report.problems[0].message
    assert main(["doctor", str(project.root), "--check"]) == 1
    assert [(r.run_id, r.status) for r in TrainingProject.open(project.root).history.runs] == [
        ("run_001", "completed"),
        ("run_002", "running"),
    ]
    status = project_status(TrainingProject.open(project.root))
    assert status["interrupted_runs"] == ["run_002"] and status["running_runs"] == []
    capsys.readouterr()

    assert main(["train", str(project.root), "--resume", *args, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["run_id"] == "run_002" and payload["status"] == "completed"
    assert payload["checkpoint_id"] == "unet_run_002" and payload["metrics"]["epochs_completed"] == 8
    project = TrainingProject.open(project.root)
    assert project.checkpoints.latest_id == "unet_run_002" and project.checkpoints.latest_file_matches()
    assert [(r.run_id, r.status) for r in project.history.runs] == [
        ("run_001", "completed"),
        ("run_002", "completed"),
    ]
    assert not last.exists()
