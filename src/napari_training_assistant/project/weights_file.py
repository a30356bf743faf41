"""What a PyTorch (.pt/.pth) or safetensors weights file holds, read without torch and without running it.

A torch file is a zip holding `<archive>/data.pkl` (a pickle) and `<archive>/data/<key>` (raw tensor
bytes). Unpickling normally imports whatever the pickle names, so a hostile file can run code. Here the
pickle is read by an unpickler that resolves only an explicit allowlist of names, each to a harmless
stand-in that records shape and dtype; any other name is refused before anything is called. Storage
bytes are never read: shapes are checked against the sizes recorded in the zip directory instead.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from .errors import CheckpointError
from .user_input import cut, echo

__all__ = ["ACCEPTED_SUFFIXES", "WeightsInfo", "inspect_weights", "strip_prefix"]

ACCEPTED_SUFFIXES = (".pt", ".pth", ".safetensors")

# Keys under which third-party checkpoints nest the state dict, in order of preference.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_MAX_PICKLE_BYTES = 64 * 1024**2  # a data.pkl needs ~100 bytes per tensor
_MAX_SAFETENSORS_HEADER = 100 * 1024**2  # the limit the safetensors library itself enforces

# torch dtype name -> bits per element (canonical names, as `str(torch.float32)` minus "torch.").
_DTYPE_BITS = {
    "bool": 8, "uint8": 8, "int8": 8, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32,
    "int64": 64, "uint64": 64, "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64,
    "complex32": 32, "complex64": 64, "complex128": 128, "float8_e4m3fn": 8, "float8_e5m2": 8,
    "float8_e4m3fnuz": 8, "float8_e5m2fnuz": 8, "float8_e8m0fnu": 8,
}  # fmt: skip
_DTYPE_ALIASES = {
    "float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
    "short": "int16", "cfloat": "complex64", "cdouble": "complex128", "chalf": "complex32",
}  # fmt: skip
# Legacy typed-storage class names that torch.save still writes -> dtype of their elements.
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
}  # fmt: skip
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

T = TypeVar("T")


@dataclass(frozen=True)
class WeightsInfo:
    """Tensor names, shapes and dtypes of a weights file, plus its plain (JSON-like) metadata.

    `dtypes` uses torch names without the prefix ("float32", "bfloat16", ...) for both formats.
    `architecture` is the descriptor of one of our self-describing checkpoints, else None; it is not
    repeated in `metadata`. `sha256` is the hex digest of the file's bytes.
    """

    format: Literal["pt", "safetensors"]
    tensors: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    architecture: dict[str, Any] | None
    metadata: dict[str, Any]
    sha256: str


def strip_prefix(mapping: Mapping[str, T], prefix: str) -> dict[str, T]:
    """Entries whose key starts with `prefix`, with it removed; other entries are dropped.

    E.g. `strip_prefix(info.tensors, "model.")` for a Lightning checkpoint, or "module." for DDP.
    """
    return {key[len(prefix) :]: value for key, value in mapping.items() if key.startswith(prefix)}


def inspect_weights(path: str | os.PathLike[str]) -> WeightsInfo:
    """Read names, shapes, dtypes and metadata of a .pt/.pth/.safetensors file; never runs its code.

    Raises `CheckpointError` for a missing, unsupported, corrupt or unsafe file.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        raise CheckpointError(
            f"unsupported weights file {file}: expected a {', '.join(ACCEPTED_SUFFIXES)} file; "
            "save the weights with torch.save or safetensors and import that file"
        )
    if not file.exists():
        raise CheckpointError(f"weights file not found: {file}; check the path")
    if not file.is_file():
        raise CheckpointError(f"{file} is a folder, not a weights file; pass the file inside it")
    try:
        digest, size, head = _hash_file(file)
    except OSError as exc:
        raise CheckpointError(
            f"cannot read weights file {file}: {exc.strerror or exc}; check its permissions"
        ) from exc
    if size == 0:
        raise CheckpointError(f"weights file {file} is empty; save the weights again")
    if suffix == ".safetensors":
        tensors, dtypes, metadata, architecture = _read_safetensors(file, size)
        fmt: Literal["pt", "safetensors"] = "safetensors"
    else:
        tensors, dtypes, metadata, architecture = _read_torch(file, head)
        fmt = "pt"
    if not tensors:
        raise CheckpointError(
            f"no tensors found in {file}: expected a state dict (name -> tensor); "
            "save model.state_dict() and import that file"
        )
    return WeightsInfo(fmt, tensors, dtypes, architecture, metadata, digest)


# ---------------------------------------------------------------------------------------------- helpers


def _hash_file(file: Path) -> tuple[str, int, bytes]:
    """sha256 hex digest, size and first 8 bytes of the file."""
    sha = hashlib.sha256()
    size = 0
    head = b""
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            if size == 0:
                head = chunk[:8]
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size, head


def _corrupt(file: Path, what: str) -> CheckpointError:
    return CheckpointError(f"corrupt weights file {file}: {what}; download or save it again")


def _decode_architecture(value: Any, file: Path) -> dict[str, Any]:
    """The architecture descriptor: a JSON-like dict, or JSON text of one."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise CheckpointError(
                f"the 'architecture' entry of {file} is not valid JSON; save the checkpoint again"
            ) from exc
    plain = _plain(value, [_MAX_NODES])
    if not isinstance(plain, dict):
        raise CheckpointError(
            f"the 'architecture' entry of {file} is not a plain dict; save the checkpoint again"
        )
    return plain


_DROP = object()  # marks a value that is not JSON-like
_MAX_DEPTH = 64  # deeper metadata is dropped (a pickle can also hold cycles)
# Values visited per metadata entry and per file: a small pickle can reference one list exponentially often.
_MAX_NODES = 20_000
_MAX_NODES_PER_FILE = 1_000_000


def _plain(value: Any, budget: list[int], depth: int = 0) -> Any:
    """A JSON-like copy of `value` (tuples become lists), dropping what is not JSON-like.

    Dict entries with non-str keys or non-JSON-like values are dropped (a dict emptied that way is
    dropped too); a list with any such item is dropped as a whole. Returns `_DROP` to drop `value`.
    `budget[0]` counts down the values visited; past it, or past `_MAX_DEPTH`, values are dropped.
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        return _DROP
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            converted = _plain(item, budget, depth + 1) if isinstance(key, str) else _DROP
            if converted is not _DROP:
                out[key] = converted
        return _DROP if value and not out else out
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            items.append(_plain(item, budget, depth + 1))
            if items[-1] is _DROP:
                return _DROP
        return items
    return _DROP


# ---------------------------------------------------------------------------------------------- safetensors


def _read_safetensors(file: Path, size: int) -> tuple[dict, dict, dict, dict | None]:
    with file.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _corrupt(file, "too short for a safetensors header")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(_MAX_SAFETENSORS_HEADER, size - 8):
            raise _corrupt(file, "the safetensors header length is larger than the file (truncated?)")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _corrupt(file, "the safetensors header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise _corrupt(file, "the safetensors header is not a JSON object")

    meta_raw = header.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict):
        raise _corrupt(file, "the safetensors __metadata__ is not a JSON object")
    metadata = {str(k): v for k, v in meta_raw.items()}
    architecture = None
    if "architecture" in metadata:
        architecture = _decode_architecture(metadata.pop("architecture"), file)

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
            raise _corrupt(file, f"the header entry for tensor {echo(name)} is malformed")
        if not 0 <= begin <= end <= data_len:
            raise _corrupt(file, f"tensor {echo(name)} lies outside the file (truncated?)")
        dtype = _SAFETENSORS_DTYPES.get(code)
        if dtype is None:
            raise _corrupt(file, f"tensor {echo(name)} has dtype {echo(code)}, which safetensors does not define")
        bits = _DTYPE_BITS.get(dtype) or _SUB_BYTE_BITS[dtype]
        if end - begin != (math.prod(shape) * bits + 7) // 8:
            raise _corrupt(
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
            raise _corrupt(file, f"tensors {echo(previous)} and {echo(name)} overlap in the data section")
        if begin > position:
            raise _corrupt(file, f"{begin - position} byte(s) before tensor {echo(name)} belong to no tensor")
        position, previous = end, name
    if position != data_len:
        raise _corrupt(file, f"{data_len - position} byte(s) after the last tensor belong to no tensor")


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
        raise _corrupt(file, f"safetensors refuses it ({cut(reason)})") from exc


# ---------------------------------------------------------------------------------------------- torch


class _UnsafeGlobal(CheckpointError):
    """The pickle names something outside the allowlist."""


class _Stub:
    """Base of the stand-ins: the unpickler's BUILD opcode cannot alter them."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("unexpected BUILD on a stand-in")


class _TensorStub(_Stub):
    __slots__ = ("dtype", "shape")

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self.shape = shape
        self.dtype = dtype


class _StorageType(_Stub):
    """Stands for a torch storage class such as `torch.FloatStorage` (never called)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: str | None) -> None:
        self.dtype = dtype  # None: untyped (byte) storage; the tensor names its own dtype


class _StorageStub(_Stub):
    __slots__ = ("dtype", "nbytes")

    def __init__(self, dtype: str | None, nbytes: int | None) -> None:
        self.dtype = dtype
        self.nbytes = nbytes


class _Function(_Stub):
    """Stands for an allowlisted callable; calling it calls the harmless replacement."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)


def _is_dims(value: Any) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    )


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: str | None) -> _TensorStub:
    if not (
        isinstance(storage, _StorageStub)
        and isinstance(offset, int)
        and offset >= 0
        and _is_dims(size)
        and _is_dims(stride)
        and len(size) == len(stride)
    ):
        raise pickle.UnpicklingError("malformed tensor record")
    dtype = dtype or storage.dtype
    if dtype is None:
        raise pickle.UnpicklingError("tensor without a dtype")
    if 0 in size:
        needed = 0
    else:
        elements = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        needed = (elements * _DTYPE_BITS[dtype] + 7) // 8
    if storage.nbytes is not None and needed > storage.nbytes:  # None: size unknown (legacy scan)
        raise pickle.UnpicklingError("tensor data is shorter than its shape needs (truncated?)")
    return _TensorStub(size, dtype)


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _TensorStub:
    return _tensor(storage, offset, size, stride, None)


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, _grad: Any, _hooks: Any, dtype: Any, *_rest: Any
) -> _TensorStub:
    if not (isinstance(dtype, str) and dtype in _DTYPE_BITS):
        raise pickle.UnpicklingError("malformed tensor dtype")
    return _tensor(storage, offset, size, stride, dtype)


def _rebuild_parameter(data: Any, *_rest: Any) -> _TensorStub:
    if not isinstance(data, _TensorStub):
        raise pickle.UnpicklingError("malformed parameter record")
    return data


def _size(dims: Any = ()) -> tuple[int, ...]:
    if not _is_dims(tuple(dims) if isinstance(dims, list) else dims):
        raise pickle.UnpicklingError("malformed torch.Size")
    return tuple(dims)


def _device(kind: Any, index: Any = None) -> str:
    if not isinstance(kind, str) or not (index is None or isinstance(index, int)):
        raise pickle.UnpicklingError("malformed torch.device")
    return kind if index is None else f"{kind}:{index}"


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode`, which protocol-2 pickles use for bytes; only the latin-1 form is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode call")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): _Function(OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2"): _Function(_rebuild_tensor_v2),
        ("torch._utils", "_rebuild_tensor_v3"): _Function(_rebuild_tensor_v3),
        ("torch._utils", "_rebuild_parameter"): _Function(_rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state"): _Function(_rebuild_parameter),
        ("torch", "Size"): _Function(_size),
        ("torch", "device"): _Function(_device),
        ("torch", "UntypedStorage"): _StorageType(None),
        ("torch.storage", "UntypedStorage"): _StorageType(None),
        ("_codecs", "encode"): _Function(_encode),
    }
    for name in ("set", "frozenset", "tuple", "list", "dict", "slice"):
        allowed["builtins", name] = _Function(getattr(builtins, name))
    for name, dtype in _STORAGE_DTYPES.items():
        allowed["torch", name] = _StorageType(dtype)
    for name in (*_DTYPE_BITS, *_DTYPE_ALIASES):
        allowed["torch", name] = _DTYPE_ALIASES.get(name, name)  # a dtype global stands as its name
    return allowed


_ALLOWED = _allowed_globals()
_MODULE_RENAMES = {"__builtin__": "builtins"}  # the Python 2 name that protocol <= 2 pickles use


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED` names, to stand-ins; `storages` maps a storage key to its byte size."""

    def __init__(self, stream: BinaryIO, file: Path, storages: Mapping[str, int] | None) -> None:
        super().__init__(stream, encoding="utf-8")
        self._file = file
        self._storages = storages  # None: scanning a legacy file, storages are not checked
        self._seen: dict[str, _StorageStub] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _MODULE_RENAMES.get(module, module)
        try:
            return _ALLOWED[module, name]
        except (KeyError, TypeError):
            raise _UnsafeGlobal(
                f"refusing {self._file}: it would import {module}.{name} when loaded, which can run code; "
                "only plain state dicts are accepted: save model.state_dict() with torch.save, or use .safetensors"
            ) from None

    def persistent_load(self, pid: Any) -> _StorageStub:
        if not (
            isinstance(pid, tuple)
            and len(pid) >= 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
        ):
            raise pickle.UnpicklingError("malformed storage reference")
        key = pid[2]
        if key not in self._seen:
            if self._storages is None:
                nbytes = None
            elif key in self._storages:
                nbytes = self._storages[key]
            else:
                raise pickle.UnpicklingError(f"the data of storage {key} is missing")
            self._seen[key] = _StorageStub(pid[1].dtype, nbytes)
        return self._seen[key]


def _load_restricted(stream: io.BytesIO, file: Path, storages: Mapping[str, int] | None) -> Any:
    """Unpickle the next pickle of `stream` with `_RestrictedUnpickler`.

    The opcodes are first walked without building anything, so that no length or memo index in the
    stream can make the unpickler allocate far more memory than the stream's own size.
    """
    start = stream.tell()
    memo_puts = 0
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if opcode.name != "MEMOIZE" and arg > memo_puts:  # picklers number memo slots 0, 1, 2, ...
                raise pickle.UnpicklingError("memo index out of sequence")
            memo_puts += 1
    stream.seek(start)
    return _RestrictedUnpickler(stream, file, storages).load()


def _read_torch(file: Path, head: bytes) -> tuple[dict, dict, dict, dict | None]:
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _refuse_non_zip(file)
    try:
        with zipfile.ZipFile(file) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            pickles = [n for n in infos if n.count("/") == 1 and n.endswith("/data.pkl")]
            roots = {n.split("/", 1)[0] for n in infos}
            if any(
                f"{r}/constants.pkl" in infos or any(n.startswith(f"{r}/code/") for n in infos) for r in roots
            ):
                raise CheckpointError(
                    f"{file} is a TorchScript archive (torch.jit.save), not a state dict; "
                    "save model.state_dict() with torch.save and import that file"
                )
            if len(pickles) != 1:
                raise CheckpointError(
                    f"{file} is a zip but not a PyTorch checkpoint (no single <archive>/data.pkl); "
                    "save the weights with torch.save and import that file"
                )
            root = pickles[0][: -len("data.pkl")]
            storages = {
                n[len(root) + 5 :]: i.file_size for n, i in infos.items() if n.startswith(root + "data/")
            }
            if infos[pickles[0]].file_size > _MAX_PICKLE_BYTES:
                raise _corrupt(file, "its data.pkl is implausibly large")
            data = archive.read(pickles[0])
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile raises several types for damaged archives
        raise _corrupt(file, f"the zip archive cannot be read ({exc})") from exc
    try:
        top = _load_restricted(io.BytesIO(data), file, storages)
    except CheckpointError:
        raise
    except Exception as exc:  # a malformed pickle can raise nearly anything; none of it is ours to show
        raise _corrupt(file, f"its data.pkl cannot be parsed ({type(exc).__name__}: {exc})") from exc
    return _split_checkpoint(top, file)


def _refuse_non_zip(file: Path) -> None:
    """Scan the pickles of a non-zip file safely, for the clearer message if one is hostile; then refuse."""
    legacy = CheckpointError(
        f"legacy (non-zip) torch file {file}: re-save it with torch >= 1.6 (torch.save) and import again"
    )
    with file.open("rb") as handle:
        stream = io.BytesIO(handle.read(_MAX_PICKLE_BYTES))  # its pickles come first
    for loaded in range(8):  # a legacy file holds 4 pickles, then raw storage bytes
        try:
            _load_restricted(stream, file, None)
        except _UnsafeGlobal:
            raise
        except Exception as exc:  # the end of the pickles, or not a pickle at all
            if loaded == 0:
                raise _corrupt(file, "it is neither a torch zip archive nor a pickle") from exc
            break
    raise legacy


def _has_tensors(value: Any) -> bool:
    return isinstance(value, dict) and any(isinstance(v, _TensorStub) for v in value.values())


def _split_checkpoint(top: Any, file: Path) -> tuple[dict, dict, dict, dict | None]:
    """Find the state dict in the unpickled top object; plain entries around it become metadata."""
    if not isinstance(top, dict):
        kind = "single tensor" if isinstance(top, _TensorStub) else type(top).__name__.lstrip("_")
        raise CheckpointError(
            f"{file} holds a {kind}, not a state dict; save model.state_dict() with torch.save"
        )
    wrapper_key = next((k for k in _WRAPPER_KEYS if _has_tensors(top.get(k))), None)
    if wrapper_key is not None:
        state = top[wrapper_key]
    elif _has_tensors(top):
        state = top
    else:
        raise CheckpointError(
            f"no state dict found in {file}: expected name -> tensor entries at the top level or under "
            f"{', '.join(repr(k) for k in _WRAPPER_KEYS)}; save model.state_dict() with torch.save"
        )

    tensors: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(key, str) and isinstance(value, _TensorStub):
            tensors[key] = value.shape
            dtypes[key] = value.dtype
    left = _MAX_NODES_PER_FILE
    for source in [state] if wrapper_key is None else [state, top]:  # top-level entries win on a clash
        for key, value in source.items():
            if (
                not isinstance(key, str)
                or isinstance(value, _TensorStub)
                or key == "architecture"
                or (source is top and key == wrapper_key)
            ):
                continue
            allowed = min(_MAX_NODES, left)
            budget = [allowed]
            plain = _plain(value, budget)
            left -= allowed - max(budget[0], 0)
            if plain is not _DROP:
                metadata[key] = plain
    architecture = _decode_architecture(top["architecture"], file) if "architecture" in top else None
    return tensors, dtypes, metadata, architecture
