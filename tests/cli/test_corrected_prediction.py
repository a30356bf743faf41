"""A corrected prediction becomes a training pair that records where it came from and what the user changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_training_assistant.cli.main import main
from napari_training_assistant.project.corrections import correction_summary
from napari_training_assistant.project.errors import ProjectError


def test_the_summary_counts_changed_pixels_and_edited_objects():
    predicted = np.zeros((10, 10), np.uint8)
    predicted[1:4, 1:4] = 1  # kept
    predicted[6:9, 6:9] = 1  # removed by the user
    corrected = predicted.copy()
    corrected[6:9, 6:9] = 0
    corrected[1:4, 6:8] = 1  # added
    summary = correction_summary(predicted, corrected)
    assert summary["changed_pixels"] == 9 + 6 and summary["changed_fraction"] == pytest.approx(0.15)
    assert (summary["objects_predicted"], summary["objects_corrected"], summary["objects_kept"]) == (2, 2, 1)
    assert summary["objects_edited"] == 1  # one removed, one added: max of the two sides
    assert correction_summary(predicted, predicted)["changed_pixels"] == 0


@pytest.fixture
def predicted(make_project, fast_options, tmp_path, capsys):
    from napari_training_assistant.train import train_project

    project = make_project()
    train_project(project, fast_options(run_benchmark=False))
    image, _ = project.dataset.load(project.dataset.pairs[0].pair_id)
    path = tmp_path / "new_image.tif"
    tifffile.imwrite(path, image)
    assert main(["predict", str(project.root), "--image", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return project, path, record


def test_add_pair_from_prediction_records_checkpoint_and_changes(predicted, tmp_path, capsys):
    project, image_path, record = predicted
    labels = tifffile.imread(project.layout.absolute(record["path"]))
    corrected = labels.copy()
    corrected[:5, :5] = 1 - corrected[:5, :5]  # the user repaints a corner
    changed = int((corrected != labels).sum())
    mask = tmp_path / "corrected.tif"
    tifffile.imwrite(mask, corrected)
    before = len(project.dataset.pairs)

    # the image defaults to the file the prediction was made from
    assert main(["add-pair", str(project.root), "--from-prediction", record["prediction_id"], "--mask", str(mask), "--json"]) == 0
    pair = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert pair["source"] == "corrected_prediction" and len(project.dataset.pairs) == before + 1
    correction = pair["correction"]
    assert correction["prediction_id"] == record["prediction_id"] and correction["checkpoint_id"] == "unet_run_001"
    assert correction["changed_pixels"] == changed
    image, saved = project.dataset.load(pair["pair_id"])
    np.testing.assert_array_equal(image, tifffile.imread(image_path))
    np.testing.assert_array_equal(saved > 0, corrected > 0)  # through the same mask preparation as every pair


def test_bad_corrections_are_one_line_and_add_nothing(predicted, tmp_path, capsys):
    project, image_path, record = predicted
    before = len(project.dataset.pairs)
    wrong = tmp_path / "wrong.tif"
    tifffile.imwrite(wrong, np.zeros((3, 3), np.uint8))
    for args, fragment in (
        (["--from-prediction", record["prediction_id"], "--mask", str(wrong)], "have shape (3, 3) but prediction_001 has"),
        (["--from-prediction", "prediction_404", "--mask", str(wrong)], "no prediction 'prediction_404'"),
        (["--mask", str(wrong)], "--image is required"),
    ):
        assert main(["add-pair", str(project.root), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err, err
    assert len(project.dataset.pairs) == before

    from napari_training_assistant.project.corrections import add_corrected_prediction

    image_path.unlink()  # the source file is gone: the image must be given
    with pytest.raises(ProjectError, match="not a readable file: give the image"):
        add_corrected_prediction(project, record["prediction_id"], np.zeros(tuple(record["shape"]), np.uint8))
