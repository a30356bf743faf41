"""`nta export`: a checkpoint as a bioimage.io package, an ONNX file or a TorchScript file, written atomically
(an existing output is replaced only when asked, and only once the new one is complete)."""

from __future__ import annotations

import getpass
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..project import TrainingProject
from ..project.errors import ProjectError

ExportFormat = Literal["bioimageio", "onnx", "torchscript"]
EXPORT_FORMATS: tuple[str, ...] = ("bioimageio", "onnx", "torchscript")
SUFFIXES = {"bioimageio": (".zip",), "onnx": (".onnx",), "torchscript": (".pt", ".pth", ".torchscript")}
MAX_AUTHOR = 200
REQUIREMENTS = {"bioimageio": ("bioimageio.spec", "onnx", "onnxscript"), "onnx": ("onnx", "onnxscript"), "torchscript": ()}


class ExportError(ProjectError):
    """A one-line reason why nothing was exported."""


@dataclass(frozen=True)
class ExportResult:
    format: str
    path: Path
    checkpoint_id: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def export_model(
    project: TrainingProject,
    checkpoint: str = "latest",
    *,
    format: ExportFormat = "bioimageio",
    output: str | Path,
    overwrite: bool = False,
    authors: Sequence[str] = (),
    license: str = "CC-BY-4.0",
) -> ExportResult:
    """Export `checkpoint` (id, `latest` or `best`) of `project` to `output`."""
    if format not in EXPORT_FORMATS:  # (a centre-marker point model's exports take `input` and `marker`)
        raise ExportError(f"unknown export format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    output = Path(output).expanduser()
    _check_output(output, format, overwrite)
    _check_requirements(format)
    authors = _check_authors(authors)
    if format == "bioimageio":
        _check_license(license)
    from .exportable import exportable_checkpoint

    started = time.perf_counter()
    source = exportable_checkpoint(project, checkpoint)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".nta-export-", dir=output.parent) as tmp:
        work = Path(tmp)
        staged = work / f"staged{output.suffix}"
        details: dict[str, Any] = {}
        if format == "onnx":
            from ..model.torch_export import export_onnx

            details["opset"] = export_onnx(source.model, staged, marker=source.info.centre_marker)
        elif format == "torchscript":
            from ..model.torch_export import export_torchscript

            export_torchscript(source.model, staged, marker=source.info.centre_marker)
        else:
            details = _bioimageio(project, source, work, staged, authors, license)
        os.replace(staged, output)
    return ExportResult(format, output, source.record.checkpoint_id, round(time.perf_counter() - started, 2), details)


def _bioimageio(project, source, work: Path, staged: Path, authors: Sequence[str], license: str) -> dict[str, Any]:
    from bioimageio.spec import save_bioimageio_package

    from .bioimageio_package import WEIGHT_FORMATS, build_package

    files = work / "package"
    files.mkdir()
    descr = build_package(project, source, files, authors=authors, license=license)
    save_bioimageio_package(descr, output_path=staged, weights_priority_order=None)
    return {"name": descr.name, "weight_formats": list(WEIGHT_FORMATS)}


def _check_output(output: Path, format: str, overwrite: bool) -> None:
    if output.suffix.lower() not in SUFFIXES[format]:
        raise ExportError(f"output {output} should end with {' or '.join(SUFFIXES[format])} for --format {format}")
    if output.is_dir():
        raise ExportError(f"output {output} is a folder: give a file name ending with {SUFFIXES[format][0]}")
    if output.exists() and not overwrite:
        raise ExportError(f"output {output} exists: choose another path or allow replacing it (--overwrite, or the dialog's checkbox)")


def _check_requirements(format: str) -> None:
    import importlib.util

    missing = [name for name in REQUIREMENTS[format] if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"--format {format} needs {', '.join(missing)}: pip install \"napari-training-assistant[share]\""
        )


def _check_authors(authors: Sequence[str]) -> list[str]:
    names = [str(a).strip() for a in authors]
    if any(not name or len(name) > MAX_AUTHOR for name in names):
        raise ExportError(f"an --author name is empty or longer than {MAX_AUTHOR} characters: give each author's name")
    return names or [_default_author()]


def _check_license(license: str) -> None:
    """An SPDX id that bioimage.io accepts (its own list)."""
    import pydantic
    from bioimageio.spec.generic.v0_3 import LicenseId

    try:
        pydantic.TypeAdapter(LicenseId).validate_python(license)
    except pydantic.ValidationError:
        raise ExportError(f"--license {license!r} is not an SPDX license id bioimage.io accepts (e.g. CC-BY-4.0, MIT, BSD-3-Clause)") from None


def _default_author() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


__all__ = ["EXPORT_FORMATS", "ExportError", "ExportResult", "export_model"]
