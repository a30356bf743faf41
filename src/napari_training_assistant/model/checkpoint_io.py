"""Self-describing checkpoint files: weights + architecture + metadata, always read weights-only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..project.errors import CheckpointError
from ..project.storage import atomic_output
from .state import load_state_into
from .unet import build_model

CHECKPOINT_FORMAT = "napari-training-assistant-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, model: nn.Module, architecture: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
    """Write atomically (temporary file + fsync + rename): a killed writer never leaves half a file."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": dict(architecture),
        "metadata": json.loads(json.dumps(dict(metadata or {}), default=str)),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    with atomic_output(Path(path)) as handle:
        torch.save(payload, handle)


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]:
    """(state_dict, architecture or None, metadata) from a .pt/.pth (weights_only) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = dict(handle.metadata() or {})
                state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            arch = json.loads(meta.pop("architecture")) if "architecture" in meta else None
        except Exception as exc:  # SafetensorError, bad header, bad architecture JSON
            raise CheckpointError(f"cannot read {path} as a safetensors file: {_first_line(exc)}") from None
        if arch is not None and not isinstance(arch, dict):
            raise CheckpointError(f"the 'architecture' metadata of {path} is not a JSON object")
        return state, arch, meta
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, refused globals
        raise CheckpointError(f"cannot read {path} as a weights-only PyTorch file: {_first_line(exc)}") from None
    return unwrap_payload(payload, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unwrap_payload(payload: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]:
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a state dict")
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(payload.get(key), Mapping):
            state = dict(payload[key])
            arch = payload.get("architecture")
            meta = {k: v for k, v in payload.items() if k not in (key, "architecture") and not isinstance(v, torch.Tensor)}
            return state, dict(arch) if isinstance(arch, Mapping) else None, meta
    if all(isinstance(v, torch.Tensor) for v in payload.values()):
        return dict(payload), None, {}
    raise CheckpointError(f"{path} has no state dict (looked for a tensor mapping, 'state_dict', 'model_state_dict', 'model')")


def load_model(checkpoint_path: str | Path) -> nn.Module:
    """Build the network a self-describing checkpoint names, load its weights, eval mode."""
    state, arch, _ = read_checkpoint(Path(checkpoint_path))
    model = build_model(require_architecture(arch, checkpoint_path))
    load_state_into(model, state)
    return model.eval()


def require_architecture(arch: dict[str, Any] | None, path: str | Path) -> dict[str, Any]:
    """The architecture a checkpoint names; a one-line `CheckpointError` when it names none."""
    if arch is None:
        raise CheckpointError(
            f"{path} does not say which architecture it holds; import it into a project "
            "(nta import-weights) so the project's architecture is recorded with it"
        )
    return arch
