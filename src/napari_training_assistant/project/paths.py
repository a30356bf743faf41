"""Path confinement and record ids: the one gate between a name in a project file and the disk.

A project folder travels between people and machines, so every file name a record holds is untrusted.
`check_relative` is applied by the schemas when a file is read or written (no record can hold `..`,
an absolute path or a drive); `confine` is applied whenever a record's path is turned into a path on
disk, after resolving symlinks, so a link inside the project that points outside is refused as well.
`check_id` is the one pattern for ids that become file or folder names (runs, checkpoints, pairs).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import ProjectError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MAX_PATH_CHARS = 1024


class PathOutsideProjectError(ProjectError):
    """A record names a file outside the project folder (or not in the project's path form)."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


def check_id(value: str, what: str = "id") -> str:
    """`value` when it is a plain id (letters, digits, `_`, `-`, `.`; no separators, not `.`/`..`)."""
    if not isinstance(value, str) or not ID_PATTERN.match(value) or set(value) == {"."}:
        raise ValueError(f"{what} {_shown(value)} is not a valid id: use letters, digits, '_', '-' and '.', no path separators")
    return value


def check_relative(value: str) -> str:
    """`value` when it is a normalised, relative POSIX path that stays inside its folder."""
    if not isinstance(value, str) or not value or len(value) > _MAX_PATH_CHARS or "\x00" in value:
        raise ValueError(f"{_shown(value)} is not a project path: it must be a relative path such as 'dataset/images/pair_0001.tif'")
    if "\\" in value or PureWindowsPath(value).drive or PurePosixPath(value).is_absolute():
        raise ValueError(f"{_shown(value)} is absolute or has a drive or backslash: project paths are relative, with '/'")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{_shown(value)} is not normalised (empty, '.' or '..' parts): project paths stay inside the project")
    return value


def check_relative_path(root: Path, relative: str) -> None:
    """`check_relative`, with the one-line project error (and the doctor hint) when it fails."""
    try:
        check_relative(relative)
    except ValueError as exc:
        raise PathOutsideProjectError(f"{exc}; the record was edited by hand or comes from elsewhere: run `nta doctor {root}`") from None


def confine(root: Path, relative: str) -> Path:
    """The path on disk of a project-relative path, refused (one line) unless it is inside `root` after
    resolving symlinks. Never follows the path outside: nothing is opened here."""
    check_relative_path(root, relative)
    path = Path(root) / relative
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise PathOutsideProjectError(
            f"{relative} resolves to {real}, outside the project {real_root} (a symbolic link?): "
            f"replace the link by the file itself, or run `nta doctor {root}`"
        )
    return path


def relative_to_root(root: Path, path: Path) -> str:
    """`path` (inside `root`, symlinks not resolved) as the POSIX relative path a record stores."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if relative.split(os.sep)[0] == "..":  # one of them was given through a symlink
        relative = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    try:
        return check_relative(Path(relative).as_posix())
    except ValueError:
        raise PathOutsideProjectError(f"{path} is not inside the project {root}") from None
