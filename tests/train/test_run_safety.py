"""A run's safety (issue 10): the resume state never runs code, runs whose process is gone are seen as
interrupted, registration happens once per run, pairs a run holds cannot change under it, the checkpoint
names the data the run saw, and non-finite losses fail the run instead of becoming `latest`."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from napari_training_assistant.project import DatasetError, ProjectError, TrainingProject
from napari_training_assistant.project.clock import now
from napari_training_assistant.project.doctor import run_doctor
from napari_training_assistant.project.schemas import RunHeartbeat, TrainingRun
from napari_training_assistant.project.status import project_status
from napari_training_assistant.train import CancelToken, EventKind, TrainingFailed, train_project
from napari_training_assistant.train.module import SegmentationModule


class _Exploit:
    """Pickled, it asks the loader to run a shell command (what a hostile last.ckpt would hold)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _cancelled_run(project, fast_options, epochs: int = 3):
    """A run cancelled after its first step: its last.ckpt is resumable."""
    token = CancelToken()

    def listen(event) -> None:
        if event.kind == EventKind.STEP:
            token.cancel("test")

    result = train_project(project, fast_options(epochs=epochs), listener=listen, cancel=token)
    assert result.status == "cancelled"
    return project.layout.run_dir(result.run_id) / "last.ckpt"


# ----------------------------------------------------------------------------- the resume state


@pytest.mark.parametrize("where", ["whole file", "inside a real state"])
def test_a_resume_state_holding_code_is_refused_and_never_run(make_project, fast_options, tmp_path, where):
    project = make_project()
    last = _cancelled_run(project, fast_options)
    marker = tmp_path / "pwned"
    if where == "whole file":
        last.write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    else:
        state = torch.load(last, weights_only=True)
        state["callbacks"]["evil"] = _Exploit(marker)
        torch.save(state, last)
    with pytest.raises(ProjectError, match="cannot be read as plain tensors") as info:
        train_project(project, fast_options(epochs=3, resume=True))
    assert "\n" not in str(info.value)
    assert not marker.exists()
    assert [r.status for r in project.history.runs] == ["cancelled"]


def test_resume_with_fewer_epochs_than_done_says_what_epochs_means(make_project, fast_options):
    project = make_project()
    token = CancelToken()

    def listen(event) -> None:
        if event.kind == EventKind.EPOCH and event.epoch == 3:
            token.cancel("test")

    train_project(project, fast_options(epochs=5), listener=listen, cancel=token)
    with pytest.raises(ProjectError) as info:
        train_project(project, fast_options(epochs=2, resume=True))
    message = str(info.value)
    assert "already trained 3 epoch(s)" in message and "--epochs is the run's total" in message
    assert "Trainer(" not in message and "\n" not in message


def test_resume_finishes_the_epochs_the_run_was_started_with(make_project, fast_options):
    project = make_project()
    _cancelled_run(project, fast_options, epochs=3)
    project.update_config(lambda c: setattr(c.training, "epochs", 7))  # changed meanwhile: not this run's plan
    options = fast_options(resume=True)
    options.epochs = None
    resumed = train_project(project, options)
    assert resumed.status == "completed" and resumed.metrics["epochs_completed"] == 3


# ----------------------------------------------------------------------------- heartbeats


def _running(run_id: str, pid: int, *, age_s: float = 0.0, held=()) -> TrainingRun:
    import socket
    from datetime import timedelta

    from napari_training_assistant.project.runs import _boot_id

    beat = RunHeartbeat(pid=pid, host=socket.gethostname(), boot_id=_boot_id(), updated_at=now() - timedelta(seconds=age_s))
    return TrainingRun(run_id=run_id, status="running", started_at=now(), heartbeat=beat, held_pairs=list(held))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_whose_process_is_gone_is_interrupted_for_status_and_doctor(make_project):
    project = make_project(splits=())
    project.history.record_run(_running("run_001", _dead_pid()))
    project.history.record_run(_running("run_002", os.getpid(), age_s=3600))  # alive pid, no beat for an hour
    project.history.record_run(_running("run_003", os.getpid()))
    status = project_status(project)
    assert status["interrupted_runs"] == ["run_001", "run_002"] and status["running_runs"] == ["run_003"]
    check = run_doctor(project.root, repair=False)
    assert not check.healthy_after and [r.status for r in project.history.runs] == ["running"] * 3
    report = run_doctor(project.root)
    assert report.healthy_after
    runs = {r.run_id: r for r in project.history.runs}
    assert runs["run_001"].status == runs["run_002"].status == "interrupted"
    assert "process stopped" in runs["run_001"].reason and runs["run_003"].status == "running"


def test_the_heartbeat_is_renewed_while_training(make_project, fast_options, monkeypatch):
    from napari_training_assistant.project import runs

    monkeypatch.setattr(runs, "HEARTBEAT_EVERY_S", 0.05)
    project = make_project()
    beats = []

    def listen(event) -> None:
        if event.kind == EventKind.STEP:
            time.sleep(0.2)
            record = project.history.runs[-1]
            beats.append(record.heartbeat.updated_at)
            assert record.heartbeat.pid == os.getpid() and project_status(project)["running_runs"] == [record.run_id]

    train_project(project, fast_options(samples_per_epoch=8), listener=listen)
    assert len(set(beats)) >= 2


def test_resuming_a_run_that_is_still_alive_is_refused(make_project, fast_options):
    project = make_project()
    last = _cancelled_run(project, fast_options)
    record = project.history.runs[-1]
    alive = _running(record.run_id, os.getpid()).model_copy(update={"settings": record.settings})
    project.history.record_run(alive)
    with pytest.raises(ProjectError, match="is still running"):
        train_project(project, fast_options(epochs=3, resume=True))
    assert last.exists()


# ----------------------------------------------------------------------------- registration once per run


def test_a_run_killed_after_registering_is_not_registered_again(make_project, fast_options, monkeypatch):
    from napari_training_assistant.train import benchmark

    project = make_project()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies between registration and the end of its record

    monkeypatch.setattr(benchmark, "benchmark_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        train_project(project, fast_options(epochs=1))
    monkeypatch.undo()
    assert [(c.checkpoint_id, c.run_id) for c in project.checkpoints.records] == [("unet_run_001", "run_001")]
    record = project.history.runs[-1]  # the process is gone (in the test, this process lives on)
    project.history.record_run(record.model_copy(update={"heartbeat": record.heartbeat.model_copy(update={"pid": _dead_pid()})}))
    with pytest.raises(ProjectError, match="run_001 had already finished as unet_run_001"):
        train_project(project, fast_options(epochs=1, resume=True))
    with pytest.raises(ProjectError, match="nothing to resume"):  # closed: asking again changes nothing
        train_project(project, fast_options(epochs=1, resume=True))
    assert [c.checkpoint_id for c in project.checkpoints.records] == ["unet_run_001"]
    assert [(r.run_id, r.status, r.checkpoint_id) for r in project.history.runs] == [("run_001", "completed", "unet_run_001")]


# ----------------------------------------------------------------------------- the data a run holds


def test_pairs_a_run_holds_cannot_be_removed_or_moved_and_the_checkpoint_names_what_it_saw(make_project, fast_options):
    import numpy as np

    project = make_project()  # pairs 1, 2, 5 train; 3 val; 4 benchmark
    before = project.dataset.content_sha256()
    refusals = []

    def listen(event) -> None:
        if event.kind == EventKind.STEP and event.step == 1:
            for change in (lambda: project.dataset.remove("pair_0001"), lambda: project.dataset.set_split("pair_0003", "benchmark")):
                with pytest.raises(DatasetError, match="run_001 is training on it now") as info:
                    change()
                refusals.append(str(info.value))
            project.dataset.set_split("pair_0004", "benchmark")  # not held: a no-op move is fine
            rng = np.random.default_rng(9)  # new data while training
            project.dataset.add(rng.integers(0, 255, (48, 48), np.uint8), (rng.random((48, 48)) > 0.5).astype(np.uint8), split="benchmark")

    result = train_project(project, fast_options(), listener=listen)
    assert len(refusals) == 2
    record = project.checkpoints.get(result.checkpoint_id)
    assert record.manifest_sha256 == before != project.dataset.content_sha256()
    assert project.dataset.get("pair_0001").used_by_checkpoints == [result.checkpoint_id]
    project.dataset.remove("pair_0001")  # the run has ended: allowed now


def test_the_benchmark_cache_follows_the_benchmark_set_contents(make_project, fast_options):
    from napari_training_assistant.train.benchmark import benchmark_checkpoint

    project = make_project()
    result = train_project(project, fast_options())
    first = benchmark_checkpoint(project, result.checkpoint_id)
    assert benchmark_checkpoint(project, result.checkpoint_id) == first  # cached: same set
    project.dataset.set_split("pair_0004", "val")
    project.dataset.set_split("pair_0005", "benchmark")  # same size, other pair
    second = benchmark_checkpoint(project, result.checkpoint_id)
    assert second["benchmark_sha256"] != first["benchmark_sha256"]
    assert len(project.history.benchmarks()) == 2  # the run's own row (then cached), and the new set's


# ----------------------------------------------------------------------------- non-finite training


def test_a_nan_loss_fails_the_run_and_registers_nothing(make_project, fast_options, monkeypatch):
    project = make_project()
    train_project(project, fast_options())
    latest = project.layout.latest_checkpoint.read_bytes()
    original = SegmentationModule.training_step

    def diverged(self, batch, batch_idx):
        out = original(self, batch, batch_idx)
        return {"loss": out["loss"] * float("nan")}

    monkeypatch.setattr(SegmentationModule, "training_step", diverged)
    with pytest.raises(TrainingFailed, match="NaN or inf"):
        train_project(project, fast_options())
    assert [c.checkpoint_id for c in project.checkpoints.records] == ["unet_run_001"]
    assert project.layout.latest_checkpoint.read_bytes() == latest
    assert project.history.runs[-1].status == "failed" and "NonFiniteLoss" in project.history.runs[-1].reason


def test_non_finite_weights_are_never_registered(make_project, fast_options, monkeypatch):
    from napari_training_assistant.train import finish

    project = make_project()
    real = finish._require_finite_weights

    def poisoned(project_, run, run_id, started):
        with torch.no_grad():
            next(run.module.model.parameters()).fill_(float("inf"))
        real(project_, run, run_id, started)

    monkeypatch.setattr(finish, "_require_finite_weights", poisoned)
    with pytest.raises(TrainingFailed, match="NonFiniteWeights"):
        train_project(project, fast_options())
    assert project.checkpoints.records == [] and not project.layout.latest_checkpoint.exists()
    assert project.history.runs[-1].status == "failed"


# ----------------------------------------------------------------------------- the timed resume state


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_from_the_timed_state(make_project, kill_cli_training):
    project = make_project()
    project.update_config(lambda c: setattr(c.training, "resume_every_s", 1.0))
    args = ["--device", "cpu", "--epochs", "1", "--samples-per-epoch", "400", "--batch-size", "2", "--no-benchmark"]
    last = project.layout.run_dir("run_001") / "last.ckpt"
    assert kill_cli_training(project.root, args, last.is_file, after_s=0.5) == -signal.SIGKILL
    state = torch.load(last, weights_only=True)
    assert state["epoch"] == 0 and 0 < state["global_step"] < 200  # saved inside the first (only) epoch
    project = TrainingProject.open(project.root)
    assert project_status(project)["interrupted_runs"] == ["run_001"]
    from napari_training_assistant.cli.main import main

    assert main(["train", str(project.root), "--resume", *args]) == 0
    run = project.history.runs[-1]
    assert (run.run_id, run.status) == ("run_001", "completed")
    assert project.checkpoints.get(run.checkpoint_id).metrics["steps"] == 200  # the epoch was continued


def test_nta_status_shows_running_and_interrupted_runs(make_project, capsys):
    from napari_training_assistant.cli.main import main

    project = make_project(splits=())
    project.history.record_run(_running("run_001", _dead_pid()))
    project.history.record_run(_running("run_002", os.getpid()))
    assert main(["status", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "interrupted  run_001" in out and "--resume" in out
    assert f"running      run_002 (pid {os.getpid()}" in out
