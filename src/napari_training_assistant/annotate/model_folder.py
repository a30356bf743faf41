"""Which SAM3 backend a model folder needs, checked before anything is loaded.

- 2D modes: a SAM3.0 folder with `model.safetensors` + `config.json` (Hugging Face format, transformers
  backend, CPU or CUDA) or `sam3.pt` (the `sam3` package backend, CUDA: the published package hard-codes it).
- 3D / multiplex: a SAM3.1 folder with `sam3.1_multiplex.pt` (CUDA only).
Weights are only ever read from the chosen folder, never fetched from a hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ..project.devices import DEVICE_NAMES, parse_device
from . import runtime
from .errors import Sam3Error
from .runtime import INSTALL_SAM3, INSTALL_TRANSFORMERS

BackendKind = Literal["transformers", "sam3_package", "multiplex"]
Sam3Spatial = Literal["2d", "3d"]
SAM3_SPATIAL: tuple[str, ...] = get_args(Sam3Spatial)
SAM3_DEVICES: tuple[str, ...] = tuple(name for name in DEVICE_NAMES if name != "mps")
"""The devices SAM3 runs on (cuda:N too): the shared names without Apple MPS."""
SAM3_DEVICE_HELP = "auto, cpu or cuda[:N] (CPU is valid for 2d only)"
HF_WEIGHTS, HF_CONFIG = "model.safetensors", "config.json"
SAM3_WEIGHTS = "sam3.pt"
MULTIPLEX_WEIGHTS = "sam3.1_multiplex.pt"


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    kind: BackendKind
    weights: Path
    device: str  # resolved: "cpu" or "cuda[:n]"

    @property
    def spatial(self) -> str:
        return "3d" if self.kind == "multiplex" else "2d"


def resolve_sam3_device(device: str | None) -> str:
    """The shared device names (`project.devices`) with SAM3's rules: 'auto' is cuda when a CUDA GPU is present,
    else cpu (never MPS); cuda[:N] needs a CUDA GPU; mps is refused."""
    try:
        request = parse_device(device)
    except ValueError:
        request = None
    if request is None or request.kind == "mps":
        raise Sam3Error(f"unknown SAM3 device {str(device).strip()!r}: use auto, cpu or cuda")
    if request.kind == "auto":
        return "cuda" if runtime.cuda_available() else "cpu"
    if request.kind == "cuda" and not runtime.cuda_available():
        raise Sam3Error(f"device {str(request)!r} was asked for but no CUDA GPU is available: choose cpu (2D modes) or auto")
    return str(request)


def validate_model_folder(folder: str | Path | None, spatial: str, device: str = "auto") -> ModelFolder:
    """The backend and weights file for `folder` in 2D or 3D mode on `device`, or a `Sam3Error` that says
    what is missing and what to install."""
    if spatial not in SAM3_SPATIAL:
        raise Sam3Error(f"SAM3 mode must be 2d or 3d, not {spatial!r}")
    if folder is None or str(folder).strip() == "":
        need = f"{HF_WEIGHTS} or {SAM3_WEIGHTS}" if spatial == "2d" else MULTIPLEX_WEIGHTS
        raise Sam3Error(f"no SAM3 {'image' if spatial == '2d' else 'SAM3.1 multiplex'} model folder chosen: pick a folder with {need}")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise Sam3Error(f"SAM3 model folder {path} does not exist or is not a folder: choose the folder that holds the weights")
    resolved = resolve_sam3_device(device)
    return _folder_2d(path, resolved) if spatial == "2d" else _folder_3d(path, resolved)


def _folder_2d(path: Path, device: str) -> ModelFolder:
    has_hf = (path / HF_WEIGHTS).is_file()
    has_pt = (path / SAM3_WEIGHTS).is_file()
    if has_hf and not (path / HF_CONFIG).is_file():
        raise Sam3Error(f"{path} has {HF_WEIGHTS} but no {HF_CONFIG}: copy the whole Hugging Face model folder (config.json included)")
    on_cuda = device.startswith("cuda")
    if has_pt and on_cuda and runtime.has_module("sam3"):
        return ModelFolder(path, "sam3_package", path / SAM3_WEIGHTS, device)
    if has_hf:
        if not runtime.transformers_has_sam3():
            raise Sam3Error(f"{path} is a Hugging Face SAM3 folder but transformers with SAM3 is not installed: {INSTALL_TRANSFORMERS}")
        return ModelFolder(path, "transformers", path / HF_WEIGHTS, device)
    if has_pt:
        if not on_cuda:
            raise Sam3Error(
                f"{path / SAM3_WEIGHTS} needs the sam3 package on a CUDA GPU (it hard-codes CUDA); on CPU use a Hugging Face "
                f"SAM3 folder ({HF_WEIGHTS} + {HF_CONFIG}) instead"
            )
        raise Sam3Error(f"{path / SAM3_WEIGHTS} needs the sam3 package, which is not installed: {INSTALL_SAM3}")
    if (path / MULTIPLEX_WEIGHTS).is_file():
        raise Sam3Error(f"{path} holds SAM3.1 multiplex weights, which are for 3D propagation: for 2D modes choose a folder with {HF_WEIGHTS} or {SAM3_WEIGHTS}")
    raise Sam3Error(f"{path} has neither {HF_WEIGHTS} (+ {HF_CONFIG}) nor {SAM3_WEIGHTS}: choose a SAM3.0 image model folder")


def _folder_3d(path: Path, device: str) -> ModelFolder:
    weights = path / MULTIPLEX_WEIGHTS
    if not weights.is_file():
        found = [n for n in (HF_WEIGHTS, SAM3_WEIGHTS) if (path / n).is_file()]
        hint = f" ({', '.join(found)} is a SAM3.0 image model: use it for 2D modes)" if found else ""
        raise Sam3Error(f"{path} has no {MULTIPLEX_WEIGHTS}: 3D / multiplex propagation needs a SAM3.1 model folder{hint}")
    if not device.startswith("cuda"):
        raise Sam3Error("SAM3.1 multiplex propagation needs a CUDA GPU: CPU is only valid for 2D modes")
    available, why = runtime.multiplex_builder_available()
    if not available:
        raise Sam3Error(why)
    return ModelFolder(path, "multiplex", weights, device)

