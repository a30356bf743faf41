"""Following and stopping a run from another process (issue 17: a run that outlives its viewer): the
progress file a run keeps, the stop request any process may write, `nta stop` and `nta status`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from napari_training_assistant.cli.main import main
from napari_training_assistant.progress import EventKind, ProgressEvent
from napari_training_assistant.project import ProjectError, run_control
from napari_training_assistant.project.run_control import (
    ProgressRecorder,
    read_progress,
    request_stop,
    requested_stop,
    stop_run,
)
from napari_training_assistant.project.status import project_status
from napari_training_assistant.train import EventKind as TrainEventKind
from napari_training_assistant.train import train_project


# ------------------------------------------------------------------------------------- the files
def test_the_progress_file_holds_the_start_every_epoch_and_the_latest_step(tmp_path):
    path, seen = tmp_path / "run" / "progress.json", []
    record = ProgressRecorder(path, seen.append, every_s=3600)
    record(ProgressEvent(EventKind.STARTED, epochs=3, message="plan"))
    record(ProgressEvent(EventKind.STEP, epoch=1, epochs=3, step=1, steps=6, loss=0.9, eta_s=10.0))
    record(ProgressEvent(EventKind.STEP, epoch=1, epochs=3, step=2, steps=6, loss=0.8))  # within every_s: not written
    assert read_progress(path).last.step == 1
    record(ProgressEvent(EventKind.EPOCH, epoch=1, epochs=3, metrics={"val_dice": 0.5}))
    record(ProgressEvent(EventKind.MESSAGE, message="a log line"))
    assert len(seen) == 5  # every event reaches the listener
    progress = read_progress(path)
    assert progress.started.message == "plan" and progress.started.kind == EventKind.STARTED
    assert [e.metrics for e in progress.epochs] == [{"val_dice": 0.5}] and progress.last.kind == EventKind.EPOCH
    resumed = ProgressRecorder(path, seen.append, keep_earlier=True)  # a resumed run keeps its epochs
    resumed(ProgressEvent(EventKind.EPOCH, epoch=2, epochs=3, metrics={"val_dice": 0.6}))
    assert [e.epoch for e in read_progress(path).epochs] == [1, 2]


@pytest.mark.parametrize("content", ["{not json", '{"started": 5}', '{"started": null, "epochs": [{"kind": "bogus"}], "last": null}', "x" * (run_control.MAX_FILE_BYTES + 1)])
def test_a_damaged_or_hostile_progress_file_reads_as_absent(tmp_path, content):
    path = tmp_path / "progress.json"
    path.write_text(content)
    assert read_progress(path) is None


def test_a_progress_file_linked_elsewhere_is_not_read(tmp_path):
    outside = tmp_path / "outside.json"
    ProgressRecorder(outside, lambda e: None)(ProgressEvent(EventKind.STARTED))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "progress.json").symlink_to(outside)
    assert read_progress(outside) is not None and read_progress(tmp_path / "run" / "progress.json") is None


def test_a_stop_request_carries_a_short_one_line_reason(make_project):
    project = make_project()
    request_stop(project, "run_004", "stop\nplease " + "x" * 500)
    reason = requested_stop(project.layout.run_dir("run_004"))
    assert reason.startswith("stop please x") and len(reason) == run_control.MAX_REASON_CHARS
    (project.layout.run_dir("run_004") / run_control.STOP_FILE).write_text("[1, 2]")
    assert requested_stop(project.layout.run_dir("run_004")) == "stop requested"
    assert requested_stop(project.layout.run_dir("run_005")) is None


def test_nothing_to_stop_is_one_line(make_project, fast_options):
    project = make_project()
    with pytest.raises(ProjectError, match="nothing to stop: no training run of .* is running$"):
        stop_run(project)
    train_project(project, fast_options())
    with pytest.raises(ProjectError, match=r"\(run_001 is completed\)"):
        stop_run(project)
    with pytest.raises(ProjectError, match="no run run_009 in"):
        stop_run(project, "run_009")


# ------------------------------------------------------------------------------------- a real run
def test_a_stop_request_from_another_process_cancels_the_run_and_saves_it(make_project, fast_options, monkeypatch):
    monkeypatch.setattr(run_control, "STOP_CHECK_S", 0.05)
    project = make_project()
    steps = []

    def listen(event) -> None:
        if event.kind == TrainEventKind.STEP:
            steps.append(event.step)
            if len(steps) == 2:
                assert project_status(project)["runs"][-1]["progress"]["step"] >= 1  # the file says where it is
                stopped = stop_run(project)  # what `nta stop` does, from this process for the test
                assert stopped.status == "running"
            time.sleep(0.1)

    result = train_project(project, fast_options(epochs=500, samples_per_epoch=4, batch_size=2), listener=listen)
    assert result.status == "cancelled" and result.checkpoint_id is not None
    assert project.history.runs[-1].reason == "stopped with nta stop"
    assert len(steps) < 100  # seen within STOP_CHECK_S, not at the run's end
    progress = read_progress(project.layout.run_dir(result.run_id) / "progress.json")
    assert progress.started is not None and progress.last.kind == TrainEventKind.FINISHED


def test_an_old_stop_request_does_not_stop_a_new_run(make_project, fast_options, monkeypatch):
    monkeypatch.setattr(run_control, "STOP_CHECK_S", 0.05)
    project = make_project()
    request_stop(project, "run_001", "left over")  # e.g. a copied folder, or a resumed run's earlier request

    def slow(event) -> None:
        if event.kind == TrainEventKind.STEP:
            time.sleep(0.2)

    result = train_project(project, fast_options(epochs=2), listener=slow)
    assert result.run_id == "run_001" and result.status == "completed"


# ------------------------------------------------------------------------------------------ CLI
def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "napari_training_assistant.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_nta_stop_ends_a_run_started_in_a_terminal(make_project, capsys):
    project = make_project()
    training = _cli("train", str(project.root), "--epochs", "2000", "--samples-per-epoch", "4", "--batch-size", "2", "--device", "cpu", "--no-benchmark")
    try:
        deadline = time.monotonic() + 180
        while not (project_status(project)["running_runs"] and (project_status(project)["runs"][-1]["progress"] or {}).get("step")):
            assert training.poll() is None, training.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the run did not start within 180 s"
            time.sleep(0.2)
        assert main(["status", str(project.root)]) == 0
        line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("running"))
        assert re.search(r"run_001 \(pid \d+ on .*\): epoch \d+/2000, step \d+/4000, about .* left.*`nta stop .*` stops it", line), line
        assert main(["stop", str(project.root), "--wait", "120", "--json"]) == 0
        outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert outcome["run_id"] == "run_001" and outcome["status"] == "cancelled" and outcome["checkpoint_id"]
        assert training.wait(timeout=60) == 1  # `nta train` says a cancelled run with exit code 1
    finally:
        if training.poll() is None:
            training.kill()
        training.wait()
    assert project.history.runs[-1].status == "cancelled" and project.history.runs[-1].reason == "stopped with nta stop"
    assert main(["stop", str(project.root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing to stop" in err and "(run_001 is cancelled)" in err


def test_nta_stop_refuses_a_negative_or_nan_wait(make_project, capsys):
    project = make_project()
    for value in ("-1", "nan", "inf"):
        assert main(["stop", str(project.root), "--wait", value]) == 2
        assert "--wait must be 0 or more seconds" in capsys.readouterr().err


def test_the_stop_check_does_not_slow_a_run_without_requests(make_project, fast_options):
    """No request: the watch thread only stats a missing file once a second (and the pid stays ours)."""
    project = make_project()
    result = train_project(project, fast_options())
    assert result.status == "completed" and project.history.runs[-1].heartbeat.pid == os.getpid()
