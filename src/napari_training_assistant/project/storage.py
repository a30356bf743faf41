"""Atomic, validated reads and writes of project files, and the project-wide writer lock."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import filelock
from pydantic import ValidationError

from .errors import ProjectError, ProjectFileError, SchemaVersionError
from .schemas import VersionedModel

M = TypeVar("M", bound=VersionedModel)
BACKUP_SUFFIX = ".bak"
LOCK_TIMEOUT_S = 120.0
MAX_JSON_CHARS = 64 * 1024**2  # the largest registry of a long-lived project is a few MB


def _temp_path(path: Path) -> Path:
    """A unique hidden `.<name>.<pid>.<random>.tmp` beside `path` (what `nta doctor` cleans up).

    Not `tempfile.mkstemp`: its 0600 mode would stick to the final file, so project files would
    ignore the umask (unlike the dataset TIFFs) and be unreadable to others sharing the folder.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a hidden temporary file beside `path`; on success it is flushed, fsynced and
    renamed over `path` (readers see the old or the new file, never a mix); on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as handle:
        handle.write(data)


def atomic_copy(source: Path, target: Path) -> None:
    with atomic_output(target) as handle, open(source, "rb") as src:
        shutil.copyfileobj(src, handle, 1 << 20)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def dump_model(model: VersionedModel) -> bytes:
    return (model.model_dump_json(indent=2) + "\n").encode()


def write_model(path: Path, model: VersionedModel) -> None:
    """Save `model` atomically, then mirror the same bytes into `<file>.bak`.

    The backup always equals the latest good write (a crash between the two writes leaves a good file
    and the previous backup), so `nta doctor` restores the newest state, never one write behind. A file
    of an older schema version is first kept as `<file>.v<N>.orig` (migrations never lose the original).
    """
    _keep_pre_migration_copy(path, model.SCHEMA_VERSION)
    write_with_backup(path, dump_model(model))


def _keep_pre_migration_copy(path: Path, current: int) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return
    found = re.search(rb'"schema_version"\s*:\s*(\d+)', head)
    if found and int(found.group(1)) == current:
        return
    try:
        version = json.loads(path.read_text(encoding="utf-8")).get("schema_version", 0)
    except (ValueError, RecursionError, AttributeError, OSError):
        return  # not a readable older version: nothing worth keeping
    if isinstance(version, int) and version < current:
        original = path.with_name(f"{path.name}.v{version}.orig")
        if not original.exists():
            atomic_copy(path, original)


def write_with_backup(path: Path, data: bytes) -> None:
    """`atomic_write_bytes` to `path` and to its `.bak` mirror."""
    atomic_write_bytes(path, data)
    atomic_write_bytes(backup_path(path), data)


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def parse_model(path: Path, schema: type[M], text: str, project_root: Path | None = None) -> M:
    """Validate JSON text against `schema`, migrating older versions; errors name file, field and fix
    in one line, whatever the text holds (any nesting depth, size or type)."""
    where = _display(path, project_root)
    fix = _fix_hint(path, project_root)
    if len(text) > MAX_JSON_CHARS:
        raise ProjectFileError(f"{where} holds {len(text):,} characters, more than a project file ever needs ({MAX_JSON_CHARS:,}); {fix}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectFileError(f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); {fix}") from None
    except RecursionError:
        raise ProjectFileError(f"{where} is nested too deeply to be a project file; {fix}") from None
    if not isinstance(data, dict):
        raise ProjectFileError(f"{where} must hold a JSON object, found {type(data).__name__}; {fix}")
    try:
        data = migrate(data, schema, where)
        return schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(file)"
        value = f" (found {short_repr(err['input'])})" if "input" in err and not isinstance(err["input"], dict) else ""
        more = f" and {exc.error_count() - 1} more problem(s)" if exc.error_count() > 1 else ""
        message = err["msg"].removeprefix("Value error, ")
        raise ProjectFileError(f"{where}: field '{field}': {message}{value}{more}; {fix}") from None
    except RecursionError:
        raise ProjectFileError(f"{where} is nested too deeply to be a project file; {fix}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a migration met a value of the wrong kind
        raise ProjectFileError(f"{where} has values of the wrong kind for its schema_version ({type(exc).__name__}); {fix}") from None


def short_repr(value: object, limit: int = 120) -> str:
    """`repr(value)` cut to `limit` characters, so no error line echoes a huge value."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def migrate(data: dict, schema: type[M], where: str) -> dict:
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        raise ProjectFileError(f"{where}: field 'schema_version' must be a whole number, found {version!r}")
    if version > schema.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has schema_version {version} but this napari-training-assistant reads up to "
            f"{schema.SCHEMA_VERSION}: upgrade napari-training-assistant to open this project"
        )
    while version < schema.SCHEMA_VERSION:
        step = schema.MIGRATIONS.get(version)
        data = dict(step(data)) if step else dict(data)
        version += 1
        data["schema_version"] = version
    return data


def read_model(path: Path, schema: type[M], project_root: Path | None = None) -> M:
    if not path.exists():
        raise ProjectFileError(f"{_display(path, project_root)} is missing; {_fix_hint(path, project_root)}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectFileError(f"{_display(path, project_root)} cannot be read ({exc}); {_fix_hint(path, project_root)}") from None
    return parse_model(path, schema, text, project_root)


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        with contextlib.suppress(ValueError):
            return path.resolve().relative_to(root.resolve()).as_posix()
    return str(path)


def _fix_hint(path: Path, root: Path | None) -> str:
    target = root if root is not None else path.parent
    backup = backup_path(path)
    if backup.exists():
        return f"fix it by hand, or run `nta doctor {target}` to restore the last good copy ({backup.name})"
    return f"fix it by hand, or run `nta doctor {target}` to repair what can be repaired"


class ProjectLock:
    """Project-wide writer lock: re-entrant within a process, exclusive across processes (filelock)."""

    def __init__(self, lock_file: Path, timeout: float = LOCK_TIMEOUT_S):
        self._lock = filelock.FileLock(str(lock_file), timeout=timeout, is_singleton=True)
        self._thread_lock = threading.RLock()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._thread_lock:
            try:
                self._lock.acquire()
            except filelock.Timeout:
                raise ProjectError(
                    f"another process has held the project lock {self._lock.lock_file} for "
                    f"{self._lock.timeout:.0f} s; wait for it to finish, or delete the lock file if no "
                    "napari-training-assistant process is running"
                ) from None
            except OSError as exc:  # the lock path is a folder, read-only, on a full disk, ...
                kind = "a folder" if Path(self._lock.lock_file).is_dir() else "not writable"
                raise ProjectError(
                    f"cannot take the project lock {self._lock.lock_file}: it is {kind} ({exc.strerror or exc}); "
                    "remove it if it is not a file, or check that you may write to the project folder"
                ) from None
            try:
                yield
            finally:
                self._lock.release()
