"""`nta doctor`: find what is wrong in a project folder and repair what can be repaired safely.

Safe repairs: missing folders, stale temporary files, a broken or missing JSON file restored from its
last good `.bak` (the broken file is kept as `<file>.broken-<time>`), empty registries recreated,
`latest.pt` realigned with the registry. Everything else (missing or changed data files, files no
record names) is reported with the command that fixes it, and never deleted.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from .checkpoints import CHECKPOINT_PATTERN, file_sha256
from .errors import NotAProjectError, ProjectError
from .layout import ProjectLayout
from .schemas import (
    ArchitectureConfig,
    CheckpointRegistry,
    DatasetManifest,
    ModelRegistry,
    PredictionRegistry,
    Sam3Config,
    StartingWeightsConfig,
    TrainingRunHistory,
    VersionedModel,
)
from .storage import ProjectLock, atomic_copy, backup_path, read_model, write_model

# files that may be recreated empty when they and their backup are lost (nothing but defaults is lost)
RECREATABLE: tuple[type[VersionedModel], ...] = (
    Sam3Config,
    StartingWeightsConfig,
    ModelRegistry,
    TrainingRunHistory,
    PredictionRegistry,
)


@dataclass
class Finding:
    level: Literal["fixed", "problem", "info"]
    file: str
    message: str

    def line(self) -> str:
        return f"[{self.level}] {self.file}: {self.message}"


@dataclass
class DoctorReport:
    project: str
    repaired: bool
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, file: str, message: str) -> None:
        self.findings.append(Finding(level, file, message))  # type: ignore[arg-type]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "problem"]

    @property
    def healthy_after(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        fixed = sum(f.level == "fixed" for f in self.findings)
        if not self.findings:
            return f"{self.project}: healthy"
        verb = "fixed" if self.repaired else "fixable"
        return f"{self.project}: {fixed} {verb}, {len(self.problems)} problem(s) left"

    def as_dict(self) -> dict:
        return {
            "project": self.project,
            "repaired": self.repaired,
            "healthy": self.healthy_after,
            "findings": [asdict(f) for f in self.findings],
        }


def run_doctor(root: Path, repair: bool = True) -> DoctorReport:
    layout = ProjectLayout(Path(root))
    config_ok = layout.project_config.exists() or backup_path(layout.project_config).exists()
    if not layout.root.is_dir() or not config_ok:
        raise NotAProjectError(f"{root} is not a Training Project Folder (no project_config.json): nothing to repair")
    report = DoctorReport(str(layout.root), repaired=repair)
    with ProjectLock(layout.lock_file)():
        _check_folders(layout, report, repair)
        _remove_temporary_files(layout, report, repair)
        valid = {path: _check_json(layout, path, schema, report, repair) for path, schema in layout.json_files().items()}
        if valid.get(layout.manifest):
            _check_dataset(layout, report)
        if valid.get(layout.checkpoint_registry):
            _check_checkpoints(layout, report, repair)
    return report


def _rel(layout: ProjectLayout, path: Path) -> str:
    return layout.relative(path)


def _check_folders(layout: ProjectLayout, report: DoctorReport, repair: bool) -> None:
    for folder in layout.folders():
        if not folder.is_dir():
            if repair:
                folder.mkdir(parents=True, exist_ok=True)
            report.add("fixed" if repair else "info", _rel(layout, folder), "folder was missing" + (", created" if repair else ""))


def _remove_temporary_files(layout: ProjectLayout, report: DoctorReport, repair: bool) -> None:
    for tmp in layout.root.rglob(".*.tmp"):
        if repair:
            tmp.unlink(missing_ok=True)
        report.add("fixed" if repair else "info", _rel(layout, tmp), "temporary file of an interrupted write" + (", removed" if repair else ""))


def _check_json(layout: ProjectLayout, path: Path, schema: type[VersionedModel], report: DoctorReport, repair: bool) -> bool:
    name = _rel(layout, path)
    try:
        read_model(path, schema, layout.root)
        return True
    except ProjectError as exc:
        problem = str(exc).split("; fix it")[0]
    backup = backup_path(path)
    if backup.exists() and _valid(backup, schema):
        if repair:
            if path.exists():
                stamp = _timestamp()
                shutil.copyfile(path, path.with_name(f"{path.name}.broken-{stamp}"))
            atomic_copy(backup, path)
            report.add("fixed", name, f"{problem}; restored the last good copy from {backup.name}")
            return True
        report.add("problem", name, f"{problem}; `nta doctor` (without --check) restores {backup.name}")
        return False
    if not path.exists() and schema in RECREATABLE:
        if repair:
            write_model(path, schema())
            report.add("fixed", name, "was missing; recreated with defaults")
            return True
        report.add("problem", name, "is missing; `nta doctor` recreates it with defaults")
        return False
    if not path.exists() and schema is ArchitectureConfig:
        arch = _architecture_from_checkpoints(layout)
        if repair:
            write_model(path, arch)
            report.add("fixed", name, "was missing; recreated from the latest checkpoint's architecture" if arch != ArchitectureConfig() else "was missing; recreated with the default architecture")
            return True
        report.add("problem", name, f"{problem}; `nta doctor` recreates it from the latest checkpoint's architecture (or the default)")
        return False
    report.add("problem", name, f"{problem}; no good backup to restore: fix it by hand")
    return False


def _valid(path: Path, schema: type[VersionedModel]) -> bool:
    try:
        read_model(path, schema)
    except ProjectError:
        return False
    return True


def _architecture_from_checkpoints(layout: ProjectLayout) -> ArchitectureConfig:
    try:
        registry = read_model(layout.checkpoint_registry, CheckpointRegistry)
    except ProjectError:
        return ArchitectureConfig()
    if registry.checkpoints:
        return ArchitectureConfig.model_validate(registry.checkpoints[-1].architecture)
    return ArchitectureConfig()


def _check_dataset(layout: ProjectLayout, report: DoctorReport) -> None:
    from .image_io import array_sha256, read_tiff

    manifest = read_model(layout.manifest, DatasetManifest)
    listed: set[str] = set()
    for pair in manifest.pairs:
        for role, relative, expected in (("image", pair.image_path, pair.image_sha256), ("mask", pair.mask_path, pair.mask_sha256)):
            listed.add(relative)
            path = layout.absolute(relative)
            if not path.exists():
                report.add("problem", relative, f"{role} of {pair.pair_id} is missing; remove the pair with `nta remove-pair {layout.root} {pair.pair_id}`")
                continue
            try:
                actual = array_sha256(read_tiff(path))
            except ProjectError as exc:
                report.add("problem", relative, f"{role} of {pair.pair_id} cannot be read ({exc}); remove the pair")
                continue
            if actual != expected:
                report.add("problem", relative, f"{role} of {pair.pair_id} changed since it was added (sha256 differs); re-add the pair")
    for folder in (layout.images_dir, layout.masks_dir):
        for path in sorted(folder.glob("*")):
            if path.is_file() and _rel(layout, path) not in listed:
                report.add("info", _rel(layout, path), "file is not in the manifest (left by an interrupted add?); delete it or add it as a pair")


def _check_checkpoints(layout: ProjectLayout, report: DoctorReport, repair: bool) -> None:
    registry = read_model(layout.checkpoint_registry, CheckpointRegistry)
    registered = set()
    for record in registry.checkpoints:
        registered.add(record.path)
        path = layout.absolute(record.path)
        if not path.exists():
            report.add("problem", record.path, f"file of {record.checkpoint_id} is missing")
        elif file_sha256(path) != record.file_sha256:
            report.add("problem", record.path, f"file of {record.checkpoint_id} changed since registration (sha256 differs)")
    for path in sorted(layout.checkpoints_dir.glob("unet_run_*.pt")):
        if CHECKPOINT_PATTERN.match(path.name) and _rel(layout, path) not in registered:
            report.add("info", _rel(layout, path), "checkpoint file is not registered (an interrupted run); it is not used")
    _check_latest(layout, registry, report, repair)


def _check_latest(layout: ProjectLayout, registry: CheckpointRegistry, report: DoctorReport, repair: bool) -> None:
    latest = layout.latest_checkpoint
    name = _rel(layout, latest) if latest.exists() else "checkpoints/latest.pt"
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
    source = layout.absolute(record.path)
    if source.is_file() and file_sha256(source) == record.file_sha256:
        if repair:
            atomic_copy(source, latest)
        report.add("fixed" if repair else "problem", name, f"did not hold {record.checkpoint_id}" + ("; copied it again" if repair else "; `nta doctor` copies it again"))
    else:
        report.add("problem", name, f"does not hold {record.checkpoint_id} and that checkpoint's file is damaged")


def _timestamp() -> str:
    from .training_project import now

    return now().strftime("%Y%m%dT%H%M%S")
