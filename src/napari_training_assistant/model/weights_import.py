"""Import pretrained weights into a project: inspect safely, check against the architecture, copy, record."""

from __future__ import annotations

from pathlib import Path

from ..project import TrainingProject
from ..project.errors import CheckpointError
from ..project.schemas import ArchitectureConfig, ImportedModel
from ..project.weights_file import WeightsInfo, inspect_weights
from .state import expected_state_shapes, state_problems
from .unet import validate_architecture

WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "model.", "net.", "unet.")


def import_weights(project: TrainingProject, file: str | Path) -> ImportedModel:
    """The file is never unpickled with code execution; keys and shapes must fit its architecture
    (the one stored in the file, else the project's)."""
    source = Path(file).expanduser()
    info = inspect_weights(source)  # refuses unsafe pickles before anything is copied
    architecture = stated_architecture(info, project)
    prefix, problems = fitting_prefix(info, architecture)
    if prefix is None:
        raise CheckpointError(
            f"{source.name} does not fit the {'stored' if info.architecture else 'project'} architecture "
            f"({problems}); set the project's architecture to the one the weights were trained with"
        )
    return project.imported_models.add(source, info, architecture.model_dump(mode="json"), prefix)


def stated_architecture(info: WeightsInfo, project: TrainingProject) -> ArchitectureConfig:
    """The architecture stored in a self-describing file, else the project's."""
    if info.architecture is None:
        return project.architecture
    return validate_architecture(info.architecture)


def fitting_prefix(info: WeightsInfo, architecture: ArchitectureConfig) -> tuple[str | None, str]:
    """(prefix, "") when the keys and shapes fit `architecture` after removing `prefix` ('' or a wrapper prefix),
    else (None, the problems in one phrase)."""
    expected = expected_state_shapes(architecture)
    prefix = _matching_prefix(info, expected)
    return (prefix, "") if prefix is not None else (None, "; ".join(state_problems(expected, info.tensors)))


def _matching_prefix(info: WeightsInfo, expected: dict[str, tuple[int, ...]]) -> str | None:
    """'' when keys fit as they are, a wrapper prefix ('module.', ...) when stripping it fits, else None."""
    for prefix in ("", *WRAPPER_PREFIXES):
        if prefix and not all(k.startswith(prefix) for k in info.tensors):
            continue
        stripped = {k[len(prefix) :]: tuple(v) for k, v in info.tensors.items()}
        if stripped == {k: tuple(v) for k, v in expected.items()}:
            return prefix
    return None
