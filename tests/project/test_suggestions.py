"""What `nta suggest` ranked is recorded on the pair made from a suggested image (issue 14, item 4)."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from napari_training_assistant.cli.main import main
from napari_training_assistant.project.corrections import correction_summary
from napari_training_assistant.project.suggestions import read_suggestions, record_suggestions, suggestion_for


def _trained(make_project, fast_options, unlabeled_images):
    from napari_training_assistant.train import train_project

    project = make_project()
    train_project(project, fast_options(run_benchmark=False))
    return project, unlabeled_images(project, 2), project.dataset.load(project.dataset.pairs[0].pair_id)[1]


def test_a_pair_added_from_a_suggested_image_records_its_rank(make_project, fast_options, unlabeled_images, tmp_path, capsys):
    project, folder, mask = _trained(make_project, fast_options, unlabeled_images)
    assert main(["suggest", str(project.root), "--images", str(folder), "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["suggestions"]
    first = ranked[0]["path"]
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    record = project.dataset.add_files(first, tmp_path / "mask.tif")
    assert record.suggestion["rank"] == 1 and record.suggestion["of"] == 2
    assert record.suggestion["score"] == ranked[0]["score"] and record.suggestion["checkpoint_id"] == "unet_run_001"
    unsuggested = tmp_path / "other.tif"
    tifffile.imwrite(unsuggested, tifffile.imread(first)[::-1].copy())
    assert project.dataset.add_files(unsuggested, tmp_path / "mask.tif").suggestion is None


def test_a_corrected_prediction_of_a_suggested_image_records_its_rank(make_project, fast_options, unlabeled_images):
    from napari_training_assistant.predict.project_prediction import predict_file
    from napari_training_assistant.predict.suggest import image_files, suggest
    from napari_training_assistant.project.corrections import add_corrected_prediction
    from napari_training_assistant.project.image_io import read_tiff

    project, folder, _ = _trained(make_project, fast_options, unlabeled_images)
    ranked = suggest(project, image_files(folder), tta=False)
    last = ranked[-1]
    prediction = predict_file(project, last.path)
    labels = read_tiff(project.layout.absolute(prediction.path))
    record = add_corrected_prediction(project, prediction.prediction_id, 1 - labels)
    assert record.suggestion["rank"] == 2 and record.suggestion["entropy"] == last.entropy


def test_tiles_of_a_large_image_are_ranked_and_a_newer_ranking_wins(make_project, fast_options, unlabeled_images, tmp_path):
    from napari_training_assistant.predict.suggest import _tiles, suggest

    assert _tiles((100, 70), None) == [None] and _tiles((40, 40), 64) == [None]
    assert _tiles((100, 70), 64) == [[[0, 64], [0, 64]], [[0, 64], [6, 70]], [[36, 100], [0, 64]], [[36, 100], [6, 70]]]
    assert _tiles((5, 100, 40), 64)[1] == [[0, 5], [36, 100], [0, 40]]  # 3D: all z, tiles over y and x
    project, folder, _ = _trained(make_project, fast_options, unlabeled_images)
    big = tmp_path / "big"
    big.mkdir()
    image = np.tile(tifffile.imread(folder / "img_0.tif"), (2, 2))  # 96 x 96
    tifffile.imwrite(big / "slide.tif", image)
    ranked = suggest(project, [big / "slide.tif"], tta=False, tile=48)
    assert len(ranked) == 4 and all(s.region is not None for s in ranked)
    assert suggestion_for(project, big / "slide.tif")["region"] == ranked[0].region
    record_suggestions(project, "unet_run_001", [{"path": str(big / "slide.tif"), "score": 9.0, "entropy": 5.0, "disagreement": 4.0}])
    assert suggestion_for(project, big / "slide.tif")["score"] == 9.0  # the newest ranking
    (project.layout.history_dir / "suggestions.json").write_text("{not json")
    assert read_suggestions(project) == {} and suggestion_for(project, big / "slide.tif") is None


def test_correction_counts_instance_ids_as_objects():
    predicted = np.zeros((20, 20), np.uint16)
    predicted[2:8, 2:16] = 1  # two touching nuclei predicted as one
    corrected = predicted.copy()
    corrected[2:8, 9:16] = 2  # the user splits it
    summary = correction_summary(predicted, corrected)
    assert summary["objects_predicted"] == 1 and summary["objects_corrected"] == 2 and summary["objects_edited"] == 1
    assert summary["changed_pixels"] == 42


def test_a_hand_edited_suggestions_file_never_stops_a_pair_nor_reaches_the_manifest(tmp_path):
    from napari_training_assistant.project import TrainingProject

    project = TrainingProject.create(tmp_path / "p", "p")
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint8))
    record_suggestions(project, "unet_run_001", [{"path": str(image), "score": 0.5, "entropy": 0.3, "disagreement": 0.2}])
    good = suggestion_for(project, image)
    assert good["rank"] == 1 and good["score"] == 0.5
    path = project.layout.history_dir / "suggestions.json"
    data = json.loads(path.read_text())
    key = next(iter(data))
    for bad in ({"rank": "first"}, {"score": [1] * 5}, {"region": [[0, "x"]]}, {"payload": "x" * 10}):
        data[key] = {**good, **bad}
        path.write_text(json.dumps(data))
        found = suggestion_for(project, image)
        assert found is None or set(found) <= set(good) | {"region"}
    data[key] = {**good, "rank": "first"}
    path.write_text(json.dumps(data))
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 1
    tifffile.imwrite(tmp_path / "m.tif", mask)
    assert project.dataset.add_files(image, tmp_path / "m.tif").suggestion is None
    data[key] = {**good, "payload": "x" * 10}
    path.write_text(json.dumps(data))
    assert "payload" not in suggestion_for(project, image)
