"""`assign_synapses` / `nta assign-synapses` end to end on a generated EM volume: tables, Neuroglancer lines read
back by our reader, evaluation, resume by chunk, bad input."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import yaml
import zarr

from napari_training_assistant.assign.run import assign_synapses
from napari_training_assistant.cli.main import main
from napari_training_assistant.data.annotations import read_precomputed_annotations
from napari_training_assistant.data.synthetic_em import write_synapse_dataset
from napari_training_assistant.project.errors import CheckpointError, DatasetError

IN_PROCESS = {"scheduler": "in-process"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A (24, 96, 96) synthetic EM dataset whose project holds a 1-epoch point-trained checkpoint."""
    from napari_training_assistant.train import TrainOptions
    from napari_training_assistant.train.point_run import train_points

    folder = tmp_path_factory.mktemp("em")
    paths = write_synapse_dataset(folder, shape=(24, 96, 96), seed=1)
    result = train_points(paths["spec"], TrainOptions(epochs=1, device="cpu"))
    assert result.status == "completed"
    return paths


def _copy_spec(paths, tmp_path, **changes):
    """The dataset's spec written next to it under another name, with `changes` applied (project kept)."""
    spec = yaml.safe_load(paths["spec"].read_text())
    spec["project"] = str(paths["spec"].parent / spec["project"])
    for key, value in changes.items():
        target = spec
        *parents, last = key.split(".")
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    path = paths["spec"].parent / f"spec_{tmp_path.name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_every_synapse_gets_a_row_lines_read_back_and_an_evaluation(dataset, tmp_path):
    result = assign_synapses(dataset["spec"], output=tmp_path / "out", chunk_points=8, evaluate=True, **IN_PROCESS)

    rows = list(csv.DictReader((tmp_path / "out" / "assignments.csv").open()))
    synapses = list(csv.DictReader(dataset["synapses"].open()))
    assert result.status == "completed" and len(rows) == len(synapses) == result.synapses and result.chunks >= 2
    assert [r["id"] for r in rows] == [s["id"] for s in synapses]
    assert {"pre_segment", "post_segment", "pre_score", "post_margin", "flags", "pre_site_z"} <= set(rows[0])
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "out" / "assignments.parquet").num_rows == len(rows)

    lines = read_precomputed_annotations(tmp_path / "out" / "lines", "zyx", [40, 4, 4], relationships=True)
    assigned = {int(r["row"]): r for r in rows if int(r["pre_segment"]) and int(r["post_segment"])}
    assert len(lines) == len(assigned) > 0
    for line in lines:
        row = assigned[int(line.id)]
        assert line.relationships == {"pre_segment": [int(row["pre_segment"])], "post_segment": [int(row["post_segment"])]}
        np.testing.assert_allclose(line.start, [float(row[f"pre_site_{a}"]) for a in "zyx"], atol=1e-3)
        np.testing.assert_allclose(line.end, [float(row[f"post_site_{a}"]) for a in "zyx"], atol=1e-3)
        assert line.properties["pre_score"] == pytest.approx(float(row["pre_score"]), rel=1e-5)

    evaluation = result.summary["evaluation"]
    assert evaluation["synapses_with_ground_truth"] == len(rows)
    assert set(evaluation["per_tag"]) == {"train", "val"}
    for side in ("pre", "post", "both"):
        assert 0.0 <= evaluation["overall"][side]["accuracy"] <= 1.0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["reads"]["region"] + summary["reads"]["windows"] == result.chunks and summary["synapses_per_s"] > 0
    assert summary["baseline_evaluation"]["overall"]["n"] == len(rows)

    from napari_training_assistant.project import TrainingProject

    project = TrainingProject.open(dataset["spec"].parent / "synapse-project")
    [row] = project.history.benchmarks(kind="assignment")[-1:]
    assert row["checkpoint_id"] == project.checkpoints.registry.latest and row["assign_mode"] == "max"
    assert row["both_accuracy"] == evaluation["overall"]["both"]["accuracy"]
    assert row["baseline_both_accuracy"] == summary["baseline_evaluation"]["overall"]["both"]["accuracy"]
    assert all(r.get("kind") in (None, "segmentation") for r in project.history.benchmarks())


def test_the_no_network_baseline_and_ground_truth_from_the_lines(dataset, tmp_path):
    result = assign_synapses(dataset["spec"], mode="dilate_nearest", output=tmp_path / "base", evaluate=True, **IN_PROCESS)
    em_truth = {row["id"]: row for row in csv.DictReader(dataset["synapses"].open())}
    segmentation = zarr.open_array(str(dataset["seg"]), mode="r")
    rows = list(csv.DictReader((tmp_path / "base" / "assignments.csv").open()))
    correct = sum(
        int(r["pre_segment"]) == int(segmentation[tuple(int(float(em_truth[r["id"]][a + "1"])) for a in "zyx")])
        for r in rows
    )
    assert result.summary["evaluation"]["overall"]["pre"]["accuracy"] == pytest.approx(correct / len(rows), abs=1e-4)


def test_a_stopped_run_resumes_by_chunk_and_a_different_run_is_refused(dataset, tmp_path):
    first = assign_synapses(dataset["spec"], output=tmp_path / "out", chunk_points=8, **IN_PROCESS)
    parts = sorted((tmp_path / "out" / "parts").iterdir())
    before = (tmp_path / "out" / "assignments.csv").read_text()
    parts[-1].unlink()  # as if the run had stopped before its last chunk

    again = assign_synapses(dataset["spec"], output=tmp_path / "out", chunk_points=8, **IN_PROCESS)

    assert again.chunks_before == first.chunks - 1 and again.status == "completed"
    assert (tmp_path / "out" / "assignments.csv").read_text() == before
    with pytest.raises(DatasetError, match="holds another assignment run"):
        assign_synapses(dataset["spec"], output=tmp_path / "out", chunk_points=4, **IN_PROCESS)


def test_bad_input_is_one_line(dataset, tmp_path, make_project, fast_options):
    from napari_training_assistant.train import train_project

    no_segmentation = _copy_spec(dataset, tmp_path, **{"layers.segmentation": None, "targets": "labels"})
    with pytest.raises(DatasetError, match="names no segmentation layer"):
        assign_synapses(no_segmentation, **IN_PROCESS)

    shifted = tmp_path / "seg_small.zarr"
    zarr.create_array(str(shifted), shape=(24, 96, 80), dtype="uint32", zarr_format=3)
    wrong_shape = _copy_spec(dataset, tmp_path, **{"layers.segmentation": {"path": str(shifted)}})
    with pytest.raises(DatasetError, match="segmentation .* but img covers"):
        assign_synapses(wrong_shape, **IN_PROCESS)

    empty = dataset["spec"].parent / "empty.csv"
    empty.write_text("id,z,y,x\n")
    with pytest.raises(DatasetError, match="holds no synapses"):
        assign_synapses(_copy_spec(dataset, tmp_path, **{"layers.points": {"path": str(empty)}}), **IN_PROCESS)

    pairs = make_project("pairs")
    train_project(pairs, fast_options(run_benchmark=False))
    with pytest.raises(CheckpointError, match="trained on image/mask pairs"):
        assign_synapses(_copy_spec(dataset, tmp_path, project=str(pairs.layout.root)), **IN_PROCESS)


def test_points_outside_the_volume_are_counted_not_fatal(dataset, tmp_path):
    points = dataset["spec"].parent / "points_outside.csv"
    shutil.copy(dataset["points"], points)
    with points.open("a") as handle:
        handle.write("outside-1,10,500,10\noutside-2,-5,10,10\n")
    spec = _copy_spec(dataset, tmp_path, **{"layers.points": {"path": str(points)}})

    result = assign_synapses(spec, mode="dilate_nearest", output=tmp_path / "out", **IN_PROCESS)

    assert result.outside == 2 and result.synapses == len(list(csv.DictReader(dataset["points"].open())))


def test_cli_assigns_evaluates_and_refuses_bad_values(dataset, tmp_path, capsys):
    code = main(["assign-synapses", str(dataset["spec"]), "--mode", "dilate_nearest", "--output", str(tmp_path / "cli"), "--scheduler", "in-process", "--evaluate", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["status"] == "completed" and report["evaluation"]["overall"]["n"] > 0

    for bad in (["--mode", "bogus"], ["--threshold", "1.5"], ["--contact-radius", "1", "2"], ["--chunk-points", "0"]):
        with pytest.raises(SystemExit) as stopped:
            main(["assign-synapses", str(dataset["spec"]), *bad])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and bad[0] in err


def test_more_chunks_than_tasks_in_flight_are_all_assigned(dataset, tmp_path):
    """Chunks are streamed: only a few per worker are submitted at once, the rest as those finish."""
    from napari_training_assistant.assign.run import IN_FLIGHT_PER_WORKER

    result = assign_synapses(dataset["spec"], mode="dilate_nearest", output=tmp_path / "out", chunk_points=1, **IN_PROCESS)

    assert result.chunks > IN_FLIGHT_PER_WORKER + 1 and result.status == "completed"
    assert len(list((tmp_path / "out" / "parts").iterdir())) == result.chunks
    assert len(list(csv.DictReader((tmp_path / "out" / "assignments.csv").open()))) == result.synapses


def test_project_option_applies_a_model_to_a_volume_whose_spec_names_another_project(dataset, tmp_path, capsys):
    trained = dataset["spec"].parent / yaml.safe_load(dataset["spec"].read_text())["project"]
    elsewhere = _copy_spec(dataset, tmp_path, project=str(tmp_path / "not-made-yet"))
    code = main(["assign-synapses", str(elsewhere), "--project", str(trained), "--output", str(tmp_path / "out"), "--scheduler", "in-process", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["status"] == "completed" and (tmp_path / "out" / "assignments.csv").is_file()
    assert not (tmp_path / "not-made-yet").exists()

    code = main(["assign-synapses", str(dataset["spec"]), "--project", str(tmp_path), "--scheduler", "in-process"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(tmp_path) in err
