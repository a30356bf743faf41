"""The ONNX runtime of prediction (`runtime="onnx"`, `nta predict --runtime onnx`).

`onnx_model` exports a checkpoint's U-Net to ONNX (`model.torch_export.export_onnx`, the unpadded graph)
and wraps an onnxruntime session of it in `OnnxUNet`, a module with the U-Net's interface: `forward` pads
any input exactly like `UNet.forward` (`pad_to_multiple`, the 2-cell bottleneck rule included), runs the
session and crops back. Tiling, block-wise prediction and point-window checkpoints use it unchanged;
`prepare_inference_model` uses it as it is (`inference_ready`).

The session runs on CUDA (CUDAExecutionProvider) when the device asked is a GPU and this onnxruntime
offers it, else on the CPU with `torch.get_num_threads()` threads. Exports are cached in-process by the
checkpoint file's sha256, so the tiles and blocks of one process export once.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..model import load_model
from ..model.padding import pad_to_multiple
from ..model.torch_export import export_onnx
from ..project.checkpoints import file_sha256
from ..project.user_input import InputError

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
CACHED = 2  # exports and sessions kept per process (the newest)


@dataclass(frozen=True)
class _Export:
    onnx: bytes
    architecture: dict[str, Any]
    total_factor: tuple[int, ...]


_EXPORTS: dict[str, _Export] = {}
_SESSIONS: dict[tuple[str, str, int], OnnxUNet] = {}
_LOCK = threading.Lock()


def require_onnx_runtime() -> Any:
    """The onnxruntime module; a one-line `InputError` when onnxruntime or onnxscript (the exporter) is missing."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as exc:
        raise InputError('`runtime` onnx needs onnxruntime and onnxscript: pip install "napari-training-assistant[share]"') from exc
    return onnxruntime


def execution_provider(device: torch.device | str | None) -> str:
    """The onnxruntime execution provider for `device`: CUDA when asked and offered, else CPU."""
    device = torch.device(device or "cpu")
    offered = require_onnx_runtime().get_available_providers()
    return CUDA_PROVIDER if device.type == "cuda" and CUDA_PROVIDER in offered else CPU_PROVIDER


def runtime_parameters(runtime: str, device: torch.device | str | None) -> dict[str, str]:
    """What a prediction records of the runtime that runs it on `device`: torch, or onnx with its execution
    provider (a one-line `InputError` when onnxruntime is missing)."""
    return {"runtime": "onnx", "execution_provider": execution_provider(device)} if runtime == "onnx" else {"runtime": runtime}


class OnnxUNet(nn.Module):
    """A checkpoint's U-Net run by onnxruntime: logits of any input size, as a torch tensor on the input's device."""

    inference_ready = True  # no torch weights to copy, fold or move (see `inference_model`)

    def __init__(self, session: Any, architecture: dict[str, Any], total_factor: tuple[int, ...]):
        super().__init__()
        self.session = session
        self.architecture = dict(architecture)
        self.total_factor = tuple(total_factor)
        self.provider: str = session.get_providers()[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims, expected = len(self.total_factor), self.architecture["input_channels"]
        if x.ndim != dims + 2 or x.shape[1] != expected:
            raise ValueError(f"U-Net expects input (batch, {expected}, {', '.join('zyx'[-dims:])}); got shape {tuple(x.shape)}")
        padded, crop = pad_to_multiple(x.detach().to(torch.float32), self.total_factor)
        (logits,) = self.session.run(["output"], {"input": np.ascontiguousarray(padded.cpu().numpy())})
        return torch.from_numpy(logits)[crop].to(x.device)


def onnx_model(checkpoint: str | Path, device: torch.device | str | None = None, *, sha256: str | None = None) -> OnnxUNet:
    """The checkpoint file's U-Net as an `OnnxUNet` for `device` (default cpu), exported once per process
    and checkpoint content (`sha256`: the file's, computed when not given)."""
    ort = require_onnx_runtime()
    device = torch.device(device or "cpu")
    sha256 = sha256 or file_sha256(Path(checkpoint))
    provider = execution_provider(device)
    threads = torch.get_num_threads()
    key = (sha256, f"{provider}:{device.index or 0}" if provider == CUDA_PROVIDER else provider, threads)
    with _LOCK:
        if key not in _SESSIONS:
            export = _EXPORTS.get(sha256) or _remember(_EXPORTS, sha256, _export(checkpoint))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3  # errors only
            providers: list[Any] = [CPU_PROVIDER]
            if provider == CUDA_PROVIDER:
                providers.insert(0, (CUDA_PROVIDER, {"device_id": device.index or 0}))
            session = ort.InferenceSession(export.onnx, options, providers=providers)
            _remember(_SESSIONS, key, OnnxUNet(session, export.architecture, export.total_factor))
        return _SESSIONS[key]


def _export(checkpoint: str | Path) -> _Export:
    model = load_model(checkpoint)
    with tempfile.TemporaryDirectory(prefix="nta-onnx-") as folder:
        path = Path(folder) / "unet.onnx"
        export_onnx(model, path)
        return _Export(path.read_bytes(), dict(model.architecture), tuple(model.total_factor))


def _remember(cache: dict, key: Any, value: Any) -> Any:
    """Store `value`, dropping the oldest entries beyond `CACHED`; return it."""
    cache[key] = value
    while len(cache) > CACHED:
        cache.pop(next(iter(cache)))
    return value
