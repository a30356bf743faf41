"""Read a `.safetensors` header without torch: names, shapes, dtypes and metadata, refused exactly where
the safetensors library refuses (unknown dtypes, offsets outside the file, overlapping or stray bytes),
then opened with the library itself."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from .user_input import cut, echo
from .weights_metadata import DTYPE_BITS, corrupt, decode_architecture

MAX_HEADER = 100 * 1024**2  # the limit the safetensors library itself enforces
# The dtype codes safetensors defines -> torch dtype names (sub-byte floats, which torch lacks, by their
# format); any other code is refused, as safetensors itself refuses it.
_SAFETENSORS_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "F16": "float16",
    "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32", "F64": "float64",
    "I64": "int64", "U64": "uint64", "C64": "complex64", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz", "F4": "float4_e2m1fn", "F6_E2M3": "float6_e2m3fn", "F6_E3M2": "float6_e3m2fn",
}  # fmt: skip
_SUB_BYTE_BITS = {"float4_e2m1fn": 4, "float6_e2m3fn": 6, "float6_e3m2fn": 6}




def read_safetensors(file: Path, size: int) -> tuple[dict, dict, dict, dict | None]:
    with file.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise corrupt(file, "too short for a safetensors header")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(MAX_HEADER, size - 8):
            raise corrupt(file, "the safetensors header length is larger than the file (truncated?)")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise corrupt(file, "the safetensors header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise corrupt(file, "the safetensors header is not a JSON object")

    meta_raw = header.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict):
        raise corrupt(file, "the safetensors __metadata__ is not a JSON object")
    metadata = {str(k): v for k, v in meta_raw.items()}
    architecture = None
    if "architecture" in metadata:
        architecture = decode_architecture(metadata.pop("architecture"), file)

    data_len = size - 8 - header_len
    tensors: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        try:
            code, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (
                isinstance(code, str)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                and all(isinstance(o, int) and not isinstance(o, bool) for o in (begin, end))
            )
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise corrupt(file, f"the header entry for tensor {echo(name)} is malformed")
        if not 0 <= begin <= end <= data_len:
            raise corrupt(file, f"tensor {echo(name)} lies outside the file (truncated?)")
        dtype = _SAFETENSORS_DTYPES.get(code)
        if dtype is None:
            raise corrupt(file, f"tensor {echo(name)} has dtype {echo(code)}, which safetensors does not define")
        bits = DTYPE_BITS.get(dtype) or _SUB_BYTE_BITS[dtype]
        if end - begin != (math.prod(shape) * bits + 7) // 8:
            raise corrupt(
                file, f"tensor {echo(name)} has {end - begin} bytes, not what its shape and dtype need"
            )
        tensors[name] = tuple(shape)
        dtypes[name] = dtype
        spans.append((begin, end, name))
    _check_layout(file, spans, data_len)
    _check_with_library(file)
    return tensors, dtypes, metadata, architecture


def _check_layout(file: Path, spans: list[tuple[int, int, str]], data_len: int) -> None:
    """Tensors tile the data section exactly, in offset order (the rule safetensors enforces)."""
    position, previous = 0, None
    for begin, end, name in sorted(spans):
        if begin < position:
            raise corrupt(file, f"tensors {echo(previous)} and {echo(name)} overlap in the data section")
        if begin > position:
            raise corrupt(file, f"{begin - position} byte(s) before tensor {echo(name)} belong to no tensor")
        position, previous = end, name
    if position != data_len:
        raise corrupt(file, f"{data_len - position} byte(s) after the last tensor belong to no tensor")


def _check_with_library(file: Path) -> None:
    """Open the file with the safetensors library itself (header only; numpy, no torch): what it
    refuses, the project refuses too."""
    try:
        from safetensors import safe_open
    except ImportError:  # the checks above stand alone
        return
    try:
        with safe_open(str(file), framework="numpy"):
            pass
    except Exception as exc:  # SafetensorError, OSError: anything the library refuses
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise corrupt(file, f"safetensors refuses it ({cut(reason)})") from exc
