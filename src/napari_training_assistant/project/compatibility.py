"""Can weights made for one architecture be loaded into another? (no torch needed)"""

from __future__ import annotations

from typing import Any

from .errors import IncompatibleArchitectureError
from .schemas import architecture_differences


def describe_differences(expected: dict[str, Any], found: dict[str, Any]) -> str:
    return ", ".join(f"{name}: project has {a!r}, weights have {b!r}" for name, a, b in architecture_differences(expected, found))


def require_compatible(expected: dict[str, Any], found: dict[str, Any], what: str) -> None:
    """Raise naming every differing field with both values, e.g. 'depth: project has 4, weights have 3'."""
    if architecture_differences(expected, found):
        raise IncompatibleArchitectureError(
            f"{what} does not fit the project's architecture ({describe_differences(expected, found)}); "
            "change the architecture to match, or start from scratch"
        )
