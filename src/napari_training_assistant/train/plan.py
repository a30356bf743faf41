"""Everything a run needs, resolved before anything is written: settings, plan, data, start, module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..model import describe
from ..project import TrainingProject
from ..project.dataset import pairs_sha256
from ..project.errors import ProjectError
from ..project.schemas import ArchitectureConfig, AutoConfigDecision, TrainingSettings
from .augment import Augmenter
from .autoconfig import fingerprint, image_intensity_stats, plan, planned_architecture
from .module import SegmentationModule
from .options import TrainOptions, resolve_device
from .sampler import PairArrays, PatchSampler, ValidationTiles, load_pairs
from .starting import StartingPoint, resolve_start
from .trainer_factory import RunTrainer

# settings that must stay as the architecture says when weights are loaded into it
ARCHITECTURE_SETTINGS = ("depth", "base_channels", "anisotropic_levels")


@dataclass
class PreparedRun(RunTrainer):
    project: TrainingProject
    options: TrainOptions
    run_id: str
    settings: TrainingSettings
    resolved: dict[str, Any]
    decisions: list[AutoConfigDecision]
    architecture: dict[str, Any]
    architecture_changed: bool
    start: StartingPoint
    train_ids: list[str]
    val_ids: list[str]
    val_note: str
    accelerator: str
    device_indices: list[int] | None
    train_dataset: PatchSampler
    val_dataset: ValidationTiles
    module: SegmentationModule
    pair_versions_seen: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    manifest_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return self.settings.epochs

    @property
    def batch_size(self) -> int:
        return int(self.resolved["batch_size"])

    @property
    def devices(self) -> int:
        return len(self.device_indices) if self.device_indices else (self.options.devices or self.settings.devices)

    @property
    def train_loader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.options.num_workers or int(self.resolved.get("num_workers", 0)),
            persistent_workers=False,
            drop_last=len(self.train_dataset) >= 2 * self.batch_size,
        )

    @property
    def val_loader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=self.batch_size, shuffle=False, num_workers=0)

    def settings_record(self) -> dict[str, Any]:
        return {
            "training": self.settings.model_dump(mode="json"),
            "resolved": {k: v for k, v in self.resolved.items() if _plain(v)},
            "architecture": self.architecture,
            "start": self.start.snapshot,
            "train_pairs": self.train_ids,
            "val_pairs": self.val_ids,
            "validation": self.val_note,
            "accelerator": self.accelerator,
            "devices": self.devices,
            "num_nodes": self.options.num_nodes,
        }

    def dataset_hold(self) -> tuple[str | None, list[str]]:
        """(dataset hash the run saw, pairs it trains or validates on: held while it runs)."""
        return self.manifest_sha256, sorted(set(self.train_ids) | set(self.val_ids))

    def pair_versions(self) -> dict[str, tuple[str, str, str]]:
        return self.pair_versions_seen

    def checkpoint_metadata(self) -> dict[str, Any]:
        """What prediction needs to treat images as training did."""
        return {"normalization": self.settings.normalization, "patch_size": list(self.resolved["patch_size"])}

    def registration_fields(self) -> dict[str, Any]:
        used = sorted(set(self.train_ids) | set(self.val_ids))
        return {
            "training_mode": "pairs",
            "dataset_pair_ids": used,
            "image_count": len(used),
            "split": {"train": self.train_ids, "val": [] if self.val_note else self.val_ids},
        }

    def record_decisions(self, project: TrainingProject) -> None:
        """Write the plan's decisions (and an architecture it changed) into the project."""

        def change(config) -> None:
            config.auto_configuration_decisions = self.decisions

        project.update_config(change)
        if self.architecture_changed:
            project.set_architecture(self.architecture)

    def summary(self) -> str:
        arch = ArchitectureConfig.model_validate(self.architecture)
        patch = "x".join(map(str, self.resolved["patch_size"]))
        return (
            f"{self.run_id}: {len(self.train_ids)} train / {len(self.val_ids)} val pairs{self.val_note and ' (' + self.val_note + ')'}, "
            f"patch {patch}, batch {self.batch_size}, {self.epochs} epochs x {len(self.train_dataset) // self.batch_size} steps, "
            f"{arch.spatial_dims} U-Net depth {arch.depth} base {arch.base_channels}, start {self.start.snapshot.get('spec', 'scratch')}, "
            f"{self.accelerator} x{self.devices} ({self.resolved['precision']})"
        )


def prepare_run(project: TrainingProject, options: TrainOptions, run_id: str) -> PreparedRun:
    options.patch_size_for(project.architecture.spatial_dims)  # a wrong count of values: one line, before anything
    settings = _settings(project, options)
    manifest = project.manifest  # one read: the ids, their versions and the hash agree
    train_ids = [p.pair_id for p in manifest.pairs if p.split == "train"]
    val_ids = [p.pair_id for p in manifest.pairs if p.split == "val"]
    versions = {p.pair_id: (p.image_sha256, p.mask_sha256, p.split) for p in manifest.pairs}
    if not train_ids:
        benchmark = sum(p.split == "benchmark" for p in manifest.pairs)
        raise ProjectError(
            f"{project.root} has no training pairs ({benchmark} benchmark pairs are never trained on): "
            "add pairs with `nta add-pair` or move one with `nta set-split PAIR train`"
        )
    val_note = "" if val_ids else "no val pairs: validating on the training pairs"
    if not val_ids:
        val_ids = list(train_ids)
    accelerator, indices = resolve_device(options.device or settings.device)
    architecture = project.architecture
    train_pairs = load_pairs(project, train_ids, settings.normalization)
    val_pairs = train_pairs if val_note else load_pairs(project, val_ids, settings.normalization)
    start_is_scratch = _starts_from_scratch(project, options)
    keep_reason = _architecture_kept(architecture, options, start_is_scratch)
    fixed = _user_fixed(options, settings)
    if keep_reason:
        fixed |= set(ARCHITECTURE_SETTINGS)
    try:
        resolved, decisions = plan(
            _fingerprint(train_pairs),
            architecture,
            settings,
            accelerator,
            _fixed_values(fixed, options, settings, architecture),
        )
    except ValueError as exc:  # e.g. a patch size with the wrong number of axes
        raise ProjectError(f"cannot plan the run: {exc}") from None
    if keep_reason:
        decisions = [_kept(d, keep_reason) for d in decisions]
    new_arch = planned_architecture(architecture, resolved)
    arch_dict = new_arch.model_dump(mode="json")
    torch.manual_seed(settings.seed)  # initial weights and loader shuffling repeat for the same seed
    start = resolve_start(project, arch_dict, options.start)
    augmenter = Augmenter.from_settings(settings.augmentation, new_arch.spatial_dims)
    train_dataset = PatchSampler(
        train_pairs,
        resolved["patch_size"],
        foreground_oversampling=settings.foreground_oversampling,
        augmenter=augmenter if augmenter.enabled else None,
        seed=settings.seed,
        samples_per_epoch=options.samples_per_epoch or resolved.get("samples_per_epoch"),
        output_mode=new_arch.output_mode,
    )
    val_dataset = ValidationTiles(val_pairs, resolved["patch_size"], output_mode=new_arch.output_mode)
    module = SegmentationModule(start.model, arch_dict, settings.learning_rate, settings.weight_decay, settings.epochs)
    return PreparedRun(
        project=project,
        options=options,
        run_id=run_id,
        settings=settings,
        resolved=resolved,
        decisions=decisions,
        architecture=arch_dict,
        architecture_changed=new_arch != architecture,
        start=start,
        train_ids=train_ids,
        val_ids=val_ids,
        val_note=val_note,
        accelerator=accelerator,
        device_indices=indices,
        train_dataset=train_dataset,
        val_dataset=val_dataset,
        module=module,
        pair_versions_seen=versions,
        manifest_sha256=pairs_sha256(manifest.pairs),
        extra={"architecture_summary": describe(arch_dict)},
    )


def _settings(project: TrainingProject, options: TrainOptions) -> TrainingSettings:
    settings = project.config.training.model_copy(deep=True)
    for name in ("epochs", "patch_size", "batch_size", "learning_rate", "seed", "precision", "devices"):
        value = getattr(options, name)
        if value is not None:
            setattr(settings, name, value)
    return settings


def _starts_from_scratch(project: TrainingProject, options: TrainOptions) -> bool:
    if options.start:
        return options.start == "scratch"
    return project.starting_weights.choice == "scratch"


def _architecture_kept(architecture: ArchitectureConfig, options: TrainOptions, start_is_scratch: bool) -> str:
    """Why depth / width / levels must stay as the architecture says ('' when auto-configuration may
    choose them: the architecture is still the untouched default and training starts from scratch)."""
    if not start_is_scratch:
        return "kept from the architecture: the starting weights are loaded into it"
    if options.keep_architecture:
        return "kept from the architecture (--keep-architecture)"
    untouched = ArchitectureConfig(spatial_dims=architecture.spatial_dims)
    if any(getattr(architecture, name) != getattr(untouched, name) for name in ("preset", *ARCHITECTURE_SETTINGS)):
        return "kept from the architecture: it was chosen in architecture_config.json"
    return ""


def _kept(decision: AutoConfigDecision, reason: str) -> AutoConfigDecision:
    if decision.setting in ARCHITECTURE_SETTINGS and decision.source == "user":
        return decision.model_copy(update={"source": "user", "reason": reason})
    return decision


def _user_fixed(options: TrainOptions, settings: TrainingSettings) -> set[str]:
    fixed = options.user_fixed()
    if options.device:
        fixed.add("device")
    if options.samples_per_epoch:
        fixed.add("samples_per_epoch")
    return fixed


def _fixed_values(
    fixed: set[str], options: TrainOptions, settings: TrainingSettings, architecture: ArchitectureConfig
) -> dict[str, Any]:
    """The values of the settings the user fixed, for `plan` (the device and samples per epoch come
    from the options only; a single patch size applies to every spatial axis)."""
    values: dict[str, Any] = {}
    for name in fixed:
        if name == "device":
            values[name] = options.device
        elif name == "samples_per_epoch":
            values[name] = options.samples_per_epoch
        elif name in ARCHITECTURE_SETTINGS:
            values[name] = getattr(architecture, name)
        elif name in ("patch_size", "batch_size", "precision"):
            value = getattr(settings, name)
            if value not in (None, "auto"):
                values[name] = value
    if values.get("patch_size") is not None and len(values["patch_size"]) == 1:
        values["patch_size"] = values["patch_size"] * (3 if architecture.spatial_dims == "3d" else 2)
    return values


def _fingerprint(pairs: list[PairArrays]):
    shapes = [pair.spatial_shape for pair in pairs]
    stats = [image_intensity_stats(pair.image, percentiles=(), max_samples=2**16) for pair in pairs]
    frequencies = _class_frequencies(pairs)
    channels = pairs[0].channels
    return fingerprint(shapes, None, channels, stats, frequencies)


def _class_frequencies(pairs: list[PairArrays]) -> list[float]:
    counts: dict[int, int] = {}
    total = 0
    for pair in pairs:
        mask = np.asarray(pair.mask)
        values, n = np.unique(mask, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist(), strict=True):
            counts[v] = counts.get(v, 0) + c
        total += mask.size
    return [counts.get(v, 0) / total for v in range(max(counts) + 1)] if counts else []


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, tuple, dict, type(None)))
