"""What both weights readers share: element sizes of torch dtypes, the corrupt-file error, and the
JSON-like copy of metadata (bounded in depth and size, so no file can make it run away)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CheckpointError

# torch dtype name -> bits per element (canonical names, as `str(torch.float32)` minus "torch.").
DTYPE_BITS = {
    "bool": 8, "uint8": 8, "int8": 8, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32,
    "int64": 64, "uint64": 64, "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64,
    "complex32": 32, "complex64": 64, "complex128": 128, "float8_e4m3fn": 8, "float8_e5m2": 8,
    "float8_e4m3fnuz": 8, "float8_e5m2fnuz": 8, "float8_e8m0fnu": 8,
}  # fmt: skip

def corrupt(file: Path, what: str) -> CheckpointError:
    return CheckpointError(f"corrupt weights file {file}: {what}; download or save it again")


def decode_architecture(value: Any, file: Path) -> dict[str, Any]:
    """The architecture descriptor: a JSON-like dict, or JSON text of one."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise CheckpointError(
                f"the 'architecture' entry of {file} is not valid JSON; save the checkpoint again"
            ) from exc
    copy = plain(value, [MAX_NODES])
    if not isinstance(copy, dict):
        raise CheckpointError(
            f"the 'architecture' entry of {file} is not a plain dict; save the checkpoint again"
        )
    return copy


DROP = object()  # marks a value that is not JSON-like
MAX_DEPTH = 64  # deeper metadata is dropped (a pickle can also hold cycles)
# Values visited per metadata entry and per file: a small pickle can reference one list exponentially often.
MAX_NODES = 20_000
MAX_NODES_PER_FILE = 1_000_000


def plain(value: Any, budget: list[int], depth: int = 0) -> Any:
    """A JSON-like copy of `value` (tuples become lists), dropping what is not JSON-like.

    Dict entries with non-str keys or non-JSON-like values are dropped (a dict emptied that way is
    dropped too); a list with any such item is dropped as a whole. Returns `DROP` to drop `value`.
    `budget[0]` counts down the values visited; past it, or past `MAX_DEPTH`, values are dropped.
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        return DROP
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            converted = plain(item, budget, depth + 1) if isinstance(key, str) else DROP
            if converted is not DROP:
                out[key] = converted
        return DROP if value and not out else out
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            items.append(plain(item, budget, depth + 1))
            if items[-1] is DROP:
                return DROP
        return items
    return DROP
