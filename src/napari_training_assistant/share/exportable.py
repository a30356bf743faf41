"""The checkpoint an export starts from: completed, its file unchanged since it was registered, loadable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model import CheckpointInfo, UNet, load_model, read_checkpoint_info
from ..preprocess import MODES
from ..project import TrainingProject
from ..project.checkpoints import file_sha256
from ..project.errors import CheckpointError
from ..project.schemas import CheckpointRecord


@dataclass(frozen=True)
class Exportable:
    """A checked checkpoint: its record, file, what it says about itself, and the network (eval, cpu)."""

    record: CheckpointRecord
    path: Path
    info: CheckpointInfo
    model: UNet


def exportable_checkpoint(project: TrainingProject, checkpoint: str = "latest") -> Exportable:
    """`checkpoint` (an id, `latest` or `best`) ready to export; a one-line `CheckpointError` for a cancelled or
    failed run, a file whose sha256 no longer matches its record, or a normalisation this version cannot apply."""
    record = project.checkpoints.get(checkpoint)
    if record.status != "completed":
        raise CheckpointError(
            f"checkpoint {record.checkpoint_id} is {record.status}: only completed checkpoints are exported "
            "(choose another with `nta checkpoints`)"
        )
    path = project.layout.absolute(record.path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {record.checkpoint_id}: its file {record.path} is missing (run `nta doctor`)")
    if file_sha256(path) != record.file_sha256:
        raise CheckpointError(
            f"checkpoint {record.checkpoint_id}: {record.path} no longer matches the sha256 recorded when it was "
            "saved (changed or replaced on disk): it is not exported"
        )
    info = read_checkpoint_info(path)
    if info.normalization not in MODES:  # a centre-marker model is exported with the marker as a second input
        info.require_applicable(record.checkpoint_id)
    return Exportable(record, path, info, load_model(path))
