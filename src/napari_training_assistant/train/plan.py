"""Pair training prepared: settings, auto-configured plan, the project's pairs as patches, start, module; all
resolved before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..model import describe
from ..project import TrainingProject
from ..project.dataset import pairs_sha256
from ..project.errors import ProjectError
from ..project.schemas import ArchitectureConfig, AutoConfigDecision, TrainingSettings
from .augment import Augmenter
from .autoconfig import fingerprint, image_intensity_stats, plan, planned_architecture
from .instance_validation import InstanceValidation
from .module import SegmentationModule
from .options import TrainOptions, resolve_device
from .prepared import PreparedRun
from .sampler import PairArrays, PatchSampler, ValidationTiles, load_pairs
from .starting import resolve_start

# settings that must stay as the architecture says when weights are loaded into it
ARCHITECTURE_SETTINGS = ("depth", "base_channels", "anisotropic_levels")


@dataclass
class PairData:
    """The data part of a pair run: the project's pairs, patches and the auto-configured plan."""

    settings: TrainingSettings
    resolved: dict[str, Any]
    train_ids: list[str]
    val_ids: list[str]
    val_note: str
    train_dataset: PatchSampler
    val_dataset: ValidationTiles
    versions: dict[str, tuple[str, str, str]]
    manifest_sha256: str
    kind: Literal["pairs"] = "pairs"

    def train_sampler(self) -> None:
        return None  # the patch sampler draws new random patches every epoch; the loader shuffles

    def settings_record(self, run: PreparedRun) -> dict[str, Any]:
        return {
            "training": self.settings.model_dump(mode="json"),
            "resolved": {k: v for k, v in self.resolved.items() if _plain(v)},
            "architecture": run.architecture,
            "start": run.start.snapshot,
            "train_pairs": self.train_ids,
            "val_pairs": self.val_ids,
            "validation": self.val_note,
            "accelerator": run.accelerator,
            "devices": run.devices,
            "num_nodes": run.options.num_nodes,
        }

    def dataset_hold(self) -> tuple[str | None, list[str]]:
        """(dataset hash the run saw, pairs it trains or validates on: held while it runs)."""
        return self.manifest_sha256, sorted(set(self.train_ids) | set(self.val_ids))

    def pair_versions(self) -> dict[str, tuple[str, str, str]]:
        return self.versions

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

    def point_counts(self) -> None:
        return None

    def summary(self, run: PreparedRun) -> str:
        arch = ArchitectureConfig.model_validate(run.architecture)
        patch = "x".join(map(str, self.resolved["patch_size"]))
        return (
            f"{run.run_id}: {len(self.train_ids)} train / {len(self.val_ids)} val pairs{self.val_note and ' (' + self.val_note + ')'}, "
            f"patch {patch}, batch {run.batch_size}, {run.epochs} epochs x {len(self.train_dataset) // run.batch_size} steps, "
            f"{arch.spatial_dims} U-Net depth {arch.depth} base {arch.base_channels}, start {run.start.snapshot.get('spec', 'scratch')}, "
            f"{run.accelerator} x{run.devices} ({run.precision})"
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
            _fingerprint(train_pairs, objects=architecture.output_mode == "instance"),
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
    module = SegmentationModule(
        start.model,
        arch_dict,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        epochs=settings.epochs,
        extras=InstanceValidation() if new_arch.output_mode == "instance" else None,
    )
    data = PairData(
        settings=settings,
        resolved=resolved,
        train_ids=train_ids,
        val_ids=val_ids,
        val_note=val_note,
        train_dataset=train_dataset,
        val_dataset=val_dataset,
        versions=versions,
        manifest_sha256=pairs_sha256(manifest.pairs),
    )
    return PreparedRun(
        project=project,
        options=options,
        run_id=run_id,
        data=data,
        architecture=arch_dict,
        architecture_changed=new_arch != architecture,
        start=start,
        accelerator=accelerator,
        device_indices=indices,
        module=module,
        epochs=settings.epochs,
        batch_size=int(resolved["batch_size"]),
        precision=resolved["precision"],
        num_workers=options.num_workers or int(resolved.get("num_workers", 0)),
        planned_devices=settings.devices,
        decisions=decisions,
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


def _fingerprint(pairs: list[PairArrays], *, objects: bool = False):
    shapes = [pair.spatial_shape for pair in pairs]
    stats = [image_intensity_stats(pair.image, percentiles=(), max_samples=2**16) for pair in pairs]
    frequencies = _class_frequencies(pairs, objects=objects)
    channels = pairs[0].channels
    return fingerprint(shapes, None, channels, stats, frequencies)


def _class_frequencies(pairs: list[PairArrays], *, objects: bool = False) -> list[float]:
    """Fraction of voxels per label value (object ids count as foreground when `objects`)."""
    counts: dict[int, int] = {}
    total = 0
    for pair in pairs:
        mask = np.asarray(pair.mask)
        if objects:
            mask = (mask > 0).astype(np.uint8)
        values, n = np.unique(mask, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist(), strict=True):
            counts[v] = counts.get(v, 0) + c
        total += mask.size
    return [counts.get(v, 0) / total for v in range(max(counts) + 1)] if counts else []


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, tuple, dict, type(None)))
