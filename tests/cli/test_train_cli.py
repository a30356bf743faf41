"""`nta train`, `nta predict`, `nta benchmark`, `nta status` after training, `nta demo`.

Most commands run in-process through `main(argv)` (an interpreter start-up costs seconds); DDP, which
re-launches the command per rank, and the demo run as real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_training_assistant.cli.main import main
from napari_training_assistant.data.synthetic_nuclei import make_nuclei
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.image_io import read_tiff, write_tiff

NTA = [sys.executable, "-m", "napari_training_assistant.cli"]
FAST = ["--epochs", "1", "--samples-per-epoch", "4", "--batch-size", "2", "--device", "cpu"]


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def user_error(capsys, *argv) -> str:
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # refused while parsing
        rc = exc.code
    assert rc == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"nta {argv[0]}: error: ") and "Traceback" not in captured.err
    return lines[0]


@pytest.fixture
def image_file(tmp_path) -> Path:
    return write_tiff(
        tmp_path / "unseen.tif", make_nuclei((48, 48), n_nuclei=4, radius_range=(4.0, 7.0), seed=77)[0]
    )


# --------------------------------------------------------------------------- nta train
def test_train_json_reports_checkpoint_metrics_and_benchmark(make_project, capsys):
    project = make_project()
    payload = run_json(capsys, "train", project.root, *FAST, "--json")
    assert {
        "checkpoint_id",
        "checkpoint_path",
        "metrics",
        "benchmark",
        "run_id",
        "status",
        "curves_path",
    } <= set(payload)
    assert payload["checkpoint_id"] == "unet_run_001" and payload["status"] == "completed"
    assert Path(payload["checkpoint_path"]).is_file() and Path(payload["curves_path"]).is_file()
    assert 0.0 <= payload["metrics"]["dice"] <= 1.0 and 0.0 <= payload["metrics"]["iou"] <= 1.0
    assert payload["benchmark"]["checkpoint_id"] == "unet_run_001" and payload["benchmark"]["n_images"] == 1

    payload = run_json(capsys, "train", project.root, *FAST, "--start", "latest", "--no-benchmark", "--json")
    assert payload["checkpoint_id"] == "unet_run_002" and payload["parent_id"] == "unet_run_001"
    assert payload["benchmark"] is None


def test_train_without_benchmark_pairs_reports_null_benchmark(make_project, capsys):
    project = make_project(splits=("train", "val"))
    payload = run_json(capsys, "train", project.root, *FAST, "--json")
    assert payload["benchmark"] is None and payload["metrics"]["dice"] is not None


def test_train_human_output(make_project, capsys):
    project = make_project(splits=("train", "val"))
    assert main(["train", str(project.root), *FAST]) == 0
    out = capsys.readouterr().out
    assert "run_001:" in out and "epoch 1/1" in out
    assert "completed: unet_run_001" in out and "val Dice" in out and "curves:" in out


def test_user_overrides_and_auto_decisions_reach_project_config_and_status(make_project, capsys):
    project = make_project()
    run_json(capsys, "train", project.root, "--epochs", "1", "--samples-per-epoch", "4", "--device", "cpu",
             "--patch-size", "32", "32", "--batch-size", "2", "--json")  # fmt: skip
    config = json.loads(project.layout.project_config.read_text())
    decisions = {d["setting"]: d for d in config["auto_configuration_decisions"]}
    assert decisions["patch_size"]["value"] == [32, 32] and decisions["patch_size"]["source"] == "user"
    assert decisions["batch_size"]["value"] == 2 and decisions["batch_size"]["source"] == "user"
    assert decisions["precision"]["source"] == "auto" and decisions["precision"]["reason"]
    # the project chose tiny_unet (depth 2): auto-configuration keeps a chosen architecture and says why
    assert decisions["depth"]["value"] == 2 and decisions["depth"]["source"] == "user"
    assert "chosen in architecture_config.json" in decisions["depth"]["reason"]
    status = run_json(capsys, "status", project.root, "--json")
    assert status["auto_configuration_decisions"] == config["auto_configuration_decisions"]
    assert status["latest_checkpoint"] == "unet_run_001" and status["state"] == "trained and benchmarked"
    assert main(["status", str(project.root)]) == 0
    assert "auto-config  patch_size = [32, 32] (user: set by the user)" in capsys.readouterr().out


def test_one_patch_size_value_is_used_for_every_axis(make_project, capsys):
    project = make_project(splits=("train", "val"))
    run_json(capsys, "train", project.root, *FAST, "--patch-size", "32", "--json")
    record = project.checkpoints.get("latest")
    assert record.settings["resolved"]["patch_size"] == [32, 32]


def test_train_user_errors_exit_2_with_one_line(make_project, capsys):
    project = make_project()
    line = user_error(capsys, "train", project.root, *FAST, "--resume")
    assert "nothing to resume" in line
    line = user_error(capsys, "train", project.root, *FAST, "--start", "latest")
    assert "no completed checkpoint yet" in line
    line = user_error(capsys, "train", project.root, *FAST, "--start", "checkpoint:unet_run_099")
    assert "no checkpoint 'unet_run_099'" in line
    line = user_error(capsys, "train", project.root, *FAST, "--patch-size", "32", "32", "32")
    assert "--patch-size has 3 values but the project is 2d: give 1 or 2" in line
    line = user_error(capsys, "train", project.root, *FAST, "--num-nodes", "0")
    assert "--num-nodes: must be greater than or equal to 1 (found 0)" in line
    assert project.history.runs == [] and project.checkpoints.records == []

    benchmark_only = make_project("bench_only", splits=("benchmark", "benchmark"))
    line = user_error(capsys, "train", benchmark_only.root, *FAST)
    assert "no training pairs" in line and "benchmark pairs" in line


def test_an_incompatible_start_is_a_user_error_naming_the_field(make_project, capsys):
    project = make_project(splits=("train", "val"))
    run_json(capsys, "train", project.root, *FAST, "--json")
    project.set_architecture(project.architecture.model_dump() | {"depth": 3, "preset": "custom"})
    line = user_error(capsys, "train", project.root, *FAST, "--start", "latest")
    assert "depth: project has 3, weights have 2" in line
    assert len(project.history.runs) == 1 and len(project.checkpoints.records) == 1


# --------------------------------------------------------------------------- nta predict
def test_predict_writes_numbered_predictions(make_project, image_file, capsys):
    project = make_project(splits=("train", "val"))
    run_json(capsys, "train", project.root, *FAST, "--json")

    first = run_json(capsys, "predict", project.root, "--image", image_file, "--json")
    assert first["prediction_path"] == str((project.root / "predictions" / "prediction_001.tif").resolve())
    assert first["checkpoint_id"] == "unet_run_001" and first["source"] == str(image_file)
    labels = read_tiff(first["prediction_path"])
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {0, 1}

    second = run_json(capsys, "predict", project.root, "--image", image_file, "--checkpoint", "unet_run_001",
                      "--tile-size", "32", "32", "--save-probabilities", "--json")  # fmt: skip
    assert Path(second["prediction_path"]).name == "prediction_002.tif"
    assert second["parameters"]["tile_size"] == [32, 32]
    probabilities = read_tiff(project.layout.absolute(second["probabilities_path"]))
    assert probabilities.dtype == np.float32 and probabilities.shape == (1, 48, 48)
    registry = json.loads(project.layout.prediction_registry.read_text())
    assert [p["prediction_id"] for p in registry["predictions"]] == ["prediction_001", "prediction_002"]

    assert main(["predict", str(project.root), "--image", str(image_file)]) == 0
    assert "prediction_003" in capsys.readouterr().out


def test_predict_user_errors(make_project, image_file, tmp_path, capsys):
    project = make_project(splits=("train", "val"))
    line = user_error(capsys, "predict", project.root, "--image", image_file)
    assert "no completed checkpoint yet" in line
    run_json(capsys, "train", project.root, *FAST, "--json")
    image = read_tiff(image_file)
    two_channels = write_tiff(tmp_path / "two.tif", np.stack([image, image]))
    line = user_error(capsys, "predict", project.root, "--image", two_channels, "--channel-axis", "0")
    assert "expects 1 channel(s)" in line
    line = user_error(capsys, "predict", project.root, "--image", image_file, "--checkpoint", "unet_run_007")
    assert "unet_run_007" in line
    line = user_error(capsys, "predict", project.root, "--image", image_file, "--tile-size", "2")
    assert "--tile-size [2, 2] is smaller than the model pools ([4, 4] per axis): use at least 4" in line
    line = user_error(capsys, "predict", project.root, "--image", two_channels)
    assert "declare the channel axis (--channel-axis)" in line
    assert project.predictions.registry.predictions == []
    one_value = run_json(capsys, "predict", project.root, "--image", image_file, "--tile-size", "32", "--json")
    assert one_value["parameters"]["tile_size"] == [32, 32]  # one value for every axis, as --patch-size


# --------------------------------------------------------------------------- nta benchmark
def test_benchmark_json_and_errors(make_project, capsys):
    project = make_project()
    run_json(capsys, "train", project.root, *FAST, "--no-benchmark", "--json")
    assert project.history.benchmarks() == []

    row = run_json(capsys, "benchmark", project.root, "--json")
    assert {"checkpoint_id", "dice", "iou", "n_images", "dice_per_class", "delta_dice"} <= set(row)
    assert row["checkpoint_id"] == "unet_run_001" and row["n_images"] == 1 and 0.0 <= row["dice"] <= 1.0
    # a binary model's objects: its connected components matched to the truth's, at IoU 0.5 and 0.5:0.95
    assert 0.0 <= row["instance_accuracy_mean"] <= row["instance_accuracy_50"] <= row["instance_f1_50"] <= 1.0
    assert set(row) >= {"instance_panoptic_quality_50", "instance_f1_mean", "instance_panoptic_quality_mean"}
    again = run_json(capsys, "benchmark", project.root, "--checkpoint", "unet_run_001", "--json")
    assert again == row and len(project.history.benchmarks()) == 1  # measured once per checkpoint
    assert main(["benchmark", str(project.root)]) == 0
    assert "unet_run_001: Dice" in capsys.readouterr().out

    line = user_error(capsys, "benchmark", project.root, "--checkpoint", "unet_run_005")
    assert "unet_run_005" in line
    no_bench = make_project("no_bench", splits=("train", "val"))
    run_json(capsys, "train", no_bench.root, *FAST, "--json")
    line = user_error(capsys, "benchmark", no_bench.root)
    assert "no benchmark pairs" in line


# --------------------------------------------------------------------------- subprocesses
@pytest.mark.slow
def test_ddp_on_two_cpu_processes_registers_one_checkpoint(make_project):
    project = make_project()
    result = subprocess.run(
        [*NTA, "train", str(project.root), "--device", "cpu", "--devices", "2", "--epochs", "1",
         "--samples-per-epoch", "8", "--batch-size", "2", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["status"] == "completed" and payload["checkpoint_id"] == "unet_run_001"
    assert payload["metrics"]["dice"] is not None and payload["benchmark"] is not None
    assert payload["metrics"]["steps"] == 2  # 8 samples, batch 2, split over 2 ranks
    project = TrainingProject.open(project.root)
    assert [c.checkpoint_id for c in project.checkpoints.records] == ["unet_run_001"]
    assert sorted(p.name for p in project.layout.checkpoints_dir.glob("unet_run_*.pt")) == ["unet_run_001.pt"]
    assert [(r.run_id, r.status) for r in project.history.runs] == [("run_001", "completed")]
    record = project.checkpoints.get("unet_run_001")
    assert record.settings["devices"] == 2 and record.metrics["dice"] is not None
    assert len(project.history.benchmarks()) == 1
    assert [p.name for p in (project.layout.history_dir / "runs").iterdir()] == ["run_001"]
    log = project.layout.training_log.read_text()
    assert log.count("started") == 1 and log.count("completed") == 1


@pytest.mark.slow
def test_demo_trains_benchmarks_and_predicts(tmp_path):
    result = subprocess.run(
        [*NTA, "demo", "--dir", str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    table = "\n".join(lines[:-1])
    for key in ("benchmark_dice", "unseen_image_dice", "unseen_image_object_accuracy_50", "change_object_accuracy_50", "prediction_path", "curves_png"):
        assert key in table
    from napari_training_assistant.demo import DEMO_EPOCHS, RETRAIN_EPOCHS

    assert f"epoch {DEMO_EPOCHS}/{DEMO_EPOCHS}" in table and f"epoch {RETRAIN_EPOCHS}/{RETRAIN_EPOCHS}" in table
    assert summary["benchmark_dice"] >= 0.85, summary
    assert summary["unseen_image_object_accuracy_50"] >= 0.75, summary  # touching nuclei, instance model
    assert Path(summary["prediction_path"]).is_file() and Path(summary["curves_png"]).is_file()
    project = TrainingProject.open(summary["project"])
    assert project.checkpoints.latest_id == summary["retrained_checkpoint_id"] != summary["checkpoint_id"]
    assert project.checkpoints.get(summary["retrained_checkpoint_id"]).parent_id == summary["checkpoint_id"]
    corrected = [p for p in project.dataset.pairs if p.source == "corrected_prediction"]
    assert len(corrected) == 1 and corrected[0].correction["checkpoint_id"] == summary["checkpoint_id"]
    rows = {row["checkpoint_id"]: row for row in project.history.benchmarks()}
    assert rows[summary["checkpoint_id"]]["instance_accuracy_50"] == summary["benchmark_object_accuracy_50"]
    after = rows[summary["retrained_checkpoint_id"]]["instance_accuracy_50"]
    assert summary["change_object_accuracy_50"] == pytest.approx(after - summary["benchmark_object_accuracy_50"], abs=1e-3)
