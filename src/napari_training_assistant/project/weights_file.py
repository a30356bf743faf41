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
import os
import pickle
import pickletools
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from .errors import CheckpointError
from .safetensors_reader import read_safetensors
from .weights_metadata import (
    DROP,
    DTYPE_BITS,
    MAX_NODES,
    MAX_NODES_PER_FILE,
    corrupt,
    decode_architecture,
    plain,
)

__all__ = ["ACCEPTED_SUFFIXES", "WeightsInfo", "inspect_weights", "strip_prefix"]

ACCEPTED_SUFFIXES = (".pt", ".pth", ".safetensors")

# Keys under which third-party checkpoints nest the state dict, in order of preference.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_MAX_PICKLE_BYTES = 64 * 1024**2  # a data.pkl needs ~100 bytes per tensor

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
        tensors, dtypes, metadata, architecture = read_safetensors(file, size)
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
        needed = (elements * DTYPE_BITS[dtype] + 7) // 8
    if storage.nbytes is not None and needed > storage.nbytes:  # None: size unknown (legacy scan)
        raise pickle.UnpicklingError("tensor data is shorter than its shape needs (truncated?)")
    return _TensorStub(size, dtype)


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _TensorStub:
    return _tensor(storage, offset, size, stride, None)


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, _grad: Any, _hooks: Any, dtype: Any, *_rest: Any
) -> _TensorStub:
    if not (isinstance(dtype, str) and dtype in DTYPE_BITS):
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
    for name in (*DTYPE_BITS, *_DTYPE_ALIASES):
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
                raise corrupt(file, "its data.pkl is implausibly large")
            data = archive.read(pickles[0])
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile raises several types for damaged archives
        raise corrupt(file, f"the zip archive cannot be read ({exc})") from exc
    try:
        top = _load_restricted(io.BytesIO(data), file, storages)
    except CheckpointError:
        raise
    except Exception as exc:  # a malformed pickle can raise nearly anything; none of it is ours to show
        raise corrupt(file, f"its data.pkl cannot be parsed ({type(exc).__name__}: {exc})") from exc
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
                raise corrupt(file, "it is neither a torch zip archive nor a pickle") from exc
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
    left = MAX_NODES_PER_FILE
    for source in [state] if wrapper_key is None else [state, top]:  # top-level entries win on a clash
        for key, value in source.items():
            if (
                not isinstance(key, str)
                or isinstance(value, _TensorStub)
                or key == "architecture"
                or (source is top and key == wrapper_key)
            ):
                continue
            allowed = min(MAX_NODES, left)
            budget = [allowed]
            copy = plain(value, budget)
            left -= allowed - max(budget[0], 0)
            if copy is not DROP:
                metadata[key] = copy
    architecture = decode_architecture(top["architecture"], file) if "architecture" in top else None
    return tensors, dtypes, metadata, architecture
