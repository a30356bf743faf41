"""State-dict shapes of a descriptor, and loading weights with an actionable error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..project.errors import CheckpointError
from ..project.schemas.architecture import ArchitectureConfig
from .unet import build_unallocated

_SHOWN = 3  # keys named per problem in an error message


def expected_state_shapes(architecture: Mapping[str, Any] | ArchitectureConfig) -> dict[str, tuple[int, ...]]:
    """state_dict key -> tensor shape of the U-Net the descriptor builds (built on `meta`)."""
    return {key: tuple(value.shape) for key, value in build_unallocated(architecture).state_dict().items()}


def _first(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def _shape(value: Any) -> tuple[int, ...]:
    """A tensor's shape, or the value itself when it already is a shape."""
    return tuple(value) if isinstance(value, (tuple, list)) else tuple(getattr(value, "shape", ()))


def state_problems(expected: Mapping[str, tuple[int, ...]], state_dict: Mapping[str, Any]) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches (values: tensors or shapes), each a short phrase."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} (model {expected[k]}, weights {_shape(v)})"
        for k, v in state_dict.items()
        if k in expected and _shape(v) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_first(mismatched)}")
    return problems


def load_state_into(model: nn.Module, state_dict: Mapping[str, Any]) -> nn.Module:
    """Load `state_dict` strictly into `model`; raise a one-line `CheckpointError` if it does not fit."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    problems = state_problems(expected, state_dict)
    if problems:
        raise CheckpointError("weights do not fit the model: " + "; ".join(problems))
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"weights do not fit the model: {first_line}") from exc
    return model
