"""`nta predict` block-wise: OME-Zarr in the project, recorded only when complete, resumed after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from napari_training_assistant.cli.main import main
from napari_training_assistant.data.synthetic_nuclei import make_nuclei
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.train import train_project


@pytest.fixture
def trained(make_project, fast_options):
    project = make_project(splits=("train", "val"))
    train_project(project, fast_options(run_benchmark=False))
    return project


def _zarr_image(path, shape, seed=11):
    image = make_nuclei(shape, n_nuclei=max(4, shape[0] * shape[1] // 900), radius_range=(4.0, 7.0), seed=seed)[0]
    array = zarr.create_array(str(path), shape=image.shape, chunks=(128, 128), dtype=image.dtype, zarr_format=2)
    array[...] = image
    return str(path)


def _predict(capsys, *args):
    code = main(["predict", *map(str, args), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_blockwise_prediction_is_recorded_when_complete_and_the_project_stays_healthy(trained, tmp_path, capsys):
    source = _zarr_image(tmp_path / "big.zarr", (200, 260))

    code, report = _predict(capsys, trained.layout.root, "--image", source, "--block-shape", "64", "--probabilities", "uint8", "--scheduler", "in-process")

    assert code == 0 and report["status"] == "completed" and report["blocks"] == 20
    record = report["record"]
    assert record["path"] == "predictions/prediction_001.zarr/labels"
    assert record["probabilities_path"] == "predictions/prediction_001.zarr/probabilities"
    assert record["parameters"]["format"] == "ome-zarr" and record["parameters"]["block_shape"] == [64, 64]
    assert record["parameters"]["halo"] and record["parameters"]["source"]["source"] == source
    labels = zarr.open_group(str(trained.layout.root / "predictions/prediction_001.zarr"), mode="r")["labels/0"]
    assert labels.shape == (200, 260)
    assert main(["doctor", str(trained.layout.root), "--check"]) == 0
    assert "healthy" in capsys.readouterr().out

    trained.layout.prediction_registry.unlink()  # the registry is rebuilt from the sidecar
    assert main(["doctor", str(trained.layout.root)]) == 0
    capsys.readouterr()
    rebuilt = TrainingProject.open(trained.layout.root).predictions.registry.predictions
    assert [r.path for r in rebuilt] == ["predictions/prediction_001.zarr/labels"]

    code, again = _predict(capsys, trained.layout.root, "--image", source, "--block-shape", "64", "--probabilities", "uint8", "--scheduler", "in-process", "--output", trained.layout.root / "predictions/prediction_001.zarr")
    assert code == 0 and again["blocks_before"] == 20 and again["blocks_predicted"] == 0
    assert len(TrainingProject.open(trained.layout.root).predictions.registry.predictions) == 1


def test_small_images_keep_the_in_memory_tiff_path(trained, tmp_path, capsys):
    source = _zarr_image(tmp_path / "small.zarr", (64, 64))
    code, report = _predict(capsys, trained.layout.root, "--image", source)
    assert code == 0 and report["path"].endswith(".tif")


def test_output_outside_the_project_or_an_unreachable_scheduler_writes_nothing(trained, tmp_path, capsys):
    source = _zarr_image(tmp_path / "big.zarr", (128, 128))
    before = sorted(p.name for p in trained.layout.predictions_dir.iterdir())

    assert main(["predict", str(trained.layout.root), "--image", source, "--output", str(tmp_path / "out.zarr")]) == 2
    assert "outside the project" in capsys.readouterr().err
    assert main(["predict", str(trained.layout.root), "--image", source, "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach a Dask scheduler" in err and err.count("\n") == 1

    assert not (tmp_path / "out.zarr").exists()
    assert sorted(p.name for p in trained.layout.predictions_dir.iterdir()) == before


@pytest.mark.slow
def test_a_killed_run_restarted_with_the_same_command_skips_finished_blocks(trained, tmp_path, capsys):
    """A local Dask cluster (worker processes) killed mid-run; the same command finishes the same output."""
    source = _zarr_image(tmp_path / "big.zarr", (1024, 768))
    command = [sys.executable, "-m", "napari_training_assistant.cli", "predict", str(trained.layout.root), "--image", source, "--block-shape", "64", "--workers", "1", "--json"]
    output = trained.layout.root / "predictions" / "prediction_001.zarr"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _blocks_done(output) < 3:
            assert process.poll() is None, f"ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no 3 blocks done within 180 s"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    killed_at = _blocks_done(output)
    assert 3 <= killed_at < 192
    assert TrainingProject.open(trained.layout.root).predictions.registry.predictions == []  # not recorded: unfinished

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert report["prediction_path"] == str(output) and report["blocks_before"] >= killed_at
    assert report["blocks_before"] + report["blocks_predicted"] == report["blocks"] == 192
    code, whole = _predict(capsys, trained.layout.root, "--image", source, "--block-shape", "64", "--scheduler", "in-process", "--output", trained.layout.root / "predictions" / "whole.zarr")
    assert code == 0
    resumed = zarr.open_group(str(output), mode="r")["labels/0"][...]
    np.testing.assert_array_equal(resumed, zarr.open_group(whole["prediction_path"], mode="r")["labels/0"][...])
    records = TrainingProject.open(trained.layout.root).predictions.registry.predictions
    assert [r.path for r in records] == ["predictions/prediction_001.zarr/labels", "predictions/whole.zarr/labels"]


def _blocks_done(output) -> int:
    folder = output / "nta_blocks"
    return sum(1 for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else 0


def test_every_file_source_kind_through_the_cli(trained, tmp_path, capsys, volume_source):
    """`nta predict PROJECT --image SOURCE --output OUT.zarr` on files written by each format's own writer."""
    image = make_nuclei((96, 112), n_nuclei=8, radius_range=(4.0, 7.0), seed=4)[0]
    kinds = ["tiff", "bigtiff", "tiled-tiff", "zarr-v2", "zarr-v3", "zarr-group-dataset", "ome-zarr-0.4-level1", "ome-zarr-0.5", "precomputed"]
    outputs = {}
    for kind in kinds:
        folder = tmp_path / kind
        folder.mkdir()
        source, options, voxels = volume_source(kind, image, folder)
        extra = [*(["--image-dataset", options["dataset"]] if "dataset" in options else []), *(["--scale", str(options["scale"])] if "scale" in options else [])]
        output = trained.layout.root / "predictions" / f"{kind}.zarr"
        code, report = _predict(capsys, trained.layout.root, "--image", source, *extra, "--output", output, "--block-shape", "48", "--scheduler", "in-process")
        assert code == 0 and report["status"] == "completed", kind
        outputs[kind] = zarr.open_group(str(output), mode="r")["labels/0"][...]
        assert outputs[kind].shape == voxels.shape, kind
    for kind in kinds:
        if kind != "ome-zarr-0.4-level1":  # the half-resolution level
            np.testing.assert_array_equal(outputs[kind], outputs["tiff"], err_msg=kind)
    assert len(TrainingProject.open(trained.layout.root).predictions.registry.predictions) == len(kinds)
