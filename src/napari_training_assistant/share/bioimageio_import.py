"""Import a bioimage.io model package (a .zip, a folder, or its rdf.yaml) as starting weights.

Only two things are read from a package: its description (YAML, safe-loaded) and the file its
`weights.pytorch_state_dict` names, copied (size-capped) to a temporary folder and inspected like any imported
weights file (never unpickled with code execution; loaded later with `weights_only=True`). The package's Python
code is never imported or run: a U-Net exported by this tool (`nta_unet` with a valid architecture) is rebuilt
from its kwargs, any other architecture only imports when its keys and shapes fit the project's U-Net.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml

from ..model.architecture_source import CALLABLE, MARKED_CALLABLE
from ..model.unet import validate_architecture
from ..model.weights_import import fitting_prefix, import_weights, stated_architecture
from ..project import TrainingProject
from ..project.compatibility import describe_differences
from ..project.errors import CheckpointError, ProjectError
from ..project.schemas import ArchitectureConfig, ImportedModel, architecture_differences
from ..project.weights_file import WeightsInfo, inspect_weights

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
PACKAGE_SUFFIXES = (".zip", ".yaml", ".yml")
OWN_CALLABLES = (CALLABLE, MARKED_CALLABLE)  # the architecture callables of this tool's exports
CONFIG_KEY = "napari_training_assistant"  # where this tool's exports keep their lineage
WEIGHT_FORMAT = "pytorch_state_dict"
MAX_DESCRIPTION_BYTES = 16 * 1024**2
MAX_WEIGHTS_BYTES = 4 * 1024**3
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError)


def import_pretrained(project: TrainingProject, path: str | Path) -> ImportedModel:
    """`nta import-weights`: a bioimage.io package (.zip, folder or its rdf.yaml), else a weights file."""
    path = Path(path).expanduser()
    if path.is_dir() or path.suffix.lower() in PACKAGE_SUFFIXES:
        return import_package(project, path)
    return import_weights(project, path)


def import_package(project: TrainingProject, source: str | Path) -> ImportedModel:
    """Import the pytorch_state_dict weights of a bioimage.io model package, with the package's id, version,
    authors and (for this tool's exports) lineage recorded; refusals are one line and write nothing."""
    source = Path(source).expanduser()
    with tempfile.TemporaryDirectory(prefix="nta-package-") as tmp, _open(source) as package:
        rdf = _model_description(package)
        entry = _state_dict_entry(rdf, package.label)
        member = _member_name(entry.get("source"), package.label)
        # a state dict saved with torch.save whatever its name in the package (.pth, .ckpt, .bin, ...)
        staged = Path(tmp) / ("weights.safetensors" if member.lower().endswith(".safetensors") else "weights.pt")
        package.copy(member, staged)
        info = _inspect(staged, entry, f"{package.label}:{member}")
        callable_name, defined_in, kwargs = _architecture(entry)
        own = _own_architecture(callable_name, kwargs)
        _check_dimensions(project, own.spatial_dims if own else _input_dims(rdf), package.label)
        architecture = own or stated_architecture(info, project)
        prefix, problems = fitting_prefix(info, architecture)
        if prefix is None:
            fitted = "its own" if own else "the stored" if info.architecture else "this project's"
            raise CheckpointError(
                f"{package.label}: architecture `{callable_name}` from {defined_in} with keys that do not fit "
                f"{fitted} architecture ({problems}); only U-Nets this project builds can be imported"
            )
        record = _package_record(rdf, package, callable_name)
        return project.imported_models.add(staged, info, architecture.model_dump(mode="json"), prefix, record)


def describe_import(project: TrainingProject, record: ImportedModel) -> str:
    """One line: what was imported (a package's name, id, version and authors), and whether its architecture
    differs from the project's."""
    package = record.package
    what = record.source_filename
    if package:
        facts = [f"{key} {package[key]}" for key in ("id", "version") if package.get(key)]
        facts.append(f"by {', '.join(package.get('authors') or []) or 'unnamed authors'}")
        what = f"bioimage.io model '{record.name}' from {what} ({', '.join(facts)})"
    line = f"{what} as {record.model_id} ({record.tensor_count} tensors) -> {record.path}"
    project_arch = project.architecture.model_dump(mode="json")
    if architecture_differences(project_arch, record.architecture):
        line += (
            f"; its architecture differs from the project's ({describe_differences(project_arch, record.architecture)}): "
            "set the project's architecture to match before training from it"
        )
    return line


# ---------------------------------------------------------------------------------------------- reading


class _ZipPackage:
    """A zipped package: member names are checked before anything is read; reads are size-capped."""

    def __init__(self, file: Path):
        self.label = file.name
        try:
            self.sha256 = _sha256(file)
            self._zip = zipfile.ZipFile(file)
            self._infos = {info.filename: info for info in self._zip.infolist()}
        except _ZIP_ERRORS as exc:
            raise CheckpointError(f"{file.name} is not a readable zip archive ({exc}); download the package again") from exc
        unsafe = next((name for name in self._infos if _unsafe(name)), None)
        if unsafe is not None:
            self._zip.close()
            raise CheckpointError(f"refusing {file.name}: its member {unsafe!r} points outside the package")

    def description(self) -> tuple[str, bytes]:
        names = [n for n in self._infos if "/" not in n]
        name = next((n for n in DESCRIPTION_NAMES if n in names), None) or next((n for n in names if n.endswith(".bioimageio.yaml")), None)
        if name is None:
            raise CheckpointError(f"{self.label} is not a bioimage.io package: no rdf.yaml or bioimageio.yaml at its top level")
        target = bytearray()
        self._read(name, MAX_DESCRIPTION_BYTES, target.extend)
        return name, bytes(target)

    def copy(self, member: str, target: Path) -> None:
        with target.open("wb") as out:
            self._read(member, MAX_WEIGHTS_BYTES, out.write)

    def _read(self, member: str, limit: int, write) -> None:
        info = self._infos.get(member)
        if info is None:
            raise CheckpointError(f"{self.label} names {member} but does not contain it; download the package again")
        if info.file_size > limit:
            raise CheckpointError(f"{self.label}: {member} is {info.file_size / 1024**2:.0f} MiB, over the {limit / 1024**2:.0f} MiB limit")
        try:
            with self._zip.open(info) as stream:
                _copy_capped(stream, write, limit, f"{self.label}: {member}")
        except _ZIP_ERRORS as exc:
            raise CheckpointError(f"{self.label} is corrupt: {member} cannot be read ({exc}); download the package again") from exc

    def __enter__(self) -> _ZipPackage:
        return self

    def __exit__(self, *_: Any) -> None:
        self._zip.close()


class _FolderPackage:
    """An unpacked package: files are read only from inside its folder (after resolving links)."""

    def __init__(self, folder: Path, description: Path | None = None):
        self.label = folder.name
        self.sha256 = None
        self._folder = folder.resolve()
        self._description = description

    def description(self) -> tuple[str, bytes]:
        candidates = [self._description] if self._description else [self._folder / n for n in DESCRIPTION_NAMES]
        file = next((f for f in candidates if f.is_file()), None)
        if file is None:
            raise CheckpointError(
                f"{self.label} is a folder but not a bioimage.io package (no rdf.yaml or bioimageio.yaml in it); "
                "pass a weights file or a package"
            )
        return file.name, self._bytes(file, MAX_DESCRIPTION_BYTES)

    def copy(self, member: str, target: Path) -> None:
        file = self._inside(member)
        self._check_size(file, MAX_WEIGHTS_BYTES, member)
        shutil.copyfile(file, target)

    def _inside(self, member: str) -> Path:
        file = (self._folder / member).resolve()
        if not file.is_relative_to(self._folder):
            raise CheckpointError(f"refusing {self.label}: {member} points outside the package folder")
        if not file.is_file():
            raise CheckpointError(f"{self.label} names {member} but does not contain it; download the package again")
        return file

    def _check_size(self, file: Path, limit: int, member: str) -> None:
        if file.stat().st_size > limit:
            raise CheckpointError(f"{self.label}: {member} is {file.stat().st_size / 1024**2:.0f} MiB, over the {limit / 1024**2:.0f} MiB limit")

    def _bytes(self, file: Path, limit: int) -> bytes:
        self._check_size(file, limit, file.name)
        return file.read_bytes()

    def __enter__(self) -> _FolderPackage:
        return self

    def __exit__(self, *_: Any) -> None:
        pass


def _open(source: Path) -> _ZipPackage | _FolderPackage:
    if source.is_dir():
        return _FolderPackage(source)
    if not source.is_file():
        raise CheckpointError(f"package not found: {source}; check the path")
    if source.suffix.lower() in (".yaml", ".yml"):
        return _FolderPackage(source.parent, source)
    return _ZipPackage(source)


def _model_description(package: _ZipPackage | _FolderPackage) -> dict[str, Any]:
    name, data = package.description()
    try:
        rdf = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise CheckpointError(f"{package.label}: {name} is not valid YAML{where}; download the package again") from exc
    if not isinstance(rdf, dict):
        raise CheckpointError(f"{package.label}: {name} is not a bioimage.io description (no mapping at its top level)")
    if rdf.get("type") != "model":
        raise CheckpointError(
            f"{package.label} describes a bioimage.io {_text(rdf.get('type')) or 'resource without a type'} "
            f"('{_text(rdf.get('name'))}'), not a model: only model packages hold weights to import"
        )
    return rdf


def _state_dict_entry(rdf: dict[str, Any], label: str) -> dict[str, Any]:
    weights = rdf.get("weights") if isinstance(rdf.get("weights"), dict) else {}
    entry = weights.get(WEIGHT_FORMAT)
    if not isinstance(entry, dict) or not entry.get("source"):
        formats = ", ".join(str(k) for k in weights) or "none"
        raise CheckpointError(
            f"{label}: model '{_text(rdf.get('name'))}' has no {WEIGHT_FORMAT} weights (it has: {formats}); "
            f"only {WEIGHT_FORMAT} weights can be imported"
        )
    return entry


def _member_name(source: Any, label: str) -> str:
    text = str(source)
    if "://" in text:
        raise CheckpointError(f"{label}: its weights are at {text}, not in the package; download the package with its files and import that")
    if _unsafe(text):
        raise CheckpointError(f"refusing {label}: its weights source {text!r} points outside the package")
    return PurePosixPath(text).as_posix()


def _unsafe(name: str) -> bool:
    """Absolute, a drive, a backslash or a '..' component: never a file of the package itself."""
    path = PurePosixPath(name)
    return path.is_absolute() or "\\" in name or ".." in path.parts or (bool(path.parts) and ":" in path.parts[0])


def _copy_capped(stream: IO[bytes], write, limit: int, what: str) -> None:
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise CheckpointError(f"{what} is over the {limit / 1024**2:.0f} MiB limit")
        write(chunk)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- mapping


def _inspect(staged: Path, entry: dict[str, Any], shown: str) -> WeightsInfo:
    """The staged weights, inspected without running them; messages name the file inside the package."""
    try:
        info = inspect_weights(staged)
    except CheckpointError as exc:
        raise CheckpointError(str(exc).replace(str(staged), shown)) from exc
    recorded = entry.get("sha256")
    if recorded and str(recorded).lower() != info.sha256:
        raise CheckpointError(f"{shown} does not match the sha256 its package records: the package is corrupt or was changed")
    return info


def _architecture(entry: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(callable, where it is defined, kwargs) of a 0.5 `{source | import_from, callable, kwargs}` or a 0.4
    `file.py:Name` / `module.Name` entry; nothing is imported."""
    arch = entry.get("architecture")
    if isinstance(arch, dict):
        callable_name, where, kwargs = arch.get("callable"), arch.get("source") or arch.get("import_from"), arch.get("kwargs")
    else:
        text = _text(arch)
        where, _, callable_name = text.rpartition(":" if ":" in text else ".")
        kwargs = entry.get("kwargs")
    return _text(callable_name) or "unnamed", _text(where) or "an unnamed source", kwargs if isinstance(kwargs, dict) else {}


def _own_architecture(callable_name: str, kwargs: dict[str, Any]) -> ArchitectureConfig | None:
    """The U-Net of one of this tool's exports, rebuilt from its kwargs; None for any other architecture."""
    if callable_name not in OWN_CALLABLES:
        return None
    try:
        return validate_architecture(kwargs)
    except ProjectError:
        return None


def _input_dims(rdf: dict[str, Any]) -> str | None:
    """'2d' or '3d' from the first input's spatial axes (0.5: axis objects; 0.4: a string such as 'bczyx')."""
    inputs = rdf.get("inputs")
    first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
    axes = first.get("axes")
    if isinstance(axes, str):
        count = sum(axis in "zyx" for axis in axes)
    elif isinstance(axes, list):
        count = sum(isinstance(axis, dict) and axis.get("type") == "space" for axis in axes)
    else:
        return None
    return {2: "2d", 3: "3d"}.get(count)


def _check_dimensions(project: TrainingProject, dims: str | None, label: str) -> None:
    project_dims = project.architecture.spatial_dims
    if dims and dims != project_dims:
        raise CheckpointError(
            f"{label} holds a {dims.upper()} model and this project is {project_dims.upper()}: "
            f"import it into a {dims.upper()} project"
        )


def _package_record(rdf: dict[str, Any], package: _ZipPackage | _FolderPackage, callable_name: str) -> dict[str, Any]:
    """What `ImportedModel.package` keeps: the package's identity, and the lineage of this tool's exports."""
    config = rdf.get("config") if isinstance(rdf.get("config"), dict) else {}
    bioimageio = config.get("bioimageio") if isinstance(config.get("bioimageio"), dict) else {}
    authors = rdf.get("authors") if isinstance(rdf.get("authors"), list) else []
    record: dict[str, Any] = {
        "format": "bioimageio",
        "format_version": _text(rdf.get("format_version")) or None,
        "name": _text(rdf.get("name")) or Path(package.label).stem,
        "id": _text(rdf.get("id") or bioimageio.get("nickname")) or None,
        "version": _text(rdf.get("version")) or None,
        "authors": [_text(a.get("name") if isinstance(a, dict) else a) for a in authors][:50],
        "description": _text(rdf.get("description"), 500),
        "license": _text(rdf.get("license")) or None,
        "source": package.label,
        "sha256": package.sha256,
        "weights_format": WEIGHT_FORMAT,
        "architecture_callable": callable_name,
    }
    own = config.get(CONFIG_KEY)
    if isinstance(own, dict):
        checkpoint = own.get("checkpoint") if isinstance(own.get("checkpoint"), dict) else {}
        dataset = own.get("dataset") if isinstance(own.get("dataset"), dict) else {}
        record["exported_from"] = {
            "tool": _text(own.get("tool")),
            "tool_version": _text(own.get("tool_version")),
            "project": _text(own.get("project")),
            "checkpoint_id": _text(checkpoint.get("id")),
            "checkpoint_sha256": _text(checkpoint.get("sha256")),
            "manifest_sha256": _text(dataset.get("manifest_sha256")),
        }
    return record


def _text(value: Any, limit: int = 200) -> str:
    """A scalar of the description as bounded text ('' for missing values and containers)."""
    return "" if value is None or isinstance(value, dict | list) else str(value)[:limit]
