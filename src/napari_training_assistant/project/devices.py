"""The devices a user may ask for, read without torch: one list for the CLI, the widget and the schemas.

`auto` (a CUDA GPU, else Apple MPS, else the CPU), `cpu`, `cuda` (the current GPU), `cuda:N` (GPU N) and
`mps`; `gpu` is read as `cuda`. Whether this machine has the device is `model.device`'s question (torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator

DeviceKind = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_NAMES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""What a device combo lists (an editable one also takes cuda:N)."""
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"

_PATTERN = re.compile(r"(auto|cpu|mps|gpu|cuda(?::(\d+))?)", re.IGNORECASE)


@dataclass(frozen=True)
class DeviceRequest:
    """A parsed device name: its kind and, for `cuda:N`, the GPU index."""

    kind: DeviceKind
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(text: str | None) -> DeviceRequest:
    """`text` as a `DeviceRequest` (None or blank: auto); a `ValueError` naming the allowed values otherwise."""
    name = (text or "auto").strip()
    match = _PATTERN.fullmatch(name)
    if match is None:
        raise ValueError(f"use {DEVICE_HELP}")
    kind = match[1].lower().partition(":")[0]
    return DeviceRequest("cuda" if kind == "gpu" else kind, int(match[2]) if match[2] else None)  # type: ignore[arg-type]


def _device_syntax(value: str) -> str:
    parse_device(value)
    return value.strip()


Device = Annotated[str, AfterValidator(_device_syntax)]
"""A device name checked with `parse_device` (kept as written, without surrounding spaces)."""
