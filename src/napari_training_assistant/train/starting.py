"""Resolve where a run starts: scratch, latest, a checkpoint, or an imported model (checked first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..model import build_model, load_state_into, read_checkpoint
from ..model.weights_import import WRAPPER_PREFIXES
from ..project import TrainingProject
from ..project.compatibility import require_compatible
from ..project.errors import CheckpointError
from ..project.schemas import StartingWeightsConfig
from ..project.training_project import parse_start


@dataclass(frozen=True)
class StartingPoint:
    model: nn.Module
    parent_id: str | None
    snapshot: dict[str, Any]  # recorded in the checkpoint's metadata


def resolve_start(project: TrainingProject, architecture: dict[str, Any], start: str | None) -> StartingPoint:
    """Build the network of `architecture` and load the chosen weights into it.

    The compatibility check runs before any training step: a mismatch names every differing field.
    """
    choice = parse_start(start) if start else project.starting_weights
    model = build_model(architecture)
    if choice.choice == "scratch":
        return StartingPoint(model, None, {"choice": "scratch"})
    if choice.choice in ("latest", "checkpoint"):
        record = project.checkpoints.get(choice.checkpoint_id or "latest")
        path = project.layout.absolute(record.path)
        state, stored_arch, _ = read_checkpoint(path)
        require_compatible(architecture, stored_arch or record.architecture, f"checkpoint {record.checkpoint_id}")
        load_state_into(model, state)
        return StartingPoint(model, record.checkpoint_id, _snapshot(choice, record.checkpoint_id, record.file_sha256))
    imported = project.imported_models.get(choice.imported_model_id or "")
    require_compatible(architecture, imported.architecture, f"imported model {imported.model_id}")
    state, _, _ = read_checkpoint(project.layout.absolute(imported.path))
    if imported.key_prefix_stripped:
        state = {k.removeprefix(imported.key_prefix_stripped): v for k, v in state.items()}
    elif not set(state) & set(model.state_dict()):
        state = _strip_known_prefix(state)
    load_state_into(model, state)
    return StartingPoint(model, None, _snapshot(choice, imported.model_id, imported.sha256))


def _snapshot(choice: StartingWeightsConfig, source_id: str, sha256: str) -> dict[str, Any]:
    return {"choice": choice.choice, "source_id": source_id, "sha256": sha256, "spec": choice.describe()}


def _strip_known_prefix(state: dict[str, Any]) -> dict[str, Any]:
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    raise CheckpointError("imported weights do not match the model's keys")
