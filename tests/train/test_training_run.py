"""End-to-end training runs on tiny projects: what a run writes into the project, losses, starting points."""

from __future__ import annotations

import json

import pytest
import torch

from napari_training_assistant.model import build_model, read_checkpoint
from napari_training_assistant.model.weights_import import import_weights
from napari_training_assistant.project.checkpoints import file_sha256
from napari_training_assistant.project.errors import (
    CheckpointError,
    IncompatibleArchitectureError,
    ProjectError,
)
from napari_training_assistant.train import EventKind, train_project
from napari_training_assistant.train.autoconfig import PLANNED_SETTINGS
from napari_training_assistant.train.losses import SegmentationLoss
from napari_training_assistant.train.module import SegmentationModule
from napari_training_assistant.train.plan import prepare_run

CHECKPOINT_FIELDS = (
    "checkpoint_id",
    "parent_id",
    "status",
    "training_mode",
    "dataset_pair_ids",
    "image_count",
    "patch_count",
    "split",
    "metrics",
    "timestamp",
    "path",
    "file_sha256",
    "architecture",
    "starting_weights",
    "architecture_summary",
    "manifest_sha256",
    "run_id",
    "settings",
)


def _state_equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def _spy_training_steps(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = SegmentationModule.training_step

    def counting(self, batch, batch_idx):
        calls.append(batch_idx)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SegmentationModule, "training_step", counting)
    return calls


# --------------------------------------------------------------------------- a full binary 2D run
def test_binary_run_registers_a_fully_described_checkpoint(make_project, fast_options):
    project = make_project()
    train_ids, val_ids, bench_ids = (project.dataset.ids(s) for s in ("train", "val", "benchmark"))
    assert train_ids and val_ids and bench_ids

    result = train_project(project, fast_options())

    assert result.status == "completed" and result.run_id == "run_001"
    assert result.checkpoint_id == "unet_run_001" and result.parent_id is None
    record = project.checkpoints.get(result.checkpoint_id)
    dumped = record.model_dump(mode="json")
    assert all(name in dumped for name in CHECKPOINT_FIELDS)
    assert record.status == "completed" and record.parent_id is None and record.run_id == "run_001"
    assert record.training_mode == "pairs"
    assert record.dataset_pair_ids == sorted(train_ids + val_ids)
    assert not set(bench_ids) & set(record.dataset_pair_ids)
    assert record.image_count == len(train_ids) + len(val_ids)
    assert record.patch_count == 4  # samples_per_epoch x 1 epoch
    assert record.split == {"train": train_ids, "val": val_ids}
    for name in ("dice", "iou"):
        assert 0.0 <= record.metrics[name] <= 1.0
    assert len(record.metrics["dice_per_class"]) == 1 and record.metrics["steps"] == 2
    assert record.architecture == project.architecture.model_dump(mode="json")
    assert record.architecture["depth"] == 2 and record.architecture["base_channels"] == 8
    assert record.starting_weights == {"choice": "scratch"}
    assert record.architecture_summary["parameters"] > 0 and "U-Net" in record.architecture_summary["text"]
    assert record.manifest_sha256 == project.dataset.content_sha256()
    assert record.settings["train_pairs"] == train_ids and record.settings["val_pairs"] == val_ids
    assert (
        record.settings["resolved"]["batch_size"] == 2
        and record.settings["resolved"]["samples_per_epoch"] == 4
    )
    assert record.settings["training"]["epochs"] == 1 and record.settings["accelerator"] == "cpu"

    # the file: registered hash, latest.pt a byte copy, metadata inside
    path = project.layout.absolute(record.path)
    assert path.name == "unet_run_001.pt" and file_sha256(path) == record.file_sha256
    assert project.checkpoints.latest_id == "unet_run_001"
    assert project.layout.latest_checkpoint.read_bytes() == path.read_bytes()
    assert result.checkpoint_path == str(path.resolve())
    _, stored_arch, meta = read_checkpoint(path)
    assert stored_arch["depth"] == 2 and meta["metadata"]["checkpoint_id"] == "unet_run_001"

    # history: the run with timings, the log, the run folder, the benchmark row
    (run,) = project.history.runs
    assert run.run_id == "run_001" and run.status == "completed" and run.checkpoint_id == "unet_run_001"
    assert run.ended_at is not None and run.duration_s is not None and run.duration_s > 0
    assert run.timings["fit_s"] > 0 and "benchmark_s" in run.timings
    log_lines = project.layout.training_log.read_text().splitlines()
    assert any("run_001 started" in line for line in log_lines)
    assert any("run_001 completed" in line and "unet_run_001" in line for line in log_lines)
    run_dir = project.layout.run_dir("run_001")
    assert (run_dir / "metrics.csv").is_file() and (run_dir / "curves.png").stat().st_size > 0
    assert not (run_dir / "last.ckpt").exists()  # resume state is dropped once a run completes
    rows = project.history.benchmarks()
    assert [r["checkpoint_id"] for r in rows] == ["unet_run_001"]
    assert rows[0]["n_images"] == len(bench_ids) and result.benchmark["dice"] == rows[0]["dice"]

    # the manifest knows which checkpoints used each pair
    used = {p.pair_id: p.used_by_checkpoints for p in project.dataset.pairs}
    assert all(used[p] == ["unet_run_001"] for p in train_ids + val_ids)
    assert all(used[p] == [] for p in bench_ids)


def test_auto_configuration_decisions_are_written_to_the_project(make_project, fast_options):
    project = make_project()
    assert project.config.auto_configuration_decisions == []
    result = train_project(project, fast_options(batch_size=None))
    decisions = {d.setting: d for d in project.config.auto_configuration_decisions}
    assert set(decisions) <= set(PLANNED_SETTINGS)
    assert {"device", "precision", "depth", "patch_size", "batch_size", "samples_per_epoch"} <= set(decisions)
    assert decisions["batch_size"].source == "auto" and decisions["batch_size"].reason
    assert decisions["samples_per_epoch"].source == "user" and decisions["samples_per_epoch"].value == 4
    assert decisions["device"].source == "user" and decisions["device"].value == "cpu"
    assert decisions["patch_size"].value == [48, 48]
    assert result.decisions == [
        d.model_dump(mode="json") for d in project.config.auto_configuration_decisions
    ]


def test_one_patch_size_value_applies_to_every_axis(make_project, fast_options):
    project = make_project()
    prepared = prepare_run(project, fast_options(patch_size=[32]), "run_001")
    assert prepared.data.resolved["patch_size"] == [32, 32]


def test_a_patch_size_with_the_wrong_number_of_axes_is_a_project_error(make_project, fast_options):
    project = make_project()
    with pytest.raises(ProjectError, match="patch_size"):
        train_project(project, fast_options(patch_size=[32, 32, 32]))
    assert project.history.runs == []


# --------------------------------------------------------------------------- output modes and losses
@pytest.mark.parametrize(
    ("spatial_dims", "output_mode", "num_classes", "loss", "per_class"),
    [
        ("2d", "binary", 2, "dice", 1),
        ("2d", "multiclass", 3, "ce", 2),
        ("2d", "multilabel", 2, "bce", 2),
        ("3d", "binary", 2, None, 1),
    ],
    ids=["binary-dice", "multiclass-ce", "multilabel-bce", "3d-binary"],
)
def test_each_output_mode_trains_with_the_architectures_loss(
    make_project, fast_options, monkeypatch, spatial_dims, output_mode, num_classes, loss, per_class
):
    project = make_project(
        spatial_dims=spatial_dims,
        output_mode=output_mode,
        num_classes=num_classes,
        architecture={"loss": loss} if loss else None,
    )
    expected_loss = project.architecture.loss
    used: list[tuple[str, str]] = []
    original = SegmentationLoss.forward

    def spy(self, logits, target, valid=None):
        used.append((self.name, self.mode))
        return original(self, logits, target, valid)

    monkeypatch.setattr(SegmentationLoss, "forward", spy)
    result = train_project(project, fast_options())

    assert result.status == "completed"
    assert used and set(used) == {(expected_loss, output_mode)}
    record = project.checkpoints.get(result.checkpoint_id)
    assert (
        record.architecture["spatial_dims"] == spatial_dims and record.architecture["loss"] == expected_loss
    )
    for name in ("dice_per_class", "iou_per_class"):
        assert len(result.metrics[name]) == per_class
        assert len(result.benchmark[name]) == per_class
    assert all(v is None or 0.0 <= v <= 1.0 for v in result.metrics["dice_per_class"])


@pytest.mark.parametrize(
    ("output_mode", "num_classes", "default_loss"),
    [("binary", 2, "bce_dice"), ("multiclass", 3, "ce_dice"), ("multilabel", 2, "bce_dice")],
)
def test_the_module_uses_the_default_loss_of_each_mode(
    make_project, fast_options, output_mode, num_classes, default_loss
):
    project = make_project(output_mode=output_mode, num_classes=num_classes, splits=("train", "val"))
    prepared = prepare_run(project, fast_options(), "run_001")
    assert prepared.module.loss_fn.name == default_loss == project.architecture.loss
    assert prepared.module.loss_fn.mode == output_mode


# --------------------------------------------------------------------------- starting points
def test_runs_from_latest_and_from_a_checkpoint_record_their_parent(make_project, fast_options):
    project = make_project()
    first = train_project(project, fast_options())
    second = train_project(project, fast_options(start="latest"))
    assert second.parent_id == first.checkpoint_id == "unet_run_001"
    record = project.checkpoints.get(second.checkpoint_id)
    assert record.parent_id == "unet_run_001"
    assert (
        record.starting_weights["choice"] == "latest"
        and record.starting_weights["source_id"] == "unet_run_001"
    )
    assert record.starting_weights["sha256"] == project.checkpoints.get("unet_run_001").file_sha256
    assert project.history.runs[-1].parent_id == "unet_run_001"
    assert project.history.benchmarks()[-1]["delta_dice"] is not None  # compared with the parent's row

    # checkpoint:ID loads exactly that file's weights (prepare_run writes nothing)
    prepared = prepare_run(project, fast_options(start="checkpoint:unet_run_001"), "run_x")
    state, _, _ = read_checkpoint(project.checkpoints.path_of("unet_run_001"))
    assert _state_equal(prepared.module.model.state_dict(), state)
    third = train_project(project, fast_options(start="checkpoint:unet_run_001"))
    assert third.parent_id == "unet_run_001" and third.checkpoint_id == "unet_run_003"
    assert project.checkpoints.get("unet_run_003").starting_weights["spec"] == "checkpoint:unet_run_001"
    assert [r.run_id for r in project.history.runs] == ["run_001", "run_002", "run_003"]


@pytest.mark.parametrize("prefix", ["", "module."])
def test_start_from_imported_weights_loads_them(make_project, fast_options, tmp_path, prefix):
    project = make_project()
    torch.manual_seed(1234)
    source = build_model(project.architecture.model_dump(mode="json"))
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(0.5)  # unlike any fresh initialisation
    weights = {prefix + k: v for k, v in source.state_dict().items()}
    torch.save(weights, tmp_path / "pretrained.pt")
    imported = import_weights(project, tmp_path / "pretrained.pt")

    prepared = prepare_run(project, fast_options(start=f"imported:{imported.model_id}"), "run_001")
    assert _state_equal(prepared.module.model.state_dict(), source.state_dict())
    assert prepared.start.parent_id is None
    assert project.history.runs == [] and project.checkpoints.records == []  # preparing writes nothing

    result = train_project(project, fast_options(start=f"imported:{imported.model_id}"))
    record = project.checkpoints.get(result.checkpoint_id)
    assert record.parent_id is None
    assert record.starting_weights["choice"] == "imported"
    assert (
        record.starting_weights["source_id"] == imported.model_id
        and record.starting_weights["sha256"] == imported.sha256
    )


def test_an_incompatible_start_fails_before_training_and_records_nothing(
    make_project, fast_options, monkeypatch
):
    project = make_project()
    train_project(project, fast_options())
    project.set_architecture(project.architecture.model_dump() | {"depth": 3, "preset": "custom"})
    runs_before = project.history.runs
    registry_before = project.checkpoints.registry.model_dump(mode="json")
    log_before = project.layout.training_log.read_text()
    latest_before = project.layout.latest_checkpoint.read_bytes()
    steps = _spy_training_steps(monkeypatch)

    with pytest.raises(IncompatibleArchitectureError) as caught:
        train_project(project, fast_options(start="latest"))

    message = str(caught.value)
    assert "depth: project has 3, weights have 2" in message and "unet_run_001" in message
    assert steps == []
    assert project.history.runs == runs_before
    assert project.checkpoints.registry.model_dump(mode="json") == registry_before
    assert project.layout.training_log.read_text() == log_before
    assert project.layout.latest_checkpoint.read_bytes() == latest_before
    assert not project.layout.run_dir("run_002").exists()
    assert project.architecture.depth == 3  # the user's architecture is left as it is


def test_an_unknown_checkpoint_is_a_clear_error(make_project, fast_options):
    project = make_project()
    with pytest.raises(CheckpointError, match="no completed checkpoint yet"):
        train_project(project, fast_options(start="latest"))
    train_project(project, fast_options())
    with pytest.raises(CheckpointError, match="no checkpoint 'unet_run_099'.*unet_run_001"):
        train_project(project, fast_options(start="checkpoint:unet_run_099"))
    with pytest.raises(ProjectError, match="use scratch, latest, best, checkpoint:ID or imported:ID"):
        train_project(project, fast_options(start="yesterday"))
    assert [r.run_id for r in project.history.runs] == ["run_001"]


# --------------------------------------------------------------------------- data
def test_a_project_without_training_pairs_is_refused(make_project, fast_options):
    project = make_project(splits=("benchmark", "benchmark"))
    with pytest.raises(ProjectError, match="no training pairs.*2 benchmark pairs are never trained on"):
        train_project(project, fast_options())
    assert project.history.runs == [] and project.checkpoints.records == []
    assert not (project.layout.history_dir / "runs").exists()


def test_benchmark_pairs_never_reach_the_sampler(make_project, fast_options):
    project = make_project(splits=("train", "benchmark", "val", "benchmark", "train"))
    bench_ids = set(project.dataset.ids("benchmark"))
    prepared = prepare_run(project, fast_options(), "run_001")
    assert {p.pair_id for p in prepared.train_dataset.pairs} == set(project.dataset.ids("train"))
    assert {p.pair_id for p in prepared.val_dataset.pairs} == set(project.dataset.ids("val"))
    assert not bench_ids & {p.pair_id for p in prepared.train_dataset.pairs + prepared.val_dataset.pairs}


def test_without_val_pairs_the_run_validates_on_the_training_pairs(make_project, fast_options):
    project = make_project(splits=("train", "train", "benchmark"))
    result = train_project(project, fast_options())
    record = project.checkpoints.get(result.checkpoint_id)
    assert record.split["val"] == [] and "validating on the training pairs" in result.metrics["validation"]
    assert record.dataset_pair_ids == project.dataset.ids("train")


# --------------------------------------------------------------------------- progress events
def test_progress_events_arrive_in_order(make_project, fast_options):
    project = make_project()
    events = []
    train_project(project, fast_options(epochs=2), listener=events.append)

    kinds = [e.kind for e in events]
    assert kinds == [
        EventKind.STARTED,
        *[EventKind.STEP] * 2,
        EventKind.EPOCH,
        *[EventKind.STEP] * 2,
        EventKind.EPOCH,
        EventKind.FINISHED,
    ]
    started = events[0]
    assert started.epochs == 2 and "run_001" in started.message
    steps = [e for e in events if e.kind == EventKind.STEP]
    assert [e.step for e in steps] == [1, 2, 3, 4] and all(e.steps == 4 for e in steps)
    assert [e.epoch for e in steps] == [1, 1, 2, 2]
    assert all(e.loss is not None and e.loss > 0 for e in steps)
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in steps[1:])
    assert steps[-1].eta_s == pytest.approx(0.0)
    epochs = [e for e in events if e.kind == EventKind.EPOCH]
    assert [e.epoch for e in epochs] == [1, 2]
    for event in epochs:
        assert {"train_loss", "val_loss", "val_dice", "val_iou"} <= set(event.metrics)
        assert event.loss == event.metrics["train_loss"]
    finished = events[-1]
    assert finished.message.startswith("completed") and finished.metrics["dice"] is not None
    json.dumps([e.metrics for e in events])  # plain values a widget or a log can take


def test_auto_configuration_may_shrink_only_the_untouched_default_architecture(tmp_path, fast_options):
    """On a CPU the seed's default U-Net (depth 4, base 32) is replaced by a small one, with the reason;
    an architecture the user chose is kept."""
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei
    from napari_training_assistant.project import TrainingProject
    from napari_training_assistant.train import train_project

    project = TrainingProject.create(tmp_path / "default", "default")
    for seed, split in enumerate(("train", "val")):
        image, labels = make_nuclei((48, 48), n_nuclei=3, radius_range=(4.0, 6.0), seed=seed)
        project.dataset.add(image, labels, split=split)
    train_project(project, fast_options())
    decisions = {d.setting: d for d in project.config.auto_configuration_decisions}
    assert decisions["depth"].source == "auto" and decisions["base_channels"].value == 16
    assert "CPU" in decisions["base_channels"].reason
    assert project.architecture.base_channels == 16  # the planned architecture is written into the project
