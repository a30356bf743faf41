"""Which SAM3 backend a model folder needs, checked before anything is loaded.

- 2D modes: a SAM3.0 folder with `model.safetensors` + `config.json` (Hugging Face format, transformers
  backend, CPU or CUDA) or `sam3.pt` (the `sam3` package backend, CUDA: the published package hard-codes it).
- 3D propagation: a SAM3.1 folder with `sam3.1_multiplex.pt` on CUDA (SAM3.1 multiplex, needs the sam3 builder),
  otherwise a SAM3.0 Hugging Face folder (`model.safetensors` + `config.json`: transformers' SAM3.0 tracker, CPU
  or CUDA). `choose_propagation_folder` picks between the tab's SAM3.1 and image-model folders.
Weights are only ever read from the chosen folder, never fetched from a hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ..project.devices import DEVICE_NAMES, parse_device
from . import runtime
from .errors import Sam3Error
from .runtime import INSTALL_SAM3, INSTALL_TRANSFORMERS

BackendKind = Literal["transformers", "sam3_package", "multiplex", "tracker_video"]
PROPAGATION_KINDS = ("multiplex", "tracker_video")
Sam3Spatial = Literal["2d", "3d"]
SAM3_SPATIAL: tuple[str, ...] = get_args(Sam3Spatial)
SAM3_DEVICES: tuple[str, ...] = tuple(name for name in DEVICE_NAMES if name != "mps")
"""The devices SAM3 runs on (cuda:N too): the shared names without Apple MPS."""
SAM3_DEVICE_HELP = "auto, cpu or cuda[:N] (3d on cpu needs a SAM3.0 Hugging Face folder: the SAM3.0 tracker)"
HF_WEIGHTS, HF_CONFIG = "model.safetensors", "config.json"
SAM3_WEIGHTS = "sam3.pt"
MULTIPLEX_WEIGHTS = "sam3.1_multiplex.pt"
TOKENIZER_JSON, TOKENIZER_VOCAB = "tokenizer.json", ("vocab.json", "merges.txt")  # text prompts need one
BACKEND_NAMES = {  # shown where the choice is reported (tab message, `nta sam3-check`)
    "transformers": "SAM3.0 image model (transformers)",
    "sam3_package": "SAM3.0 image model (sam3 package)",
    "multiplex": "SAM3.1 multiplex",
    "tracker_video": "SAM3.0 tracker (transformers)",
}


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    kind: BackendKind
    weights: Path
    device: str  # resolved: "cpu" or "cuda[:n]"

    @property
    def spatial(self) -> str:
        return "3d" if self.kind in PROPAGATION_KINDS else "2d"

    def describe(self) -> str:
        """What runs where, e.g. 'SAM3.0 tracker (transformers) on cpu'."""
        return f"{BACKEND_NAMES[self.kind]} on {self.device}"


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
        raise Sam3Error(f"device {str(request)!r} was asked for but no CUDA GPU is available: choose cpu or auto")
    return str(request)


def validate_model_folder(folder: str | Path | None, spatial: str, device: str = "auto") -> ModelFolder:
    """The backend and weights file for `folder` in 2D or 3D mode on `device`, or a `Sam3Error` that says
    what is missing and what to install."""
    if spatial not in SAM3_SPATIAL:
        raise Sam3Error(f"SAM3 mode must be 2d or 3d, not {spatial!r}")
    if folder is None or str(folder).strip() == "":
        need = f"{HF_WEIGHTS} or {SAM3_WEIGHTS}" if spatial == "2d" else f"{HF_WEIGHTS} + {HF_CONFIG} (SAM3.0 tracker) or {MULTIPLEX_WEIGHTS} (SAM3.1, CUDA)"
        raise Sam3Error(f"no SAM3 {'image' if spatial == '2d' else '3D'} model folder chosen: pick a folder with {need}")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise Sam3Error(f"SAM3 model folder {path} does not exist or is not a folder: choose the folder that holds the weights")
    resolved = resolve_sam3_device(device)
    return _folder_2d(path, resolved) if spatial == "2d" else _folder_3d(path, resolved)


def choose_propagation_folder(sam31_folder: str | Path | None, image_folder: str | Path | None,
                               device: str = "auto") -> ModelFolder:
    """The folder 3D propagation runs from: the SAM3.1 folder when it is set and valid on `device`, else the
    SAM3.0 image-model folder (its tracker). When neither validates, the error of the more relevant one: the
    SAM3.1 folder's when it holds SAM3.1 weights or is the only one set, else the image-model folder's."""
    chosen = [f for f in (sam31_folder, image_folder) if f is not None and str(f).strip()]
    errors: list[Sam3Error] = []
    for folder in chosen or [None]:
        try:
            return validate_model_folder(folder, "3d", device)
        except Sam3Error as exc:
            errors.append(exc)
    if len(errors) == 2 and not (Path(str(sam31_folder)).expanduser() / MULTIPLEX_WEIGHTS).is_file():
        raise errors[1]
    raise errors[0]


def _hf_folder(path: Path) -> bool:
    """`path` holds a Hugging Face SAM3 model that transformers can load (refused when it is incomplete, or
    transformers lacks SAM3); False without `model.safetensors`."""
    if not (path / HF_WEIGHTS).is_file():
        return False
    if not (path / HF_CONFIG).is_file():
        raise Sam3Error(f"{path} has {HF_WEIGHTS} but no {HF_CONFIG}: copy the whole Hugging Face model folder (config.json included)")
    if not runtime.transformers_has_sam3():
        raise Sam3Error(f"{path} is a Hugging Face SAM3 folder but transformers with SAM3 is not installed: {INSTALL_TRANSFORMERS}")
    return True


def _folder_2d(path: Path, device: str) -> ModelFolder:
    has_pt = (path / SAM3_WEIGHTS).is_file()
    on_cuda = device.startswith("cuda")
    if has_pt and on_cuda and runtime.has_module("sam3"):
        return ModelFolder(path, "sam3_package", path / SAM3_WEIGHTS, device)
    if _hf_folder(path):
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
    """SAM3.1 multiplex when the folder holds its weights, the device is CUDA and the builder imports; else the
    SAM3.0 tracker of a Hugging Face folder (CPU or CUDA)."""
    multiplex = path / MULTIPLEX_WEIGHTS
    why = ""
    if multiplex.is_file() and device.startswith("cuda"):
        available, why = runtime.multiplex_builder_available()
        if available:
            return ModelFolder(path, "multiplex", multiplex, device)
    if _hf_folder(path):
        return ModelFolder(path, "tracker_video", path / HF_WEIGHTS, device)
    if why:
        raise Sam3Error(why)
    hf = f"a SAM3.0 Hugging Face folder ({HF_WEIGHTS} + {HF_CONFIG}) for the SAM3.0 tracker"
    if multiplex.is_file():
        raise Sam3Error(f"{multiplex} (SAM3.1 multiplex) needs CUDA; on CPU choose {hf}")
    if (path / SAM3_WEIGHTS).is_file():
        raise Sam3Error(f"{path / SAM3_WEIGHTS} is a SAM3.0 image model for 2D modes: for 3D propagation choose {hf} (CPU or CUDA) "
                        f"or a SAM3.1 folder with {MULTIPLEX_WEIGHTS} (CUDA)")
    raise Sam3Error(f"{path} has neither {HF_WEIGHTS} (+ {HF_CONFIG}) nor {MULTIPLEX_WEIGHTS}: for 3D propagation choose {hf} "
                    f"(CPU or CUDA) or a SAM3.1 folder (CUDA)")


def check_tokenizer(path: Path) -> None:
    """A `Sam3Error` unless a Hugging Face folder holds a text tokenizer: `tokenizer.json`, or CLIP's
    `vocab.json` + `merges.txt`."""
    path = Path(path)
    if not ((path / TOKENIZER_JSON).is_file() or all((path / name).is_file() for name in TOKENIZER_VOCAB)):
        raise Sam3Error(
            f"{path} has no text tokenizer ({TOKENIZER_JSON}, or {' + '.join(TOKENIZER_VOCAB)}), which text prompts need: "
            "copy the complete facebook/sam3 folder (boxes, points and exemplars work without it)"
        )


def check_reads_text(folder: ModelFolder) -> None:
    """Refuse a text prompt before anything loads when the folder cannot read text (a Hugging Face folder
    without its tokenizer; the sam3 package's BPE vocabulary is looked for when it loads)."""
    if folder.kind == "transformers":
        check_tokenizer(folder.path)
