"""`nta suggest`: unlabeled images ranked by the model's uncertainty (entropy + flip disagreement)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_training_assistant.cli.main import main
from napari_training_assistant.predict.suggest import flip_disagreement, normalised_entropy


def test_entropy_is_zero_when_certain_and_one_when_undecided():
    assert normalised_entropy(np.array([[[0.0, 1.0]]]), "binary") == pytest.approx(0.0, abs=1e-5)
    assert normalised_entropy(np.full((1, 4, 4), 0.5), "binary") == pytest.approx(1.0)
    assert normalised_entropy(np.full((3, 4, 4), 1 / 3), "multiclass") == pytest.approx(1.0)
    certain = np.zeros((3, 4, 4))
    certain[1] = 1.0
    assert normalised_entropy(certain, "multiclass") == pytest.approx(0.0, abs=1e-5)
    assert normalised_entropy(np.full((1, 4, 4), 0.9), "binary") < normalised_entropy(np.full((1, 4, 4), 0.6), "binary")


def test_flip_disagreement_is_the_mean_difference_to_the_flipped_predictions():
    plain = np.zeros((1, 2, 2))
    assert flip_disagreement(plain, [plain, plain]) == 0.0
    assert flip_disagreement(plain, [np.ones_like(plain), plain]) == pytest.approx(0.5)
    assert flip_disagreement(plain, []) == 0.0


def test_cli_ranks_a_folder_most_uncertain_first(make_project, fast_options, unlabeled_images, tmp_path, capsys):
    from napari_training_assistant.train import train_project

    project = make_project()
    folder = unlabeled_images(project, 3)
    (folder / "notes.txt").write_text("not an image")

    assert main(["suggest", str(project.root), "--images", str(folder)]) == 2  # no checkpoint yet
    assert "train first" in capsys.readouterr().err

    train_project(project, fast_options(run_benchmark=False))
    assert main(["suggest", str(project.root), "--images", str(folder), "--top", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    scores = [s["score"] for s in report["suggestions"]]
    assert report["checkpoint"] == "unet_run_001" and len(scores) == 2 and scores == sorted(scores, reverse=True)
    for s in report["suggestions"]:
        assert 0 <= s["entropy"] <= 1 and 0 <= s["disagreement"] <= 1
        assert s["score"] == pytest.approx(s["entropy"] + s["disagreement"], abs=1e-5)
    assert main(["suggest", str(project.root), "--images", str(folder), "--no-tta"]) == 0
    printed = capsys.readouterr().out
    assert "rank" in printed and "img_0.tif" in printed and "flip disagreement" in printed

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["suggest", str(project.root), "--images", str(empty)]) == 2
    assert "holds no image" in capsys.readouterr().err
