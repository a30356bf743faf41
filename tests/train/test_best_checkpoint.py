"""`best`: the checkpoint with the highest benchmark Dice on the current benchmark pairs, usable wherever a
checkpoint is chosen; `latest` stays the newest."""

from __future__ import annotations

import json

import pytest
import tifffile

from napari_training_assistant.cli.main import main
from napari_training_assistant.project.errors import CheckpointError
from napari_training_assistant.train import train_project


def _row(project, checkpoint_id, dice, sha):
    project.history.append_benchmark({"checkpoint_id": checkpoint_id, "timestamp": "2026-01-01T00:00:00", "n_images": 1, "dice": dice, "iou": dice, "benchmark_sha256": sha})


def test_best_follows_the_benchmark_of_the_current_pairs_not_the_newest_run(make_project, fast_options, capsys, tmp_path):
    project = make_project()
    with pytest.raises(CheckpointError, match="no checkpoint benchmarked on its current benchmark pairs"):
        project.checkpoints.get("best")
    first = train_project(project, fast_options())
    second = train_project(project, fast_options())
    rows = {r["checkpoint_id"]: r for r in project.history.benchmarks()}
    current = rows[first.checkpoint_id]["benchmark_sha256"]
    expected = max((rows[c]["dice"], i, c) for i, c in enumerate((first.checkpoint_id, second.checkpoint_id)))[2]
    assert project.checkpoints.best_id == expected and project.checkpoints.latest_id == second.checkpoint_id

    _row(project, first.checkpoint_id, 0.999, current)  # run 1 measured again, better: best moves back
    assert project.checkpoints.get("best").checkpoint_id == first.checkpoint_id
    assert project.checkpoints.latest_id == second.checkpoint_id  # latest never moves for a score
    _row(project, second.checkpoint_id, 1.0, "another benchmark set")  # a row of other pairs does not count
    assert project.checkpoints.best_id == first.checkpoint_id

    # used wherever a checkpoint is chosen: start of training, status, prediction
    third = train_project(project, fast_options(start="best"))
    assert third.parent_id == first.checkpoint_id
    assert main(["status", str(project.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status["best_checkpoint"] == first.checkpoint_id and status["latest_checkpoint"] == third.checkpoint_id
    chosen = project.set_starting_weights("best")  # kept as the checkpoint it is now
    assert chosen.choice == "checkpoint" and chosen.checkpoint_id == first.checkpoint_id

    pair = next(p for p in project.dataset.pairs if p.split == "train")
    image = tmp_path / "image.tif"
    tifffile.imwrite(image, project.dataset.load(pair.pair_id)[0])
    assert main(["predict", str(project.root), "--checkpoint", "best", "--image", str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["checkpoint_id"] == first.checkpoint_id

    # new benchmark pairs: nothing is measured on them yet
    project.dataset.set_split(pair.pair_id, "benchmark")
    assert project.checkpoints.best_id is None
    assert main(["predict", str(project.root), "--checkpoint", "best", "--image", str(image)]) == 2
    assert "nta benchmark" in capsys.readouterr().err
