"""Point-windowed training end to end: dry run, a run registered like pair training, resume, the CLI,
a Neuroglancer precomputed pipeline, line-segment targets, the centre marker, quality and DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from napari_training_assistant.cli.main import main
from napari_training_assistant.data.geometry import Box
from napari_training_assistant.data.synthetic_em import make_em_volume, write_synapse_dataset
from napari_training_assistant.model import read_checkpoint
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.errors import DatasetError
from napari_training_assistant.train import CancelToken, EventKind, TrainOptions
from napari_training_assistant.train.point_inputs import load_point_inputs
from napari_training_assistant.train.point_run import dry_run, train_points
from napari_training_assistant.train.point_spec import load_spec

SHAPE = (16, 128, 128)  # 24 synapses, 6 in each of the 4 quadrant regions (3 train, 1 val)
WINDOW = [8, 32, 32]
NTA = [sys.executable, "-m", "napari_training_assistant.cli"]


@pytest.fixture(scope="module")
def em():
    return make_em_volume(SHAPE, seed=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory, em) -> Path:
    folder = tmp_path_factory.mktemp("synapses")
    write_synapse_dataset(folder, volume=em, partners=False)  # the label0/label1 regime
    return folder


def small_spec(data: Path, project: Path, name: str, **changes) -> Path:
    """A copy of the written spec with small windows and a tiny net, saved next to the data."""
    spec = yaml.safe_load((data / "spec.yaml").read_text())
    spec["project"] = str(project)
    spec["window_size"] = list(WINDOW)
    spec["model"].update(depth=2, base_channels=8)
    spec["training"].update(epochs=1, device="cpu", batch_size=4)
    for key, value in changes.items():
        if isinstance(value, dict) and key != "layers" and isinstance(spec.get(key), dict):
            spec[key].update(value)
        else:
            spec[key] = value
    path = data / f"spec_{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def expected_counts(em) -> tuple[int, int]:
    boxes = [Box(tuple(r["start"]), tuple(r["stop"])) for r in em.regions]
    tags = [r["tags"][0] for r in em.regions]
    per = [sum(b.contains(s["point"]) for s in em.synapses) for b in boxes]
    return (
        sum(n for n, t in zip(per, tags, strict=True) if t == "train"),
        sum(n for n, t in zip(per, tags, strict=True) if t == "val"),
    )


# ------------------------------------------------------------------------------------- dry run
def test_dry_run_counts_points_and_estimates_the_cache(data, em, tmp_path):
    spec_path = small_spec(data, tmp_path / "proj", "dry")
    report = dry_run(spec_path)
    train, val = expected_counts(em)
    assert (train, val) == (18, 6)
    assert report["points"] == {"train": train, "val": val, "dropped": 0}
    assert report["dropped_reasons"] == {}
    assert report["regions"] == {"train": ["region 0", "region 1", "region 2"], "val": ["region 3"]}
    margin = [(w + 1) // 2 + 1 for w in WINDOW]
    boxes = [Box(tuple(r["start"]), tuple(r["stop"])).inflate(margin) for r in em.regions]
    assert report["cache_bytes_estimate"] == 3 * sum(b.size for b in boxes)  # img, pre, post: uint8
    assert report["window_size"] == WINDOW and report["architecture"]["input_channels"] == 1
    assert not (tmp_path / "proj").exists()  # a dry run creates nothing

    spec, base = load_spec(spec_path)
    inputs = load_point_inputs(spec, base, spec_path)
    assert sum(r.nbytes for r in inputs.train_regions + inputs.val_regions) == report["cache_bytes_estimate"]
    assert (inputs.point_count("train"), inputs.point_count("val")) == (train, val)


def test_dry_run_counts_dropped_annotations(data, em, tmp_path):
    rows = (data / "synapses.csv").read_text().splitlines()
    rows += ["900,1,1,200,1,1,210", "901,-9,5,5,-8,5,5", "902,100,5,5,101,5,5"]  # outside the volume
    (data / "synapses_more.csv").write_text("\n".join(rows) + "\n")
    layers = {"img": {"path": "img.zarr"}, "label0": {"path": "pre.zarr"}, "label1": {"path": "post.zarr"}}
    spec_path = small_spec(data, tmp_path / "proj", "dropped", layers={**layers, "points": {"path": "synapses_more.csv"}})
    report = dry_run(spec_path)
    assert report["points"]["train"] + report["points"]["val"] == len(em.synapses)
    assert report["dropped_reasons"] == {"outside every train/val region": 3}
    assert report["points"]["dropped"] == 3


def test_a_too_small_memory_budget_is_refused_before_reading(data, tmp_path):
    spec_path = small_spec(data, tmp_path / "proj", "budget", training={"memory_budget_gb": 0.0001})
    spec, base = load_spec(spec_path)
    with pytest.raises(DatasetError, match="memory_budget_gb"):
        load_point_inputs(spec, base, spec_path)


# -------------------------------------------------------------------------------------- training
def test_train_points_registers_a_point_window_checkpoint(data, tmp_path):
    spec_path = small_spec(data, tmp_path / "proj", "train")
    result = train_points(spec_path)
    assert result.status == "completed" and result.run_id == "run_001"
    assert result.checkpoint_id == "unet_run_001" and Path(result.checkpoint_path).is_file()
    assert result.benchmark is None
    assert result.points == {"train": 18, "val": 6, "dropped": 0, "dropped_reasons": {}}
    metrics = result.metrics
    assert set(metrics["per_channel"]) == {"pre", "post"}
    for scores in metrics["per_channel"].values():
        assert set(scores) == {"dice", "iou", "constant_predictor_dice"}
        assert 0 <= scores["dice"] <= 1 and 0 < scores["constant_predictor_dice"] < 1
    assert metrics["dice"] == pytest.approx(np.mean([s["dice"] for s in metrics["per_channel"].values()]))
    assert metrics["epochs_completed"] == 1 and metrics["steps"] == 4  # 18 points, batch 4, last dropped

    project = TrainingProject.open(tmp_path / "proj")
    record = project.checkpoints.get("unet_run_001")
    assert record.training_mode == "point_windows" and record.status == "completed"
    assert record.split == {"train": ["region 0", "region 1", "region 2"], "val": ["region 3"]}
    assert record.dataset_pair_ids == [] and record.image_count == 4
    assert record.architecture["output_channels"] == 2 and record.architecture["input_channels"] == 1
    assert record.settings["points"]["train"] == 18 and record.settings["spec"]["window_size"] == WINDOW
    assert project.checkpoints.latest_id == "unet_run_001"
    metadata = read_checkpoint(result.checkpoint_path)[2]["metadata"]
    assert metadata["window_size"] == WINDOW and metadata["targets"] == "labels" and metadata["centre_marker"] is False
    # the loss the module used is the one recorded (the architecture names it, its options are in the metadata)
    assert record.architecture["loss"] == "bce" and metadata["loss"]["balance"] == "default"
    assert project.config.training.training_mode == "point_windows"  # the project remembers its latest run's kind

    run_dir = tmp_path / "proj" / "history" / "runs" / "run_001"
    montage = run_dir / "montage_epoch_001.png"
    assert montage.is_file() and montage.read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "curves.png").is_file() and not (run_dir / "last.ckpt").exists()
    runs = json.loads((tmp_path / "proj" / "history" / "training_runs.json").read_text())
    runs = runs["runs"] if isinstance(runs, dict) else runs
    (run,) = runs
    assert run["run_id"] == "run_001" and run["status"] == "completed" and run["checkpoint_id"] == "unet_run_001"
    assert run["settings"]["training_mode"] == "point_windows"
    assert run["settings"]["regions"] == {"train": ["region 0", "region 1", "region 2"], "val": ["region 3"]}
    assert [(r.run_id, r.status) for r in project.history.runs] == [("run_001", "completed")]


def test_resume_after_cancel_continues_the_same_run(data, tmp_path):
    spec_path = small_spec(data, tmp_path / "proj", "resume", training={"epochs": 2})
    token, events = CancelToken(), []

    def listen(event) -> None:
        events.append(event)
        if event.kind == EventKind.STEP and event.step == 2:
            token.cancel("stopped by the test")

    cancelled = train_points(spec_path, listener=listen, cancel=token)
    assert cancelled.status == "cancelled" and cancelled.run_id == "run_001"
    assert cancelled.metrics["steps"] == 2 and cancelled.checkpoint_id == "unet_run_001"
    project = TrainingProject.open(tmp_path / "proj")
    assert project.checkpoints.get("unet_run_001").status == "cancelled"
    assert project.checkpoints.latest_id is None
    run_dir = project.layout.run_dir("run_001")
    assert (run_dir / "last.ckpt").is_file()
    assert project.history.runs[-1].status == "cancelled" and project.history.runs[-1].reason == "stopped by the test"

    resumed = train_points(spec_path, TrainOptions(resume=True))
    assert resumed.run_id == "run_001" and resumed.status == "completed"
    assert resumed.checkpoint_id == "unet_run_002" and resumed.metrics["epochs_completed"] == 2
    assert resumed.metrics["steps"] == 2 + 4  # continued from the saved state, not from step 0
    project = TrainingProject.open(tmp_path / "proj")
    assert [(c.checkpoint_id, c.status) for c in project.checkpoints.records] == [
        ("unet_run_001", "cancelled"),
        ("unet_run_002", "completed"),
    ]
    assert [(r.run_id, r.status) for r in project.history.runs] == [("run_001", "completed")]
    assert project.history.runs[0].settings["training_mode"] == "point_windows"
    assert project.checkpoints.latest_id == "unet_run_002" and not (run_dir / "last.ckpt").exists()


# ------------------------------------------------------------------------------------------- CLI
def test_cli_dry_run_json_and_one_line_errors(data, tmp_path, capsys):
    spec_path = small_spec(data, tmp_path / "proj", "cli")
    capsys.readouterr()
    assert main(["train-points", str(spec_path), "--dry-run", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["points"] == {"train": 18, "val": 6, "dropped": 0}
    assert payload["cache_bytes_estimate"] > 0 and payload["regions"]["val"] == ["region 3"]

    assert main(["train-points", str(spec_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "train 18, val 6, dropped 0" in out and "GiB estimated" in out

    broken = yaml.safe_load(spec_path.read_text())
    broken["trainig"] = broken.pop("training")
    bad = data / "spec_broken.yaml"
    bad.write_text(yaml.safe_dump(broken))
    for argv in (["train-points", str(bad), "--dry-run", "--json"], ["train-points", str(bad), "--json"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in captured.err, lines
        assert lines[0].startswith("nta train-points: error: ") and "key 'trainig'" in lines[0]
        assert "did you mean 'training'" in lines[0]
    assert main(["train-points", str(data / "missing.yaml"), "--dry-run"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "proj").exists()


# ------------------------------------------------------------------------------- precomputed
def _write_precomputed_volume(path: Path, data: np.ndarray, chunk=(32, 32, 8)) -> None:
    import tensorstore as ts

    store = ts.open(
        {
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": str(path) + "/"},
            "multiscale_metadata": {"type": "image", "data_type": np.dtype(data.dtype).name, "num_channels": 1},
            "scale_metadata": {
                "size": list(data.shape[::-1]),
                "resolution": [4, 4, 40],
                "encoding": "raw",
                "chunk_size": list(chunk),
                "voxel_offset": [0, 0, 0],
            },
        },
        create=True,
        delete_existing=True,
    ).result()
    store.write(data.transpose(2, 1, 0)[..., None]).result()  # x, y, z, channel


def _write_precomputed_lines(path: Path, synapses) -> None:
    neuroglancer = pytest.importorskip("neuroglancer")
    from neuroglancer import write_annotations

    space = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[4, 4, 40])
    writer = write_annotations.AnnotationWriter(coordinate_space=space, annotation_type="line")
    for s in synapses:
        writer.add_line(np.array(s["start"][::-1]), np.array(s["end"][::-1]), id=int(s["id"]))
    writer.write(str(path))


def test_precomputed_volumes_and_annotations_count_like_zarr_and_csv(data, em, tmp_path):
    pytest.importorskip("tensorstore")
    folder = tmp_path / "precomputed"
    folder.mkdir()
    _write_precomputed_volume(folder / "img", em.image)
    _write_precomputed_volume(folder / "pre", em.label0)
    _write_precomputed_volume(folder / "post", em.label1)
    _write_precomputed_lines(folder / "synapses", em.synapses)
    (folder / "regions.json").write_text(json.dumps(em.regions))
    spec = yaml.safe_load(small_spec(data, tmp_path / "zarr_proj", "zarr_twin").read_text())
    zarr_report = dry_run(data / "spec_zarr_twin.yaml")
    spec["project"] = str(tmp_path / "proj")
    spec["layers"] = {
        "img": {"path": "img"},
        "label0": {"path": "pre"},
        "label1": {"path": "post"},
        "points": {"path": "synapses"},
    }
    spec_path = write_yaml(folder / "spec.yaml", spec)
    report = dry_run(spec_path)
    assert report["points"] == zarr_report["points"] == {"train": 18, "val": 6, "dropped": 0}
    assert report["regions"] == zarr_report["regions"]
    assert report["cache_bytes_estimate"] == zarr_report["cache_bytes_estimate"]

    # the same windows: the precomputed cache holds the same voxels and points as the Zarr one
    pspec, pbase = load_spec(spec_path)
    zspec, zbase = load_spec(data / "spec_zarr_twin.yaml")
    pre, zarr = load_point_inputs(pspec, pbase, spec_path), load_point_inputs(zspec, zbase, data / "spec_zarr_twin.yaml")
    for a, b in zip(pre.train_regions + pre.val_regions, zarr.train_regions + zarr.val_regions, strict=True):
        assert a.box == b.box
        for key in ("img", "label0", "label1"):
            np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
        np.testing.assert_allclose(a.indexer.points, b.indexer.points, atol=1e-4)

    # wrong resolution in the spec: the precomputed volume's own voxel size disagrees
    spec["resolution"] = [40, 8, 8]
    with pytest.raises(DatasetError, match="voxel size"):
        dry_run(write_yaml(folder / "spec_bad.yaml", spec))


def write_yaml(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------------ other targets, inputs
def test_line_segment_targets_train_one_epoch(data, tmp_path):
    spec_path = small_spec(
        data,
        tmp_path / "proj",
        "lines",
        targets="line_segments",
        layers={"img": {"path": "img.zarr"}, "segmentation": {"path": "seg.zarr"}, "points": {"path": "synapses.csv"}},
    )
    spec = yaml.safe_load(spec_path.read_text())
    assert set(spec["layers"]) == {"img", "segmentation", "points"}
    report = dry_run(spec_path)
    assert report["points"]["train"] + report["points"]["val"] + report["points"]["dropped"] == 24
    result = train_points(spec_path)
    assert result.status == "completed" and result.checkpoint_id == "unet_run_001"
    assert result.points["train"] == report["points"]["train"] and set(result.metrics["per_channel"]) == {"pre", "post"}
    assert read_checkpoint(result.checkpoint_path)[2]["metadata"]["targets"] == "line_segments"

    # point annotations cannot give line targets: each is dropped with a reason
    points_spec = small_spec(
        data,
        tmp_path / "proj2",
        "lines_points",
        targets="line_segments",
        layers={"img": {"path": "img.zarr"}, "segmentation": {"path": "seg.zarr"}, "points": {"path": "points.csv"}},
    )
    with pytest.raises(DatasetError, match="no synapse points"):
        train_points(points_spec)
    report = dry_run(points_spec)
    assert report["points"]["train"] == report["points"]["val"] == 0
    assert report["dropped_reasons"] == {"point annotations (line targets need lines)": 24}


def test_epochs_are_chosen_for_the_time_budget_when_unset(data, tmp_path):
    from napari_training_assistant.train.autoconfig.point_epochs import POINT_EPOCHS

    spec_path = small_spec(data, tmp_path / "proj", "auto", training={"epochs": None, "time_budget_minutes": 0.001})
    result = train_points(spec_path)
    assert result.status == "completed" and result.metrics["epochs_completed"] == POINT_EPOCHS[0]  # the least
    (decision,) = [d for d in result.decisions if d["setting"] == "epochs"]
    assert decision["value"] == POINT_EPOCHS[0] and "0.001 min" in decision["reason"] and "measured" in decision["reason"]
    fixed = train_points(small_spec(data, tmp_path / "proj2", "fixed"))  # epochs: 1 in the spec
    assert fixed.metrics["epochs_completed"] == 1 and not [d for d in fixed.decisions if d["setting"] == "epochs"]


def test_centre_marker_adds_an_input_channel(data, tmp_path):
    spec_path = small_spec(data, tmp_path / "proj", "marker", training={"centre_marker": True})
    assert dry_run(spec_path)["architecture"]["input_channels"] == 2
    result = train_points(spec_path)
    assert result.status == "completed"
    project = TrainingProject.open(tmp_path / "proj")
    assert project.checkpoints.get(result.checkpoint_id).architecture["input_channels"] == 2
    _, architecture, meta = read_checkpoint(result.checkpoint_path)
    assert architecture["input_channels"] == 2 and meta["metadata"]["centre_marker"] is True


# ------------------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_full_synthetic_spec_beats_the_constant_predictor(tmp_path):
    """The generated spec (partner regime) learns which side is pre and which post: a fixed number of epochs
    (the same quality on a loaded machine) on a volume of 144 training synapses."""
    paths = write_synapse_dataset(tmp_path / "data", shape=(32, 256, 256))
    spec = yaml.safe_load(paths["spec"].read_text())
    assert spec["window_size"] == [8, 48, 48] and spec["targets"] == "line_segments" and "epochs" not in spec["training"]
    spec["training"]["epochs"] = 20
    paths["spec"].write_text(yaml.safe_dump(spec, sort_keys=False))
    result = train_points(paths["spec"])
    assert result.status == "completed" and result.metrics["epochs_completed"] == 20
    for name, scores in result.metrics["per_channel"].items():
        assert scores["dice"] >= scores["constant_predictor_dice"] + 0.1, (name, result.metrics["per_channel"])


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_registers_one_checkpoint(data, tmp_path):
    spec_path = small_spec(data, tmp_path / "proj", "ddp")
    result = subprocess.run(
        [*NTA, "train-points", str(spec_path), "--device", "cpu", "--devices", "2", "--epochs", "1", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["status"] == "completed" and payload["checkpoint_id"] == "unet_run_001"
    assert payload["benchmark"] is None and payload["points"]["train"] == 18
    assert payload["metrics"]["dice"] is not None and set(payload["metrics"]["per_channel"]) == {"pre", "post"}
    project = TrainingProject.open(tmp_path / "proj")
    assert [c.checkpoint_id for c in project.checkpoints.records] == ["unet_run_001"]
    assert [(r.run_id, r.status) for r in project.history.runs] == [("run_001", "completed")]
    assert project.checkpoints.get("unet_run_001").settings["devices"] == 2
    assert [p.name for p in (project.layout.history_dir / "runs").iterdir()] == ["run_001"]
