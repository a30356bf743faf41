"""What this machine offers SAM3, probed without loading a model: installed packages (transformers with SAM3,
the sam3 package, its SAM3.1 multiplex builder), CUDA, and the torch state sam3 changes while it is imported
or built. `model_folder` and both sam3 backends import these; call them as `runtime.<name>` where a test
replaces one."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from typing import Any

from .errors import Sam3Error, one_line

INSTALL_TRANSFORMERS = 'pip install "transformers>=5"'
INSTALL_SAM3 = 'pip install "sam3 @ git+https://github.com/facebookresearch/sam3" in a CUDA PyTorch environment'
BUILDER_MODULE = "sam3.model_builder"
BUILDER_NAME = "build_sam3_multiplex_video_predictor"
PLUGIN_MODULE = "napari_sam3_assistant"


# --------------------------------------------------------------------------- packages
def has_module(name: str) -> bool:
    """`name` is installed (found without importing it)."""
    return importlib.util.find_spec(name) is not None


def transformers_has_sam3() -> bool:
    if not has_module("transformers"):
        return False
    try:
        from transformers import Sam3Model, Sam3TrackerModel  # noqa: F401
    except ImportError:
        return False
    return True


def multiplex_builder_available() -> tuple[bool, str]:
    """(True, "") when a SAM3.1 multiplex builder can be imported, else (False, one line saying what to install)."""
    builder, why = find_multiplex_builder()
    return builder is not None, why


def find_multiplex_builder() -> tuple[Callable[..., Any] | None, str]:
    """(sam3's `build_sam3_multiplex_video_predictor`, "") or (None, one line saying what to install)."""
    need = f"SAM3.1 multiplex propagation needs sam3 newer than the PyPI release ({BUILDER_NAME})"
    try:
        with preserved_torch_state():
            module = importlib.import_module(BUILDER_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "sam3":
            plugin = "napari-sam3-assistant is installed but" if _installed(PLUGIN_MODULE) else "napari-sam3-assistant"
            return None, f"{need}, and sam3 is not installed: {INSTALL_SAM3} ({plugin} does not bundle it)"
        return None, f"{need}; sam3 is installed but a module it needs is missing ({exc.name}): install it, or reinstall with {INSTALL_SAM3}"
    except Exception as exc:  # e.g. torchvision built for another torch
        return None, f"{need}; the installed sam3 cannot be imported ({one_line(exc)}): install a CUDA torch with its torchvision, then {INSTALL_SAM3}"
    builder = getattr(module, BUILDER_NAME, None)
    if not callable(builder):
        version = getattr(sys.modules.get("sam3"), "__version__", None)
        found = f"the installed sam3 {version}" if version else "the installed sam3"
        return None, f"{need}, which {found} lacks (PyPI's sam3 stops at SAM3.0): {INSTALL_SAM3}"
    return builder, ""


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- CUDA
def cuda_available() -> bool:
    """A CUDA GPU torch can use (`model.device`'s probe; False without torch)."""
    try:
        from ..model import device
    except ImportError:
        return False
    return device.cuda_available()


def require_cuda(device: str, what: str, cpu_hint: str) -> str:
    """`device` when it names CUDA and a CUDA GPU is present, else a `Sam3Error` that says what to use."""
    device = str(device or "").strip().lower()
    if not device.startswith("cuda"):
        raise Sam3Error(f"{what} needs a CUDA GPU, not {device or 'no device'!r}: {cpu_hint}")
    if not cuda_available():
        raise Sam3Error(f"{what} needs a CUDA GPU and none is available here: {cpu_hint}")
    return device


# --------------------------------------------------------------------------- torch state around sam3
@contextlib.contextmanager
def cuda_inference(device: str) -> Iterator[None]:
    """inference_mode, the GPU `device` names made current (the sam3 code allocates on plain "cuda") and
    bfloat16 autocast, as the sam3 predictors run; all of it undone on exit."""
    import torch

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if torch.cuda.is_available():
            stack.enter_context(on_gpu(device))
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        yield


@contextlib.contextmanager
def preserved_torch_state() -> Iterator[None]:
    """Undo what importing and building sam3 changes process-wide: its trackers enter a bfloat16 CUDA autocast
    at construction and never leave it (thread-local, it would leak into whatever the loading thread runs
    next), and sam3 switches TF32 matmuls on at import (which would change training numerics)."""
    import torch

    enabled, dtype = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    matmul_tf32, cudnn_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.set_autocast_enabled("cuda", enabled)
        torch.set_autocast_dtype("cuda", dtype)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul_tf32, cudnn_tf32


@contextlib.contextmanager
def sam3_construction(device: str) -> Iterator[None]:
    """For building sam3 models: `device` made the current GPU (the sam3 code builds caches on plain "cuda"),
    and the process-wide torch state restored afterwards (`preserved_torch_state`)."""
    import torch

    with preserved_torch_state(), on_gpu(device) if torch.cuda.is_available() else contextlib.nullcontext():
        yield


def on_gpu(device: str):
    """`torch.cuda.device(n)` for "cuda:n"; nothing to switch for plain "cuda" (the current GPU)."""
    import torch

    index = torch.device(device).index
    return torch.cuda.device(index) if index is not None else contextlib.nullcontext()
