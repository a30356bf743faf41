"""Which SAM3 backend a model folder needs, checked before anything is loaded.

- 2D modes: a SAM3.0 folder with `model.safetensors` + `config.json` (Hugging Face format, transformers
  backend, CPU or CUDA) or `sam3.pt` (the `sam3` package backend, CUDA: the published package hard-codes it).
- 3D / multiplex: a SAM3.1 folder with `sam3.1_multiplex.pt` (CUDA only).
Weights are only ever read from the chosen folder, never fetched from a hub."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import Sam3Error

BackendKind = Literal["transformers", "sam3_package", "multiplex"]
HF_WEIGHTS, HF_CONFIG = "model.safetensors", "config.json"
SAM3_WEIGHTS = "sam3.pt"
MULTIPLEX_WEIGHTS = "sam3.1_multiplex.pt"
INSTALL_TRANSFORMERS = 'pip install "transformers>=5"'
INSTALL_SAM3 = 'pip install "sam3 @ git+https://github.com/facebookresearch/sam3" in a CUDA PyTorch environment'


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    kind: BackendKind
    weights: Path
    device: str  # resolved: "cpu" or "cuda[:n]"

    @property
    def spatial(self) -> str:
        return "3d" if self.kind == "multiplex" else "2d"


def resolve_sam3_device(device: str) -> str:
    """'auto' becomes cuda when a CUDA device is present, else cpu; anything else must name cpu or cuda."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if _cuda_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not _cuda_available():
            raise Sam3Error(f"device {device!r} was asked for but no CUDA GPU is available: choose cpu (2D modes) or auto")
        return device
    raise Sam3Error(f"unknown SAM3 device {device!r}: use auto, cpu or cuda")


def validate_model_folder(folder: str | Path | None, spatial: str, device: str = "auto") -> ModelFolder:
    """The backend and weights file for `folder` in 2D or 3D mode on `device`, or a `Sam3Error` that says
    what is missing and what to install."""
    if spatial not in ("2d", "3d"):
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
    if has_pt and on_cuda and _has_module("sam3"):
        return ModelFolder(path, "sam3_package", path / SAM3_WEIGHTS, device)
    if has_hf:
        if not _transformers_has_sam3():
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
    from .multiplex_backend import multiplex_builder_available

    available, why = multiplex_builder_available()
    if not available:
        raise Sam3Error(why)
    return ModelFolder(path, "multiplex", weights, device)


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _transformers_has_sam3() -> bool:
    if not _has_module("transformers"):
        return False
    try:
        from transformers import Sam3Model, Sam3TrackerModel  # noqa: F401
    except ImportError:
        return False
    return True


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
