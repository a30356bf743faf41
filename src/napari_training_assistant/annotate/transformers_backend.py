"""SAM3 with Hugging Face transformers (CPU or CUDA) from a folder in the `facebook/sam3` layout.

The folder holds a `Sam3VideoModel` checkpoint: `config.json` with model_type "sam3_video" (detector_config +
tracker_config) and `model.safetensors` with `detector_model.*`, `tracker_model.*` and `tracker_neck.*` weights.
Each part is loaded from it with `local_files_only=True, use_safetensors=True` (nothing is ever fetched):

- boxes and points (2D): `Sam3TrackerModel`, with `key_mapping={"^tracker_model\\.": ""}`: `save_pretrained` of
  a built `Sam3VideoModel` (transformers 5.x) writes the tracker as `tracker_model.tracker_model.*`, where
  `Sam3TrackerModel` alone finds no mask decoder or prompt encoder (left random); the mapping loads both
  layouts. Its `get_image_embeddings` adds the no-memory embedding to the neck's 0.5x level, which the tracker
  never uses; `_tracker_embeddings` adds it to the 1x level instead, as `Sam3TrackerVideoModel` does.
- concepts (2D text and/or exemplars): `Sam3Model` (the detector), loaded on first use. Detector and tracker
  share one ViT backbone in the checkpoint, so the detector's features come from the cached backbone output
  through its own FPN neck: the ViT runs once per image. The detector always reads a text: the user's,
  tokenized by the folder's CLIP tokenizer (`tokenizer.json`), or for exemplars alone "visual" (as
  `Sam3Processor` does), fed as its known CLIP ids so that no tokenizer is needed. Text features are cached
  per text.
- 3D propagation: `transformers_video.py` (`Sam3TrackerVideoModel`).

The transformers SAM3 image and video processors need torchvision, so images and prompts are prepared here
the same way: RGB squashed to image_size x image_size (bilinear), scaled to 0..1 and normalised with the
folder's processor mean/std (0.5 by default); prompt pixels scale by image_size / width and image_size /
height; masks are resized back to the image (bilinear) before thresholding.

Labels: boxes 1..n in box order, the object of loose points next, then concept instances by falling score
(`detections.paint_instances`); an earlier object keeps the pixels two objects share. `threshold` is the mask
probability threshold and, in `segment`, also the detection score threshold; `detect` returns the scored
instances so that the score threshold can change without running the model.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .detections import MIN_SCORE, Detections, Instance, paint_instances
from .embedding_cache import EmbeddingCache
from .errors import Sam3Error, one_line
from .image_prep import to_rgb_uint8
from .model_folder import HF_CONFIG, HF_WEIGHTS, INSTALL_TRANSFORMERS, check_tokenizer
from .object_plan import VISUAL_TEXT, check_concept, check_threshold, exemplar_cxcywh, logit, plan_objects
from .prompts import Box, Point, Prompts

MODEL_TYPE = "sam3_video"
CACHE_SIZE = 4  # embedded images kept, so that stepping back and forth between slices stays fast
# CLIP BPE ids of "<|startoftext|>visual<|endoftext|>", padded with <|endoftext|> to the 32 tokens SAM3 reads
CLIP_VOCAB_SIZE = 49408
VISUAL_TOKENS = (49406, 7195, 49407)
TEXT_LENGTH = 32
TEXT_ENCODER_KEYS = ("text_encoder.", "text_projection.")  # Sam3Model weights only text prompts use
TEXT_CACHE_SIZE = 16  # text prompts whose features are kept
UPSAMPLE_BATCH = 8  # detections brought to image size at once
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
BOX_LABELS = (2, 3)  # the tracker's point labels for a box's top-left and bottom-right corners


# --------------------------------------------------------------------------- folder and loading
def check_sam3_folder(folder: Path) -> None:
    """A `Sam3Error` unless the folder's config.json describes a SAM3 video model (detector + tracker)."""
    path = Path(folder) / HF_CONFIG
    want = f"the Hugging Face SAM3 folder (facebook/sam3: {HF_CONFIG} with model_type {MODEL_TYPE!r} and {HF_WEIGHTS})"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Sam3Error(f"{path} cannot be read as a model config ({type(exc).__name__}): choose {want}") from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != MODEL_TYPE:
        raise Sam3Error(f"{folder} holds a {model_type!r} model, not SAM3 (detector + tracker): choose {want}")


def transformers_class(name: str) -> Any:
    """A SAM3 class from transformers, or a `Sam3Error` saying why it cannot be imported."""
    try:
        import transformers

        return getattr(transformers, name)
    except Exception as exc:  # e.g. a torchvision built for another torch: "operator torchvision::nms does not exist"
        raise Sam3Error(
            f"transformers cannot load its SAM3 code ({type(exc).__name__}: {exc}): {INSTALL_TRANSFORMERS}; a torchvision "
            "built for another torch breaks it (uninstall torchvision, or install the one built for your torch)"
        ) from exc


def load_part(model_class: Any, folder: Path, device: str, **kwargs: Any) -> Any:
    """`model_class.from_pretrained(folder)` in float32 on `device`, eval mode; any weight the folder lacks
    (left random by transformers) is a `Sam3Error`."""
    import torch

    try:
        model, info = model_class.from_pretrained(
            folder, local_files_only=True, use_safetensors=True, dtype=torch.float32, output_loading_info=True, **kwargs
        )
    except Exception as exc:  # a truncated file or a foreign checkpoint raises anything from OSError to KeyError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise Sam3Error(f"{folder} could not be loaded as {model_class.__name__} ({type(exc).__name__}: {first}): use the complete facebook/sam3 folder") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        text = [key for key in missing if key.startswith(TEXT_ENCODER_KEYS)]
        what = f"the text encoder ({len(text)} weights, e.g. {text[0]})" if text else f"{len(missing)} {model_class.__name__} weights (e.g. {missing[0]})"
        raise Sam3Error(f"{folder / HF_WEIGHTS} lacks {what}: use the complete facebook/sam3 folder")
    return model.to(device).eval()


@dataclass(frozen=True)
class PixelSettings:
    """How an RGB uint8 image becomes model input: squashed to size x size, then (x / 255 - mean) / std."""

    size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def for_folder(cls, folder: Path, size: int) -> PixelSettings:
        """mean/std from the folder's processor config when it has one (the size is the model's, always)."""
        for name in PROCESSOR_FILES:
            path = Path(folder) / name
            if path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                data = data.get("image_processor", data)
                return cls(size, tuple(data.get("image_mean", cls.mean)), tuple(data.get("image_std", cls.std)))
        return cls(size)

    def tensor(self, rgb: np.ndarray, device: str) -> Any:
        """(1, 3, size, size) float32 pixel values for an (H, W, 3) uint8 image."""
        import torch
        import torch.nn.functional as F

        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device, torch.float32)
        image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        image = image.round().clamp(0, 255) / 255.0  # transformers resizes uint8 images
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return (image - mean) / std


def to_model_xy(x: float, y: float, shape: tuple[int, int], size: int) -> list[float]:
    """Image pixel (x, y) in the model's size x size input frame."""
    height, width = shape
    return [x * size / width, y * size / height]


def box_corners(box: Box, shape: tuple[int, int], size: int) -> list[float]:
    """A box as [x0, y0, x1, y1] in the model's input frame (corners sorted)."""
    x0, x1 = sorted((box.x0, box.x1))
    y0, y1 = sorted((box.y0, box.y1))
    return to_model_xy(x0, y0, shape, size) + to_model_xy(x1, y1, shape, size)


def upsample(masks: Any, shape: tuple[int, int]) -> Any:
    """(N, h, w) -> (N, H, W), bilinear like transformers' mask post-processing."""
    import torch.nn.functional as F

    return F.interpolate(masks[None].float(), size=shape, mode="bilinear", align_corners=False)[0]


def paint(labels: np.ndarray, mask: np.ndarray, label: int) -> bool:
    """Give `label` to the pixels of `mask` that no earlier object holds; True when any were free."""
    free = mask & (labels == 0)
    labels[free] = label
    return bool(free.any())


def inference_mode() -> Any:
    import torch

    return torch.inference_mode()


# --------------------------------------------------------------------------- roi_align without torchvision
def provide_roi_align() -> None:
    """The detector's geometry encoder pools exemplar-box features with `torchvision.ops.roi_align`; where
    torchvision is not installed, transformers' SAM3 module gets `roi_align` below in its place."""
    from transformers.models.sam3 import modeling_sam3

    if getattr(modeling_sam3, "torchvision", None) is None:
        modeling_sam3.torchvision = SimpleNamespace(ops=SimpleNamespace(roi_align=roi_align))


def roi_align(features: Any, boxes: list[Any] | tuple[Any, ...], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Any:
    """`torchvision.ops.roi_align` in plain torch for (N, C, H, W) features and one (K, 4) tensor of x0, y0, x1,
    y1 boxes per image: (sum of K, C, out_h, out_w). Bilinear sampling is separable, so each box is an (out_h, H)
    matrix times the features times a (W, out_w) matrix, with torchvision's sample points and edge rules."""
    import torch

    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    pooled = []
    for image, image_boxes in zip(features, boxes, strict=True):
        for x0, y0, x1, y1 in image_boxes.tolist():
            rows = _roi_weights(y0, y1, out_h, image.shape[-2], spatial_scale, sampling_ratio, aligned)
            cols = _roi_weights(x0, x1, out_w, image.shape[-1], spatial_scale, sampling_ratio, aligned)
            rows, cols = (torch.from_numpy(w).to(image) for w in (rows, cols))
            pooled.append(rows @ image @ cols.T)
    return torch.stack(pooled) if pooled else features.new_zeros((0, features.shape[1], out_h, out_w))


def _roi_weights(start: float, end: float, bins: int, length: int, spatial_scale: float, sampling_ratio: int,
                 aligned: bool) -> np.ndarray:
    """(bins, length) weights averaging the bilinear samples of each bin along one axis (torchvision's kernel)."""
    offset = 0.5 if aligned else 0.0
    start, end = start * spatial_scale - offset, end * spatial_scale - offset
    extent = end - start if aligned else max(end - start, 1.0)
    size = extent / bins
    grid = sampling_ratio if sampling_ratio > 0 else math.ceil(extent / bins)
    weights = np.zeros((bins, length), dtype=np.float64)
    for index in range(bins * max(grid, 0)):
        bin_index, sample = divmod(index, grid)
        position = start + bin_index * size + (sample + 0.5) * size / grid
        if position < -1.0 or position > length:
            continue
        position = max(position, 0.0)
        low = int(position)
        if low >= length - 1:
            low = high = length - 1
            position = float(low)
        else:
            high = low + 1
        weights[bin_index, low] += 1.0 - (position - low)
        weights[bin_index, high] += position - low
    return weights / max(grid, 1)


# --------------------------------------------------------------------------- 2D
@dataclass
class Embedded:
    """One image's cached features: the tracker's image embeddings and the ViT output the detector reuses."""

    shape: tuple[int, int]
    tracker: list[Any]
    backbone: Any
    detector: Any = None  # Sam3VisionEncoderOutput, made on first exemplar use


class TransformersImageBackend:
    """`ImageBackend` on transformers' SAM3: boxes/points with the tracker, exemplars with the detector."""

    name = "transformers"

    def __init__(self, folder: Path, device: str) -> None:
        self.folder = Path(folder)
        self.device = device
        check_sam3_folder(self.folder)
        self.tracker = load_part(transformers_class("Sam3TrackerModel"), self.folder, device, key_mapping={r"^tracker_model\.": ""})
        self.pixels = PixelSettings.for_folder(self.folder, int(self.tracker.config.image_size))
        self._detector: Any = None
        self._texts: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._tokenizer_model: Any = None
        self.text_encodings = 0  # texts run through the text encoder (each once while cached)
        self._cache: EmbeddingCache[Embedded] = EmbeddingCache(CACHE_SIZE)

    # ------------------------------------------------------------------ ImageBackend
    def set_image(self, image: np.ndarray, key: object) -> bool:
        if self._cache.select(key):
            return False
        rgb = to_rgb_uint8(image)
        with inference_mode():
            features = self.tracker.get_image_features(self.pixels.tensor(rgb, self.device), return_dict=True)
            entry = Embedded(rgb.shape[:2], self._tracker_embeddings(features.fpn_hidden_states), features.last_hidden_state)
        self._cache.add(key, entry)
        return True

    def segment(self, prompts: Prompts, threshold: float = 0.5) -> np.ndarray:
        threshold = check_threshold(threshold)
        entry = self._cache.current_for(prompts)
        labels = np.zeros(entry.shape, dtype=np.uint16)
        objects = plan_objects(prompts) if (prompts.boxes or prompts.points) else []
        with inference_mode():
            for index, (box, points) in enumerate(objects, start=1):
                paint(labels, self._object_mask(entry, box, points, threshold), index)
            if prompts.is_concept:
                found = self._detect(entry, prompts, threshold)
                paint_instances(labels, found.instances, threshold, {index: 1.0 for index in range(1, len(objects) + 1)})
        return labels

    # ------------------------------------------------------------------ tracker
    def _tracker_embeddings(self, fpn_hidden_states: list[Any]) -> list[Any]:
        """The tracker's (1, C, h, w) maps at 4x, 2x, 1x, the no-memory embedding added to the 1x one."""
        sizes = self.tracker.backbone_feature_sizes
        maps = list(fpn_hidden_states[: len(sizes)])  # (h * w, 1, C) each; a 0.5x level beyond is the detector's
        maps[-1] = maps[-1] + self.tracker.no_memory_embedding
        return [m.permute(1, 2, 0).reshape(1, -1, *size) for m, size in zip(maps, sizes, strict=True)]

    def _object_mask(self, entry: Embedded, box: Box | None, points: tuple[Point, ...], threshold: float) -> np.ndarray:
        import torch

        size, shape = self.pixels.size, entry.shape
        inputs: dict[str, Any] = {}
        if points:
            xy = [to_model_xy(p.x, p.y, shape, size) for p in points]
            inputs["input_points"] = torch.tensor([[xy]], dtype=torch.float32, device=self.device)
            inputs["input_labels"] = torch.tensor([[[int(p.positive) for p in points]]], dtype=torch.int64, device=self.device)
        if box is not None:
            inputs["input_boxes"] = torch.tensor([[box_corners(box, shape, size)]], dtype=torch.float32, device=self.device)
        multimask = box is None and len(points) == 1  # one click is ambiguous: the best of three by predicted IoU
        output = self.tracker(image_embeddings=entry.tracker, multimask_output=multimask, **inputs)
        best = int(output.iou_scores[0, 0].argmax())
        logits = upsample(output.pred_masks[0, 0, best : best + 1], shape)[0]
        return (logits > logit(threshold)).cpu().numpy()

    # ------------------------------------------------------------------ detector
    def detect(self, prompts: Prompts, threshold: float = 0.5) -> Detections:
        """Every instance of the concept (text and/or exemplars) on the current image, scored, masks cut at
        `threshold`; the score threshold is applied later (`Detections.labels`)."""
        threshold = check_threshold(threshold)
        entry = self._cache.current_for(prompts)
        with inference_mode():
            return self._detect(entry, prompts, threshold)

    def _detect(self, entry: Embedded, prompts: Prompts, threshold: float) -> Detections:
        import torch

        text = check_concept(prompts)
        detector = self._detector_model()
        height, width = entry.shape
        geometry: dict[str, Any] = {}
        if prompts.exemplars:
            boxes = [[exemplar_cxcywh(b, width, height) for b in prompts.exemplars]]
            geometry = {"input_boxes": torch.tensor(boxes, dtype=torch.float32, device=self.device),
                        "input_boxes_labels": torch.tensor([[int(b.positive) for b in prompts.exemplars]], dtype=torch.int64, device=self.device)}
        features, attention = self._text_features(detector, text)
        output = detector(vision_embeds=self._detector_features(entry, detector), text_embeds=features,
                          attention_mask=attention, **geometry)
        scores = output.pred_logits[0].sigmoid()
        if output.presence_logits is not None:
            scores = scores * output.presence_logits[0].sigmoid()
        kept = [int(i) for i in torch.argsort(scores, descending=True) if scores[i] >= MIN_SCORE]
        instances = []
        for start in range(0, len(kept), UPSAMPLE_BATCH):
            chosen = kept[start : start + UPSAMPLE_BATCH]
            masks = (upsample(output.pred_masks[0, chosen].sigmoid(), entry.shape) > threshold).cpu().numpy()
            instances += [Instance.from_full_mask(float(scores[i]), mask) for i, mask in zip(chosen, masks, strict=True)]
        return Detections(entry.shape, [item for item in instances if item is not None])

    def _detector_model(self) -> Any:
        """The detector, loaded on first use; its ViT is the tracker's (one copy of the shared weights)."""
        if self._detector is None:
            detector = load_part(transformers_class("Sam3Model"), self.folder, self.device)
            vocab = int(detector.config.text_config.vocab_size)
            if vocab != CLIP_VOCAB_SIZE:
                raise Sam3Error(f"{self.folder}: the SAM3 text encoder has {vocab} tokens, not CLIP's {CLIP_VOCAB_SIZE}: use the facebook/sam3 folder")
            detector.vision_encoder.backbone = self.tracker.vision_encoder.backbone
            provide_roi_align()
            self._detector = detector
        return self._detector

    def _detector_features(self, entry: Embedded, detector: Any) -> Any:
        """The detector's FPN features from the cached ViT output (kept for the current image only)."""
        if entry.detector is None:
            from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

            for other in self._cache.values():
                other.detector = None
            grid = self.pixels.size // int(detector.config.vision_config.backbone_config.patch_size)
            spatial = entry.backbone.view(1, grid, grid, -1).permute(0, 3, 1, 2)
            fpn, positions = detector.vision_encoder.neck(spatial)
            entry.detector = Sam3VisionEncoderOutput(last_hidden_state=entry.backbone, fpn_hidden_states=fpn, fpn_position_encoding=positions)
        return entry.detector

    def _text_features(self, detector: Any, text: str) -> tuple[Any, Any]:
        """The detector's features of `text` and their attention mask, computed once per text (the last
        `TEXT_CACHE_SIZE` kept). "visual" (exemplars alone) needs no tokenizer: its CLIP ids are known."""
        import torch

        if text not in self._texts:
            if text == VISUAL_TEXT:
                ids = torch.full((1, TEXT_LENGTH), VISUAL_TOKENS[-1], dtype=torch.int64)
                ids[0, : len(VISUAL_TOKENS)] = torch.tensor(VISUAL_TOKENS)
                attention = (torch.arange(TEXT_LENGTH) < len(VISUAL_TOKENS)).long()[None]
            else:
                tokens = self._tokenizer()(text, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt")
                ids, attention = tokens["input_ids"], tokens["attention_mask"]
            ids, attention = ids.to(self.device), attention.to(self.device)
            self._texts[text] = (detector.get_text_features(input_ids=ids, attention_mask=attention), attention)
            self.text_encodings += 1
            while len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        self._texts.move_to_end(text)
        return self._texts[text]

    def _tokenizer(self) -> Any:
        """The folder's CLIP tokenizer (loaded on the first text prompt), or a `Sam3Error` naming what is missing."""
        if self._tokenizer_model is None:
            check_tokenizer(self.folder)
            try:
                self._tokenizer_model = transformers_class("AutoTokenizer").from_pretrained(self.folder, local_files_only=True)
            except Exception as exc:
                raise Sam3Error(f"the text tokenizer in {self.folder} cannot be loaded ({one_line(exc)}): copy the complete facebook/sam3 folder") from exc
        return self._tokenizer_model
