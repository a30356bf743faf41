"""Point-windowed training from a YAML spec: layers + regions + synapses -> cached windows -> the same
run life cycle, checkpoint registry and history as pair training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..data.point_windows import PointWindowDataset
from ..model import describe
from ..project import TrainingProject
from ..project.errors import ProjectError
from ..project.schemas import ArchitectureConfig
from ..project.schemas.project_config import AutoConfigDecision
from .augment import Augmenter, WorkerAugmenter
from .autoconfig.constants import CPU_FLOPS_PER_CORE
from .autoconfig.device import cpu_cores
from .autoconfig.point_epochs import (
    GPU_FLOPS,
    EpochPlan,
    estimated_seconds_per_sample,
    measured_seconds_per_sample,
    point_epochs,
)
from .events import CancelToken, Listener
from .options import TrainOptions, resolve_device
from .point_extras import point_window_module
from .point_inputs import PointInputs, load_point_inputs
from .point_spec import PointSpec, TrainingSpec
from .prepared import PreparedRun
from .starting import resolve_start


@dataclass
class PointData:
    """The data part of a point-windowed run: windows of the spec's cached regions around each synapse."""

    spec: PointSpec
    inputs: PointInputs
    train_dataset: PointWindowDataset
    val_dataset: PointWindowDataset
    val_note: str = ""
    kind: Literal["point_windows"] = "point_windows"

    def train_sampler(self):
        if not self.spec.training.samples_per_epoch:
            return None  # every training point once per epoch, shuffled by the loader
        from torch.utils.data import RandomSampler

        return RandomSampler(self.train_dataset, replacement=True, num_samples=self.spec.training.samples_per_epoch)

    def dataset_hold(self) -> tuple[str | None, list[str]]:
        """Point windows train on volumes named by the spec, not on the project's pairs."""
        return None, []

    def pair_versions(self) -> dict[str, tuple[str, str, str]]:
        return {}

    def point_counts(self) -> dict[str, Any]:
        return {"train": len(self.train_dataset), "val": len(self.val_dataset), "dropped": self.inputs.dropped_total, "dropped_reasons": self.inputs.dropped}

    def settings_record(self, run: PreparedRun) -> dict[str, Any]:
        return {
            "spec": self.spec.model_dump(mode="json"),
            "spec_path": str(self.inputs.spec_path),
            "architecture": run.architecture,
            "start": run.start.snapshot,
            "points": self.point_counts(),
            "regions": {"train": self.inputs.region_names("train"), "val": self.inputs.region_names("val")},
            "accelerator": run.accelerator,
            "devices": run.devices,
            "precision": run.precision,
        }

    def summary(self, run: PreparedRun) -> str:
        counts = self.point_counts()
        window = "x".join(map(str, self.spec.window_size))
        auto = f" (auto: {self.spec.training.time_budget_minutes:g} min budget)" if run.decisions else ""
        return (
            f"{run.run_id}: point windows {window}, {counts['train']} train / {counts['val']} val points "
            f"({counts['dropped']} dropped), batch {run.batch_size}, {run.epochs} epochs{auto}, "
            f"3D U-Net depth {run.architecture['depth']} base {run.architecture['base_channels']}, "
            f"{run.accelerator} x{run.devices} ({run.precision}), cache {self.inputs.cache_bytes / 2**20:.0f} MiB"
        )

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {
            "normalization": "region",
            "window_size": list(self.spec.window_size),
            "centre_marker": self.spec.training.centre_marker,
            "targets": self.spec.targets,
            "resolution": list(self.spec.resolution),
            "axis_order": self.spec.axis_order,
        }

    def registration_fields(self) -> dict[str, Any]:
        return {
            "training_mode": "point_windows",
            "dataset_pair_ids": [],
            "image_count": len(self.inputs.train_regions) + len(self.inputs.val_regions),
            "split": {"train": self.inputs.region_names("train"), "val": self.inputs.region_names("val")},
        }


def architecture_for(spec: PointSpec) -> ArchitectureConfig:
    model = spec.model
    levels = model.anisotropic_levels
    if levels is None:  # pool only in-plane while z voxels are much thicker than in-plane ones
        axes = {a: r for a, r in zip(spec.axis_order, spec.resolution, strict=True)}
        ratio, levels, level = axes["z"] / min(axes["y"], axes["x"]), [], 0
        while ratio > 2.0 and level < model.depth:
            levels.append(level)
            ratio /= 2
            level += 1
    return ArchitectureConfig(
        spatial_dims="3d",
        preset="custom",
        depth=model.depth,
        base_channels=model.base_channels,
        normalization=model.normalization,
        upsampling=model.upsampling,
        input_channels=2 if spec.training.centre_marker else 1,
        output_mode="multilabel",
        output_channels=model.output_channels,
        activation="sigmoid",
        loss="bce_dice" if spec.training.dice_weight > 0 else "bce",
        threshold=model.threshold,
        anisotropic_levels=levels,
    )


def plan_epochs(spec: PointSpec, architecture: dict, inputs: PointInputs, accelerator: str, model, processes: int = 1) -> EpochPlan:
    """Epochs from the number of points and the spec's time budget (`autoconfig.point_epochs`); measured on
    a single CPU process, estimated (the same on every DDP rank) otherwise."""
    channels = architecture["input_channels"]
    if accelerator == "cpu" and processes == 1:
        per_sample = measured_seconds_per_sample(model, spec.window_size, channels)
        how = f"measured on {cpu_cores()} CPU cores"
    else:
        rate = CPU_FLOPS_PER_CORE["3d"] * cpu_cores() if accelerator == "cpu" else GPU_FLOPS
        levels = architecture.get("anisotropic_levels") or []
        per_sample = estimated_seconds_per_sample(
            spec.window_size, architecture["depth"], architecture["base_channels"], levels, channels, architecture["output_channels"], rate
        ) / processes
        how = f"estimated from FLOPs on {accelerator}, {processes} process(es)"
    return point_epochs(
        seconds_per_sample=per_sample,
        how=how,
        train_points=inputs.point_count("train"),
        val_points=inputs.point_count("val"),
        budget_minutes=spec.training.time_budget_minutes,
    )


def window_augmenter(training: TrainingSpec) -> WorkerAugmenter | None:
    """Flips, in-plane rotations and intensity jitter: pre/post semantics survive (both sides move alike)."""
    if not training.augment:
        return None
    augmenter = Augmenter(flips=True, rot90=True, intensity_jitter=True, spatial_dims="3d", rng=training.seed)
    return WorkerAugmenter(augmenter, training.seed)


def project_for_spec(spec: PointSpec, base: Path, architecture: ArchitectureConfig, create: bool = True) -> TrainingProject:
    folder = (base / spec.project).resolve() if not Path(spec.project).is_absolute() else Path(spec.project)
    if TrainingProject.is_project(folder):
        return TrainingProject.open(folder)
    if not create:
        raise ProjectError(f"{folder} is not a Training Project Folder yet: run without --dry-run to create it")
    return TrainingProject.create(
        folder,
        folder.name,
        spatial_dims="3d",
        output_mode="multilabel",
        architecture=architecture.model_dump(exclude={"schema_version", "spatial_dims", "output_mode", "num_classes"}),
        class_names=["pre", "post"][: architecture.output_channels] or None,
        allow_non_empty=True,
    )


def prepare_point_run(project: TrainingProject, options: TrainOptions, run_id: str, *, spec: PointSpec, inputs: PointInputs) -> PreparedRun:
    training = spec.training
    architecture = architecture_for(spec)
    current = project.architecture
    arch_dict = architecture.model_dump(mode="json")
    accelerator, indices = resolve_device(options.device or training.device)
    torch.manual_seed(options.seed if options.seed is not None else training.seed)  # initial weights, shuffling
    start = resolve_start(project, arch_dict, options.start or "scratch")
    channel_names = ("pre", "post") if architecture.output_channels == 2 else tuple(spec.label_keys())
    datasets = {
        split: PointWindowDataset(
            regions,
            target_form=spec.targets,
            label_keys=spec.label_keys() if spec.targets == "labels" else ("label0", "label1"),
            centre_marker=training.centre_marker,
            loss_crop_pad=training.loss_crop_pad,
            min_nonzero_fraction=training.min_nonzero_fraction,
            augment=window_augmenter(training) if split == "train" else None,
        )
        for split, regions in (("train", inputs.train_regions), ("val", inputs.val_regions))
    }
    epochs = options.epochs or training.epochs
    epoch_plan = None
    if epochs is None:
        devices = len(indices) if indices else (options.devices or training.devices)
        processes = devices * max(options.num_nodes, training.num_nodes)
        epoch_plan = plan_epochs(spec, arch_dict, inputs, accelerator, start.model, processes)
        epochs = epoch_plan.epochs
    module = point_window_module(
        start.model,
        arch_dict,
        learning_rate=options.learning_rate or training.lr,
        epochs=epochs,
        class_balance=training.class_balance,
        balance_clip=training.balance_clip,
        dice_weight=training.dice_weight,
        weight_decay=training.weight_decay,
        montage_dir=project.layout.run_dir(run_id),
        channel_names=channel_names,
    )
    precision = options.precision or training.precision
    return PreparedRun(
        project=project,
        options=options,
        run_id=run_id,
        data=PointData(spec=spec, inputs=inputs, train_dataset=datasets["train"], val_dataset=datasets["val"]),
        architecture=arch_dict,
        architecture_changed=current != architecture,
        start=start,
        accelerator=accelerator,
        device_indices=indices,
        module=module,
        epochs=epochs,
        batch_size=options.batch_size or training.batch_size,
        precision=precision if precision != "auto" else ("bf16-mixed" if accelerator == "cuda" else "32"),
        num_workers=training.num_workers,
        planned_devices=training.devices,
        decisions=[AutoConfigDecision(setting="epochs", value=epochs, reason=epoch_plan.reason)] if epoch_plan else None,
        extra={"architecture_summary": describe(arch_dict)},
    )


def dry_run_report(spec: PointSpec, inputs: PointInputs) -> dict[str, Any]:
    return {
        "project": spec.project,
        "points": {"train": inputs.point_count("train"), "val": inputs.point_count("val"), "dropped": inputs.dropped_total},
        "dropped_reasons": inputs.dropped,
        "regions": {"train": inputs.region_names("train"), "val": inputs.region_names("val")},
        "cache_bytes_estimate": inputs.cache_bytes,
        "cache_gib_estimate": round(inputs.cache_bytes / 2**30, 4),
        "window_size": spec.window_size,
        "architecture": architecture_for(spec).model_dump(mode="json"),
    }





def train_points(
    spec_path: str | Path,
    options: TrainOptions | None = None,
    *,
    listener: Listener | None = None,
    cancel: CancelToken | None = None,
    launcher: str = "python",
):
    """Train from a spec file: everything is read and checked before the project is created or written."""
    from .point_spec import load_spec
    from .run import execute_run

    spec, base = load_spec(spec_path)
    inputs = load_point_inputs(spec, base, Path(spec_path))
    project = project_for_spec(spec, base, architecture_for(spec))
    options = options or TrainOptions()
    if options.num_nodes == 1 and spec.training.num_nodes > 1:
        options.num_nodes = spec.training.num_nodes

    def prepare(project: TrainingProject, options: TrainOptions, run_id: str) -> PreparedRun:
        return prepare_point_run(project, options, run_id, spec=spec, inputs=inputs)

    return execute_run(project, options, prepare, "point_windows", listener=listener, cancel=cancel, launcher=launcher)


def dry_run(spec_path: str | Path) -> dict[str, Any]:
    """Resolve the spec, read regions and annotations, count points, estimate the cache; train nothing."""
    from .point_spec import load_spec

    spec, base = load_spec(spec_path)
    inputs = load_point_inputs(spec, base, Path(spec_path), read=False)
    return dry_run_report(spec, inputs)
