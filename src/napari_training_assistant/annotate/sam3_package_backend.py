"""2D SAM3 previews with the `sam3` package (facebookresearch/sam3, PyPI 0.1.4) for folders holding `sam3.pt`.

The published package hard-codes CUDA (position-encoding and decoder caches are built with `device="cuda"`,
`pin_memory` in the geometry encoder), so this backend refuses CPU; CPU users take the transformers backend.

What the package offers and how it is called here (sam3 0.1.4):

- `sam3.model_builder.build_sam3_image_model(bpe_path, device, checkpoint_path, load_from_HF,
  enable_inst_interactivity)` builds `Sam3Image`; with `enable_inst_interactivity=True` it carries a
  `SAM3InteractiveImagePredictor` (the SAM 1-style box/point task). We build it with `checkpoint_path=None,
  load_from_HF=False` (nothing is ever fetched) and load `sam3.pt` ourselves with `torch.load(...,
  weights_only=True)`, with the key mapping of `model_builder._load_checkpoint` ("model" sub-dict;
  "detector." keys to the image model, "tracker." keys to `inst_interactive_predictor.model.`).
- `sam3.model.sam3_image_processor.Sam3Processor(model, device=...).set_image(PIL image)` embeds the image
  once and returns a state dict that later prompts reuse (this is the per-key cache).
- boxes and points: `model.predict_inst(state, point_coords=(N, 2) pixels, point_labels=(N,) 1/0,
  box=(4,) xyxy pixels, multimask_output, return_logits=True)` -> (C, H, W) logits, (C,) IoU scores.
- concepts: `processor.set_text_prompt(prompt=text, state=state)` and, for each exemplar,
  `processor.add_geometric_prompt([cx, cy, w, h] normalised, positive, state)` run the detector and leave
  `state["masks_logits"]` (N, 1, H, W probabilities) and `state["scores"]` (N,). The text encoder's output is
  cached per text by wrapping the loaded model's `backbone.forward_text`.

The text encoder needs the CLIP BPE vocabulary, which the wheel does not ship: it is looked for in the model
folder (`bpe_simple_vocab_16e6.txt.gz`, or the Hugging Face `merges.txt`, gzipped into a cache file because
the sam3 tokenizer reads a gzip) and then in an installed `open_clip` (an identical file).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import importlib.util
import logging
import os
import pickle
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .detections import MIN_SCORE, Detections, Instance, paint_instances
from .embedding_cache import EmbeddingCache
from .errors import Sam3Error, one_line
from .image_prep import to_rgb_uint8
from .model_folder import SAM3_WEIGHTS
from .object_plan import check_concept, check_threshold, exemplar_cxcywh, logit, plan_objects
from .prompts import Box, Point, Prompts
from .runtime import INSTALL_SAM3, cuda_inference, preserved_torch_state, require_cuda, sam3_construction

LOGGER = logging.getLogger(__name__)

BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
MERGES_NAME = "merges.txt"
# sam3's SimpleTokenizer keeps lines 1 .. 49152 - 256 - 2 of the decompressed vocabulary (line 0 is a header)
BPE_MERGES_NEEDED = 49152 - 256 - 2
INSTALL_BPE = f"copy {BPE_NAME} (or the Hugging Face {MERGES_NAME}) into the model folder, or pip install open_clip_torch"
CACHE_SIZE = 3  # image embeddings kept on the GPU (each a few hundred MB)
TEXT_CACHE_SIZE = 16  # text prompts whose encoder output is kept


# --------------------------------------------------------------------------- prompts -> sam3 arguments
def inst_prompt_arrays(box: Box | None, points: tuple[Point, ...]) -> dict[str, np.ndarray | None]:
    """`predict_inst` arguments for one object: point_coords (N, 2) float32 x, y pixels, point_labels (N,)
    int32 (1 positive, 0 negative), box (4,) float32 x0, y0, x1, y1 pixels; None where absent."""
    coords = np.array([[p.x, p.y] for p in points], dtype=np.float32).reshape(-1, 2) if points else None
    labels = np.array([1 if p.positive else 0 for p in points], dtype=np.int32) if points else None
    xyxy = None
    if box is not None:
        x0, x1 = sorted((box.x0, box.x1))
        y0, y1 = sorted((box.y0, box.y1))
        xyxy = np.array([x0, y0, x1, y1], dtype=np.float32)
    return {"point_coords": coords, "point_labels": labels, "box": xyxy}



# --------------------------------------------------------------------------- BPE vocabulary
def find_bpe_path(folder: Path) -> Path:
    """The BPE vocabulary for the sam3 text encoder: the model folder's `bpe_simple_vocab_16e6.txt.gz`, its
    `merges.txt` (gzipped into a cache file), an installed open_clip's copy, or the sam3 package's assets."""
    folder = Path(folder)
    if (folder / BPE_NAME).is_file():
        return folder / BPE_NAME
    if (folder / MERGES_NAME).is_file():
        return gzip_merges(folder / MERGES_NAME)
    for candidate in _installed_bpe_candidates():
        if candidate.is_file():
            return candidate
    raise Sam3Error(f"the sam3 text encoder needs its BPE vocabulary, found neither in {folder} nor installed: {INSTALL_BPE}")


def _installed_bpe_candidates() -> Iterator[Path]:
    for package, relative in (("open_clip", BPE_NAME), ("sam3", f"assets/{BPE_NAME}"), ("sam3", f"../assets/{BPE_NAME}")):
        directory = _package_dir(package)
        if directory is not None:
            yield (directory / relative).resolve()


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it (None when absent)."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None):
        return Path(module.__file__).parent
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def gzip_merges(merges: Path, cache_dir: Path | None = None) -> Path:
    """A Hugging Face `merges.txt` as the gzip the sam3 tokenizer reads (header line, then the merges),
    written once into a cache folder (the model folder may be read-only)."""
    text = Path(merges).read_text(encoding="utf-8")
    lines = text.split("\n")
    if not lines[0].startswith("#"):
        lines.insert(0, "#version: 0.2")
    count = sum(1 for line in lines[1:] if line.strip())
    if count < BPE_MERGES_NEEDED:
        raise Sam3Error(f"{merges} holds {count} BPE merges, the SAM3 text encoder needs {BPE_MERGES_NEEDED}: {INSTALL_BPE}")
    payload = "\n".join(lines).encode("utf-8")
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "napari-training-assistant"
    target = cache_dir / f"sam3-bpe-{hashlib.sha256(payload).hexdigest()[:16]}.txt.gz"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        with gzip.open(partial, "wb") as handle:
            handle.write(payload)
        os.replace(partial, target)
    return target


# --------------------------------------------------------------------------- weights
def load_checkpoint_state(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """The state dict in a `.pt` file, read with `torch.load(weights_only=True)` (no code in the pickle can
    run): the "model" sub-dict when the file wraps one. Unreadable or unsafe files are a `Sam3Error`."""
    import torch

    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if "global" in detail.lower():  # the pickle names a function or class to call: code, not weights
            raise Sam3Error(f"{path} was refused: it holds more than plain weights (torch.load weights_only: {detail}); use the checkpoint as published") from exc
        raise Sam3Error(f"{path} cannot be read as PyTorch weights ({detail or 'not a torch.save file'}): download it again") from exc
    except RuntimeError as exc:
        if mmap and "mmap" in str(exc):
            return load_checkpoint_state(path, mmap=False)
        raise Sam3Error(f"{path} cannot be read as PyTorch weights ({one_line(exc)}): download it again") from exc
    except Exception as exc:  # a truncated or foreign file raises anything from EOFError to zipfile errors
        raise Sam3Error(f"{path} cannot be read as PyTorch weights ({one_line(exc)}): download it again") from exc
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise Sam3Error(f"{path} holds no state dict of weights: use the checkpoint as published")
    return checkpoint


def sam3_image_state_dict(checkpoint: dict[str, Any], *, with_tracker: bool = True) -> dict[str, Any]:
    """`sam3.model_builder._load_checkpoint`'s mapping of a `sam3.pt` state dict onto `Sam3Image`: keys with
    "detector" lose "detector."; with the interactive predictor, keys with "tracker" have "tracker." replaced
    by "inst_interactive_predictor.model."."""
    state = {k.replace("detector.", ""): v for k, v in checkpoint.items() if "detector" in k}
    if with_tracker:
        state.update({k.replace("tracker.", "inst_interactive_predictor.model."): v for k, v in checkpoint.items() if "tracker" in k})
    return state


def load_weights(model: Any, state: dict[str, Any], path: Path, what: str = "SAM3 image") -> None:
    """`model.load_state_dict(state, strict=False)`; a checkpoint that fills under half of the model is refused."""
    expected = len(model.state_dict())
    missing, _unexpected = model.load_state_dict(state, strict=False)
    if not state or len(missing) * 2 > expected:
        raise Sam3Error(f"{path} does not look like a {what} checkpoint: {len(missing)} of {expected} model weights are missing from it")
    if missing:
        LOGGER.warning("%s: %d of %d model weights not in the checkpoint (left as built): %s", path, len(missing), expected, missing[:5])


def _unpickler_detail(exc: BaseException) -> str:
    """The reason in torch's weights_only message ("Unsupported global: GLOBAL os.system ...", "Unsupported
    operand 110"), without its advice paragraphs."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker not in text:
        return ""
    lines = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
    return lines[0].split(". ")[0].rstrip(".") if lines else ""



# --------------------------------------------------------------------------- the backend
class Sam3PackageImageBackend:
    """`ImageBackend` on the sam3 package's image model (CUDA only); see the module docstring."""

    name = "sam3 package"

    def __init__(self, folder: Path, device: str) -> None:
        self.folder = Path(folder)
        self.device = require_cuda(
            device, f"{SAM3_WEIGHTS} (the sam3 package backend)",
            "the published sam3 package hard-codes CUDA; on CPU use a Hugging Face SAM3 folder (model.safetensors + config.json)",
        )
        weights = self.folder / SAM3_WEIGHTS
        if not weights.is_file():
            raise Sam3Error(f"{self.folder} has no {SAM3_WEIGHTS}: choose the folder that holds it")
        build_sam3_image_model, processor_class = _import_sam3_image_api()
        bpe = find_bpe_path(self.folder)
        checkpoint = load_checkpoint_state(weights, mmap=True)  # checked before the long build; file-backed
        self._model = self._build(build_sam3_image_model, bpe)
        if getattr(self._model, "inst_interactive_predictor", None) is None:
            raise Sam3Error("the installed sam3 built its image model without the interactive predictor that box and point prompts need: reinstall sam3")
        load_weights(self._model, sam3_image_state_dict(checkpoint, with_tracker=True), weights)
        del checkpoint
        self._model.eval()
        self._processor = processor_class(self._model, device=self.device)
        self.text_encodings = 0
        self._cache_text_features()
        self._states: EmbeddingCache[dict] = EmbeddingCache(CACHE_SIZE)

    def _build(self, builder, bpe: Path):
        import torch

        try:
            with sam3_construction(self.device):
                model = builder(
                    bpe_path=str(bpe),
                    device=self.device,
                    checkpoint_path=None,
                    load_from_HF=False,
                    enable_inst_interactivity=True,
                    eval_mode=True,
                )
            return model.to(torch.device(self.device))
        except Sam3Error:
            raise
        except Exception as exc:
            raise Sam3Error(f"the sam3 package could not build its image model ({one_line(exc)}): {INSTALL_SAM3} on a CUDA PyTorch") from exc

    # ------------------------------------------------------------------ ImageBackend
    def set_image(self, image: np.ndarray, key: object) -> bool:
        if self._states.select(key):
            return False
        from PIL import Image

        rgb = to_rgb_uint8(image)
        with cuda_inference(self.device):
            state = self._processor.set_image(Image.fromarray(rgb))
        self._states.add(key, state)
        return True

    def segment(self, prompts: Prompts, threshold: float = 0.5) -> np.ndarray:
        threshold = check_threshold(threshold)
        state = self._states.current_for(prompts)
        labels = np.zeros((int(state["original_height"]), int(state["original_width"])), dtype=np.uint16)
        objects = plan_objects(prompts) if (prompts.boxes or prompts.points) else []
        with cuda_inference(self.device):
            # label k is the k-th object (box order); an earlier object keeps the pixels two objects share
            for index, (box, points) in enumerate(objects, start=1):
                mask = self._object_mask(state, box, points, threshold)
                labels[mask & (labels == 0)] = index
            if prompts.is_concept:
                found = self._concept(state, prompts, threshold)
                paint_instances(labels, found.instances, threshold, {index: 1.0 for index in range(1, len(objects) + 1)})
        return labels

    def detect(self, prompts: Prompts, threshold: float = 0.5) -> Detections:
        threshold = check_threshold(threshold)
        state = self._states.current_for(prompts)
        with cuda_inference(self.device):
            return self._concept(state, prompts, threshold)

    def _object_mask(self, state: dict, box: Box | None, points: tuple[Point, ...], threshold: float) -> np.ndarray:
        # one click is ambiguous: SAM's three candidate masks, the best by predicted IoU
        multimask = box is None and len(points) == 1
        masks, scores, _ = self._model.predict_inst(
            state, **inst_prompt_arrays(box, points), multimask_output=multimask, return_logits=True
        )
        masks = np.asarray(masks, dtype=np.float32).reshape(-1, *np.shape(masks)[-2:])
        best = int(np.argmax(np.asarray(scores, dtype=np.float32).reshape(-1))) if masks.shape[0] > 1 else 0
        return masks[best] > logit(threshold)

    def _concept(self, state: dict, prompts: Prompts, threshold: float) -> Detections:
        """Every instance of the text (the processor's `set_text_prompt`) refined by the exemplars."""
        text = check_concept(prompts)
        height, width = int(state["original_height"]), int(state["original_width"])
        processor = self._processor
        processor.reset_all_prompts(state)
        processor.set_confidence_threshold(MIN_SCORE)
        try:
            if prompts.text:
                state = processor.set_text_prompt(prompt=text, state=state)
            for box in prompts.exemplars:
                state = processor.add_geometric_prompt(exemplar_cxcywh(box, width, height), bool(box.positive), state)
            probabilities = _numpy(state.get("masks_logits"))
            scores = _numpy(state.get("scores"))
        finally:
            processor.reset_all_prompts(state)
        if probabilities is None or probabilities.size == 0:
            return Detections((height, width))
        probabilities = probabilities.reshape(-1, height, width)
        scores = scores.reshape(-1) if scores is not None else np.ones(len(probabilities), dtype=np.float32)
        found = (Instance.from_full_mask(float(s), p > threshold) for s, p in zip(scores, probabilities, strict=True))
        return Detections((height, width), [item for item in found if item is not None])

    def _cache_text_features(self) -> None:
        """The text encoder runs once per text: `backbone.forward_text` answers a text seen before (the
        last `TEXT_CACHE_SIZE`) from memory."""
        backbone = getattr(self._model, "backbone", None)
        encode = getattr(backbone, "forward_text", None)
        if encode is None:
            return
        cache: OrderedDict = OrderedDict()

        def forward_text(captions, *args, **kwargs):
            key = (tuple(captions), repr(args), repr(sorted(kwargs.items())))
            if key not in cache:
                cache[key] = encode(captions, *args, **kwargs)
                self.text_encodings += 1
                while len(cache) > TEXT_CACHE_SIZE:
                    cache.popitem(last=False)
            cache.move_to_end(key)
            return cache[key]

        backbone.forward_text = forward_text


def _numpy(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _import_sam3_image_api():
    """(build_sam3_image_model, Sam3Processor) from the installed sam3, or a `Sam3Error` saying what to do."""
    try:
        with preserved_torch_state():
            builder = importlib.import_module("sam3.model_builder").build_sam3_image_model
            processor = importlib.import_module("sam3.model.sam3_image_processor").Sam3Processor
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "sam3":
            raise Sam3Error(f"{SAM3_WEIGHTS} needs the sam3 package, which is not installed: {INSTALL_SAM3}") from exc
        raise Sam3Error(f"the sam3 package is installed but a module it needs is missing ({exc.name}): {INSTALL_SAM3}") from exc
    except AttributeError as exc:
        raise Sam3Error(f"the installed sam3 has no SAM3 image model API ({one_line(exc)}): {INSTALL_SAM3}") from exc
    except Exception as exc:  # e.g. a torchvision built for another torch: "operator torchvision::nms does not exist"
        raise Sam3Error(f"the sam3 package cannot be imported ({one_line(exc)}): install torch and torchvision built for each other (CUDA) and {INSTALL_SAM3}") from exc
    return builder, processor
