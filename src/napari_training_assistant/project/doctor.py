"""`nta doctor`: find what is wrong in a project folder and repair what can be repaired safely.

Safe repairs: missing folders, stale temporary files, a broken or missing file restored from its `.bak`
(the latest good write; the broken file is kept as `<file>.broken-<time>`), registries rebuilt from the
self-describing files on disk when both copies are gone, empty registries recreated, missing backups
written, `latest.pt` realigned with the registry, lineage (`used_by_checkpoints`) restored from the
checkpoint registry, runs whose process is gone marked `interrupted`. Everything else (missing or
changed data files, files no record names, links that point outside the project) is reported with the
command that fixes it, and never deleted or followed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .clock import now
from .doctor_checks import check_contents
from .doctor_report import DoctorReport
from .errors import NotAProjectError, ProjectError
from .layout import ProjectLayout
from .rebuild import REBUILDERS
from .schemas import (
    ArchitectureConfig,
    CheckpointRegistry,
    ModelRegistry,
    PredictionRegistry,
    Sam3Config,
    StartingWeightsConfig,
    TrainingRunHistory,
    VersionedModel,
)
from .storage import ProjectLock, atomic_copy, backup_path, read_model, write_model, write_with_backup

# files that may be recreated empty when they and their backup are lost (nothing but defaults is lost)
RECREATABLE: tuple[type[VersionedModel], ...] = (
    CheckpointRegistry,  # only when no checkpoint file on disk can rebuild it
    Sam3Config,
    StartingWeightsConfig,
    ModelRegistry,
    TrainingRunHistory,
    PredictionRegistry,
)


def run_doctor(root: Path, repair: bool = True) -> DoctorReport:
    layout = ProjectLayout(Path(root))
    config_ok = layout.project_config.exists() or backup_path(layout.project_config).exists()
    if not layout.root.is_dir() or not config_ok:
        raise NotAProjectError(f"{root} is not a Training Project Folder (no project_config.json): nothing to repair")
    report = DoctorReport(str(layout.root), repaired=repair)
    with ProjectLock(layout.lock_file)():
        _check_folders(layout, report, repair)
        entries = list(walk(layout.root))
        _remove_temporary_files(layout, entries, report, repair)
        _report_outside_links(layout, entries, report)
        valid = {path: _check_json(layout, path, schema, report, repair) for path, schema in layout.json_files().items()}
        _check_benchmark_csv(layout, report, repair)
        check_contents(layout, valid, report, repair)
    return report


def walk(root: Path):
    """Every file and link under `root`, never descending into a linked folder (nothing outside is touched)."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            yield Path(folder) / name


def _rel(layout: ProjectLayout, path: Path) -> str:
    try:
        return layout.relative(path)
    except ProjectError:
        return str(path)


def _check_folders(layout: ProjectLayout, report: DoctorReport, repair: bool) -> None:
    for folder in layout.folders():
        if not folder.is_dir() and not folder.is_symlink():
            if repair:
                folder.mkdir(parents=True, exist_ok=True)
            report.add("fixed" if repair else "info", _rel(layout, folder), "folder was missing" + (", created" if repair else ""))


def _remove_temporary_files(layout: ProjectLayout, entries: list[Path], report: DoctorReport, repair: bool) -> None:
    for tmp in entries:
        if not (tmp.name.startswith(".") and tmp.name.endswith(".tmp")) or tmp.is_symlink():
            continue
        if repair:
            tmp.unlink(missing_ok=True)
        report.add("fixed" if repair else "info", _rel(layout, tmp), "temporary file of an interrupted write" + (", removed" if repair else ""))


def _report_outside_links(layout: ProjectLayout, entries: list[Path], report: DoctorReport) -> None:
    root = os.path.realpath(layout.root)
    for path in entries:
        if not path.is_symlink():
            continue
        target = os.path.realpath(path)
        if os.path.commonpath([root, target]) != root:
            report.add(
                "problem",
                _rel(layout, path),
                f"is a symbolic link to {target}, outside the project: it is never read or followed; "
                "replace it by the file itself, or delete the link",
            )


def _check_json(layout: ProjectLayout, path: Path, schema: type[VersionedModel], report: DoctorReport, repair: bool) -> bool:
    name = _rel(layout, path)
    if path.is_symlink():
        report.add("problem", name, "is a symbolic link: project files must be plain files; replace it by a copy of the file")
        return False
    try:
        read_model(path, schema, layout.root)
    except ProjectError as exc:
        problem = str(exc).split("; fix it")[0]
    else:
        _check_backup(path, name, report)
        return True
    backup = backup_path(path)
    if backup.is_file() and not backup.is_symlink() and _valid(backup, schema):
        if repair:
            _keep_broken(path)
            atomic_copy(backup, path)
        report.fix(name, f"{problem}; restored the last good copy from {backup.name}", f"{problem}; `nta doctor` (without --check) restores {backup.name}")
        return repair
    rebuilt = REBUILDERS[schema](layout) if schema in REBUILDERS else None
    if rebuilt is not None and (rebuilt.count or rebuilt.skipped):
        if repair:
            _keep_broken(path)
            write_model(path, rebuilt.registry)
        report.fix(name, f"{problem}; {rebuilt.note()}", f"{problem}; `nta doctor` rebuilds it from the files on disk")
        return repair
    if not path.exists() and schema in RECREATABLE:
        if repair:
            write_model(path, schema())
        report.fix(name, "was missing; recreated with defaults", "is missing; `nta doctor` recreates it with defaults")
        return repair
    if not path.exists() and schema is ArchitectureConfig:
        arch = _architecture_from_checkpoints(layout)
        if repair:
            write_model(path, arch)
        origin = "the latest checkpoint's architecture" if arch != ArchitectureConfig() else "the default architecture"
        report.fix(name, f"was missing; recreated from {origin}", f"{problem}; `nta doctor` recreates it from the latest checkpoint's architecture (or the default)")
        return repair
    report.add("problem", name, f"{problem}; no good backup to restore: fix it by hand")
    return False


def _check_backup(path: Path, name: str, report: DoctorReport) -> None:
    """A good file without its `.bak` gets one. A `.bak` that differs is reported, never overwritten: it
    may hold a newer write than a file put back by hand (an older tool's backups are one write behind)."""
    backup = backup_path(path)
    if backup.is_symlink():
        report.add("problem", name, f"backup {backup.name} is a symbolic link; delete it (the next write recreates it)")
    elif not backup.exists():
        if report.repaired:
            atomic_copy(path, backup)
        report.fix(name, f"backup {backup.name} was missing; it now mirrors the file", f"backup {backup.name} is missing; `nta doctor` writes it")
    elif backup.read_bytes() != path.read_bytes():
        report.add("info", name, f"differs from its backup {backup.name} (edited by hand, or written by an older version); the next change mirrors it")


def _check_benchmark_csv(layout: ProjectLayout, report: DoctorReport, repair: bool) -> None:
    from .layout import BENCHMARK_COLUMNS

    path, backup = layout.benchmark_history, backup_path(layout.benchmark_history)
    name = _rel(layout, path)
    header = ",".join(BENCHMARK_COLUMNS[:3])
    if path.is_file() and not path.is_symlink() and path.read_bytes()[: len(header)] == header.encode():
        _check_backup(path, name, report)
        return
    if backup.is_file() and backup.read_bytes()[: len(header)] == header.encode():
        if repair:
            _keep_broken(path)
            atomic_copy(backup, path)
        report.fix(name, f"was missing or damaged; restored from {backup.name}", f"is missing or damaged; `nta doctor` restores {backup.name}")
    elif not path.exists():
        if repair:
            write_with_backup(path, (",".join(BENCHMARK_COLUMNS) + "\n").encode())
        report.fix(name, "was missing; recreated empty (no backup)", "is missing; `nta doctor` recreates it empty")
    else:
        report.add("problem", name, "does not start with the benchmark header and has no good backup: fix it by hand")


def _keep_broken(path: Path) -> None:
    if path.exists() and not path.is_symlink():
        shutil.copyfile(path, path.with_name(f"{path.name}.broken-{now().strftime('%Y%m%dT%H%M%S')}"))


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
