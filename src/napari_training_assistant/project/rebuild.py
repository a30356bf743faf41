"""Registries rebuilt from the self-describing files on disk, for when a registry and its `.bak` are gone.

- `checkpoints/unet_run_NNN.pt`: each checkpoint carries its registration record (`registration_json`
  in its metadata), read without torch and without running its pickle (`weights_file.inspect_weights`).
- `models/imported/<file>` and `predictions/prediction_NNN.*`: a `<name>.record.json` sidecar written
  beside the file when it was added holds its record.
Nothing here follows a path outside the project or trusts a record it cannot validate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .checkpoints import CHECKPOINT_PATTERN, file_sha256
from .errors import ProjectError
from .layout import ProjectLayout
from .schemas import (
    CheckpointRecord,
    CheckpointRegistry,
    ImportedModel,
    ModelRegistry,
    PredictionRecord,
    PredictionRegistry,
    VersionedModel,
)
from .storage import atomic_write_bytes

RECORD_SUFFIX = ".record.json"


@dataclass
class Rebuilt:
    registry: VersionedModel
    skipped: list[str] = field(default_factory=list)  # "file: why" for files that could not be used

    def note(self) -> str:
        skipped = f"; skipped {len(self.skipped)}: {'; '.join(self.skipped[:3])}" if self.skipped else ""
        return f"rebuilt from the files on disk ({self.count} record(s){skipped})"

    @property
    def count(self) -> int:
        for name in ("checkpoints", "models", "predictions"):
            if hasattr(self.registry, name):
                return len(getattr(self.registry, name))
        return 0


def sidecar_path(path: Path) -> Path:
    """`<file>.record.json` beside `path` (a suffix is kept: `a.pt` -> `a.pt.record.json`)."""
    return path.with_name(path.name + RECORD_SUFFIX)


def write_sidecar(path: Path, record: BaseModel) -> None:
    atomic_write_bytes(sidecar_path(path), (record.model_dump_json(indent=2) + "\n").encode())


def rebuild_checkpoints(layout: ProjectLayout) -> Rebuilt:
    from .weights_file import inspect_weights

    registry = CheckpointRegistry()
    out = Rebuilt(registry)
    numbers = []
    for path in sorted(layout.checkpoints_dir.glob("unet_run_*.pt")):
        match = CHECKPOINT_PATTERN.match(path.name)
        if not match or path.is_symlink():
            continue
        numbers.append(int(match.group(1)))
        try:
            info = inspect_weights(path)
            meta = info.metadata.get("metadata") if isinstance(info.metadata.get("metadata"), dict) else {}
            registration = json.loads(meta["registration_json"]) if "registration_json" in meta else _older(meta, path)
            record = CheckpointRecord.model_validate(
                {
                    **registration,
                    "checkpoint_id": path.stem,
                    "path": layout.relative(path),
                    "file_sha256": info.sha256,
                    "architecture": info.architecture or registration.get("architecture") or {},
                }
            )
        except (ProjectError, ValidationError, ValueError, TypeError) as exc:
            out.skipped.append(f"{path.name}: {_why(exc)}")
            continue
        registry.checkpoints.append(record)
    completed = [c for c in registry.checkpoints if c.status == "completed"]
    registry.latest = completed[-1].checkpoint_id if completed else None
    registry.next_number = max(numbers, default=0) + 1
    return out


def _older(meta: dict, path: Path) -> dict:
    """A checkpoint written before registration records were embedded: what its metadata knows."""
    return {
        "parent_id": meta.get("parent_id"),
        "run_id": meta.get("run_id"),
        "metrics": meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {},
        "timestamp": datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(),
        "status": "completed",
    }


def rebuild_imported(layout: ProjectLayout) -> Rebuilt:
    def usable(record: ImportedModel) -> str:
        weights = layout.absolute(record.path)
        return "" if weights.is_file() and file_sha256(weights) == record.sha256 else "missing or changed since import"

    return _from_sidecars(layout, layout.imported_dir, ModelRegistry(), "models", ImportedModel, usable)


def rebuild_predictions(layout: ProjectLayout) -> Rebuilt:
    def usable(record: PredictionRecord) -> str:
        return "" if layout.absolute(record.path).exists() else "missing"

    return _from_sidecars(layout, layout.predictions_dir, PredictionRegistry(), "predictions", PredictionRecord, usable)


def _from_sidecars(layout: ProjectLayout, folder: Path, registry, field_name: str, schema: type[BaseModel], usable) -> Rebuilt:
    """A registry of the valid `*.record.json` in `folder` whose file `usable` accepts ('' = fine)."""
    out = Rebuilt(registry)
    records = getattr(registry, field_name)
    for sidecar in sorted(folder.glob("*" + RECORD_SUFFIX)):
        record = _sidecar_record(layout, sidecar, schema, out)
        why = usable(record) if record is not None else "unreadable"
        if why:
            if record is not None:
                out.skipped.append(f"{record.path}: {why}")
            continue
        records.append(record)
    ids = [_number(getattr(r, "model_id", None) or getattr(r, "prediction_id", "")) for r in records]
    registry.next_number = max(ids, default=0) + 1
    return out


REBUILDERS = {CheckpointRegistry: rebuild_checkpoints, ModelRegistry: rebuild_imported, PredictionRegistry: rebuild_predictions}


def _sidecar_record(layout: ProjectLayout, sidecar: Path, schema: type[BaseModel], out: Rebuilt):
    if sidecar.is_symlink():
        out.skipped.append(f"{sidecar.name}: a symbolic link")
        return None
    try:
        return schema.model_validate_json(sidecar.read_bytes()[: 1 << 20])
    except (ValidationError, ValueError, OSError, RecursionError) as exc:
        out.skipped.append(f"{sidecar.name}: {_why(exc)}")
        return None


def _number(record_id: str) -> int:
    tail = record_id.rpartition("_")[2]
    return int(tail) if tail.isdigit() else 0


def _why(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"field '{'.'.join(map(str, err['loc']))}': {err['msg']}"[:160]
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]
