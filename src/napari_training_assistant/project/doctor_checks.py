"""What `nta doctor` checks inside valid project files: the files records name (confined to the project,
never followed outside), their hashes, lineage between the manifest and the checkpoints, `latest.pt`,
imported weights, predictions, and runs whose process is gone."""

from __future__ import annotations

from pathlib import Path

from .checkpoints import CHECKPOINT_PATTERN, file_sha256
from .clock import now
from .doctor_report import DoctorReport
from .errors import ProjectError
from .layout import ProjectLayout
from .schemas import (
    CheckpointRegistry,
    DatasetManifest,
    ModelRegistry,
    PredictionRegistry,
    TrainingRunHistory,
)
from .storage import atomic_copy, read_model, write_model


def check_contents(layout: ProjectLayout, valid: dict[Path, bool], report: DoctorReport, repair: bool) -> None:
    if valid.get(layout.manifest):
        _check_dataset(layout, report)
        if valid.get(layout.checkpoint_registry):
            _check_lineage(layout, report)
    if valid.get(layout.checkpoint_registry):
        _check_checkpoints(layout, report, repair)
    if valid.get(layout.model_registry):
        _check_imported(layout, report)
    if valid.get(layout.prediction_registry):
        _check_predictions(layout, report)
    if valid.get(layout.training_runs):
        _check_runs(layout, report)


def _file(layout: ProjectLayout, relative: str, report: DoctorReport, owner: str) -> Path | None:
    """The confined path of a record's file, or None (reported) when it points outside the project."""
    try:
        return layout.absolute(relative)
    except ProjectError as exc:
        report.add("problem", relative, f"{owner}: {str(exc).split('; ')[0]}; it was not read")
        return None


def _check_dataset(layout: ProjectLayout, report: DoctorReport) -> None:
    from .image_io import array_sha256, read_tiff

    manifest = read_model(layout.manifest, DatasetManifest)
    listed: set[str] = set()
    for pair in manifest.pairs:
        for role, relative, expected in (("image", pair.image_path, pair.image_sha256), ("mask", pair.mask_path, pair.mask_sha256)):
            listed.add(relative)
            path = _file(layout, relative, report, f"{role} of {pair.pair_id}")
            if path is None:
                continue
            if not path.exists():
                report.add("problem", relative, f"{role} of {pair.pair_id} is missing; remove the pair with `nta remove-pair {layout.root} {pair.pair_id}`")
                continue
            try:
                actual = array_sha256(read_tiff(path))
            except ProjectError as exc:
                report.add("problem", relative, f"{role} of {pair.pair_id} cannot be read ({str(exc)[:200]}); remove the pair")
                continue
            if actual != expected:
                report.add("problem", relative, f"{role} of {pair.pair_id} changed since it was added (sha256 differs); re-add the pair")
    for folder in (layout.images_dir, layout.masks_dir):
        for path in sorted(folder.glob("*")):
            if path.is_file() and not path.is_symlink() and layout.relative(path) not in listed:
                report.add("info", layout.relative(path), "file is not in the manifest (left by an interrupted add?); delete it or add it as a pair")


def _check_lineage(layout: ProjectLayout, report: DoctorReport) -> None:
    """`used_by_checkpoints` of each pair agrees with the pairs each checkpoint records (a manifest
    restored from an old copy may have lost lineage; the checkpoint registry still knows it)."""
    registry = read_model(layout.checkpoint_registry, CheckpointRegistry)
    users: dict[str, list[str]] = {}
    for record in registry.checkpoints:
        for pair_id in record.dataset_pair_ids:
            users.setdefault(pair_id, []).append(record.checkpoint_id)
    manifest = read_model(layout.manifest, DatasetManifest)
    changed = []
    for pair in [*manifest.pairs, *manifest.removed_pairs]:
        missing = [c for c in users.get(pair.pair_id, []) if c not in pair.used_by_checkpoints]
        if missing:
            pair.used_by_checkpoints = [*pair.used_by_checkpoints, *missing]
            changed.append(pair.pair_id)
    if not changed:
        return
    if report.repaired:
        write_model(layout.manifest, manifest)
    shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
    report.fix(
        "dataset/manifest.json",
        f"lineage of {len(changed)} pair(s) ({shown}) restored from checkpoints/checkpoints.json",
        f"{len(changed)} pair(s) ({shown}) lost the checkpoints that used them; `nta doctor` restores it from checkpoints.json",
    )


def _check_checkpoints(layout: ProjectLayout, report: DoctorReport, repair: bool) -> None:
    registry = read_model(layout.checkpoint_registry, CheckpointRegistry)
    registered = set()
    for record in registry.checkpoints:
        registered.add(record.path)
        _check_hashed(layout, report, record.path, record.file_sha256, f"file of {record.checkpoint_id}", "is missing", "changed since registration (sha256 differs)")
    for path in sorted(layout.checkpoints_dir.glob("unet_run_*.pt")):
        if CHECKPOINT_PATTERN.match(path.name) and not path.is_symlink() and layout.relative(path) not in registered:
            report.add("info", layout.relative(path), "checkpoint file is not registered (an interrupted run); it is not used")
    _check_latest(layout, registry, report, repair)


def _check_latest(layout: ProjectLayout, registry: CheckpointRegistry, report: DoctorReport, repair: bool) -> None:
    latest = layout.latest_checkpoint
    name = "checkpoints/latest.pt"
    if latest.is_symlink():
        report.add("problem", name, "is a symbolic link; delete it, `nta doctor` then copies the latest checkpoint again")
        return
    if registry.latest is None:
        if latest.exists():
            report.add("problem", name, "exists but the registry names no latest checkpoint; delete it by hand if unwanted")
        return
    record = registry.get(registry.latest)
    if record is None:
        report.add("problem", "checkpoints/checkpoints.json", f"latest points to unknown checkpoint {registry.latest!r}")
        return
    if latest.is_file() and file_sha256(latest) == record.file_sha256:
        return
    source = _file(layout, record.path, report, f"file of {record.checkpoint_id}")
    if source is not None and source.is_file() and file_sha256(source) == record.file_sha256:
        if repair:
            atomic_copy(source, latest)
        report.fix(name, f"did not hold {record.checkpoint_id}; copied it again", f"did not hold {record.checkpoint_id}; `nta doctor` copies it again")
    else:
        report.add("problem", name, f"does not hold {record.checkpoint_id} and that checkpoint's file is damaged")


def _check_imported(layout: ProjectLayout, report: DoctorReport) -> None:
    for model in read_model(layout.model_registry, ModelRegistry).models:
        owner = f"weights of {model.model_id}"
        _check_hashed(layout, report, model.path, model.sha256, owner, "are missing; import them again (nta import-weights)", "were replaced since import (sha256 differs); import the file again")


def _check_hashed(layout: ProjectLayout, report: DoctorReport, relative: str, sha256: str, owner: str, missing: str, changed: str) -> None:
    """A problem when the file a record names is missing or no longer has the recorded sha256."""
    path = _file(layout, relative, report, owner)
    if path is None:
        return
    if not path.is_file():
        report.add("problem", relative, f"{owner} {missing}")
    elif file_sha256(path) != sha256:
        report.add("problem", relative, f"{owner} {changed}")


def _check_predictions(layout: ProjectLayout, report: DoctorReport) -> None:
    for record in read_model(layout.prediction_registry, PredictionRegistry).predictions:
        for relative in filter(None, (record.path, record.probabilities_path)):
            path = _file(layout, relative, report, record.prediction_id)
            if path is not None and not path.exists():
                report.add("problem", relative, f"file of {record.prediction_id} is missing; predict again (nta predict)")


def _check_runs(layout: ProjectLayout, report: DoctorReport) -> None:
    """Runs recorded `running` whose process is gone become `interrupted` (resumable with --resume)."""
    from .runs import describe_process, is_alive

    history = read_model(layout.training_runs, TrainingRunHistory)
    moment = now()
    gone = [run for run in history.runs if run.status == "running" and not is_alive(run, moment)]
    for run in gone:
        run.status = "interrupted"
        run.reason = f"its process stopped without ending the run ({describe_process(run)}, last seen {run.heartbeat.updated_at.isoformat(timespec='seconds') if run.heartbeat else 'never'})"
        report.fix(
            "history/training_runs.json",
            f"{run.run_id} was recorded as running but its process is gone: marked interrupted; resume it with `nta train --resume`",
            f"{run.run_id} is recorded as running but its process is gone ({describe_process(run)}); `nta doctor` marks it interrupted",
        )
    if gone and report.repaired:
        write_model(layout.training_runs, history)
