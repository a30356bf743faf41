"""3D propagation with SAM3.1 multiplex (`sam3.1_multiplex.pt`, CUDA only).

The builder is `sam3.model_builder.build_sam3_multiplex_video_predictor`, in facebookresearch/sam3 on GitHub
after the PyPI release (0.1.4 stops at SAM3.0). The napari-sam3-assistant plugin does not bundle it either:
its adapter imports the same function from that sam3 install, so the install to ask for is sam3 from GitHub.

The predictor it returns (`Sam3MultiplexVideoPredictor`, via `Sam3BasePredictor`) is driven through its
request API, as its own examples do:

- `handle_request({"type": "start_session", "resource_path": frames})`: frames is a list of PIL images
  (`io_utils.load_resource_as_video_frames` accepts one) -> {"session_id"}
- `handle_request({"type": "add_prompt", "session_id", "frame_index", "obj_id", "points", "point_labels",
  "output_prob_thresh"})`: points in 0..1 (`rel_coordinates` defaults to True), labels 1 positive, 0 negative,
  2 and 3 the corners of a box (SAM's box-as-points form); or "bounding_boxes" [[x, y, w, h] in 0..1] with
  "bounding_box_labels" for exemplars (the detector finds every similar object; this starts the session's
  prompts over, so exemplars go first) -> {"frame_index", "outputs": {"out_obj_ids", "out_binary_masks", ...}}
- `handle_stream_request({"type": "propagate_in_video", "session_id", "propagation_direction": "both",
  "start_frame_index", "output_prob_thresh"})` yields {"frame_index", "outputs"}: forward from the start frame,
  then backward from the frame before it.
- `handle_request({"type": "close_session", "session_id"})`.

The weights are only read from the chosen folder: the builder gets the folder's file as `checkpoint_path`
(given None it would download) and loads it with `torch.load(weights_only=True)`; the file is checked the same
way here first, so an unsafe pickle is refused before sam3 sees it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backend import CancelFlag
from .errors import Sam3Error, one_line
from .image_prep import intensity_limits, to_rgb_uint8
from .model_folder import MULTIPLEX_WEIGHTS
from .object_plan import check_threshold, plan_objects
from .prompts import Box, FramePrompts, Point, Prompts
from .runtime import (
    BUILDER_NAME,
    INSTALL_SAM3,
    cuda_inference,
    find_multiplex_builder,
    require_cuda,
    sam3_construction,
)
from .sam3_package_backend import find_bpe_path, load_checkpoint_state

# with exemplars, the detector numbers the objects it finds itself: user objects are kept clear of them
USER_OBJECT_ID_BASE_WITH_EXEMPLARS = 1000
OFFLOAD_FRAMES_ABOVE = 256  # longer stacks keep their frames in CPU memory (about 6 MB a frame on the GPU)


# --------------------------------------------------------------------------- prompts -> requests
@dataclass(frozen=True)
class PromptRequest:
    """One `add_prompt` request (without session id and threshold) and the label its object gets (0 for
    exemplars, whose objects are numbered as they are found)."""

    request: dict[str, Any]
    label: int


def normalised_xy(x: float, y: float, width: int, height: int) -> list[float]:
    return [float(min(max(x / width, 0.0), 1.0)), float(min(max(y / height, 0.0), 1.0))]


def exemplar_xywh(box: Box, width: int, height: int) -> list[float]:
    """An exemplar box as the video detector takes it: [left, top, width, height] in 0..1."""
    x0, x1 = sorted((min(max(box.x0, 0.0), width), min(max(box.x1, 0.0), width)))
    y0, y1 = sorted((min(max(box.y0, 0.0), height), min(max(box.y1, 0.0), height)))
    return [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]


def object_points(box: Box | None, points: tuple[Point, ...], width: int, height: int) -> tuple[list[list[float]], list[int]]:
    """Tracker points for one object: a box as its two corners (labels 2 and 3, first), then the clicks."""
    coords: list[list[float]] = []
    labels: list[int] = []
    if box is not None:
        coords += [normalised_xy(min(box.x0, box.x1), min(box.y0, box.y1), width, height),
                   normalised_xy(max(box.x0, box.x1), max(box.y0, box.y1), width, height)]
        labels += [2, 3]
    coords += [normalised_xy(p.x, p.y, width, height) for p in points]
    labels += [1 if p.positive else 0 for p in points]
    return coords, labels


def plan_requests(prompts: FramePrompts, num_frames: int, height: int, width: int) -> list[PromptRequest]:
    """The `add_prompt` requests for `prompts`, in the order they must be sent.

    On each slice, objects are numbered as in 2D: one per positive box (with the clicks inside it), then one
    from the clicks outside every box. Object k on one slice is object k on every slice, so clicks on several
    slices refine one object. Exemplars (one slice only) go first, since they start the prompts over; then every
    request that holds a positive click or a box, by slice; then negative-only corrections."""
    frames = {int(z): p for z, p in prompts.frames.items() if not p.is_empty()}
    if not frames:
        raise Sam3Error("no prompt on any slice: click the object on one or more slices of the stack first")
    outside = sorted(z for z in frames if not 0 <= z < num_frames)
    if outside:
        raise Sam3Error(f"prompts on slice(s) {outside} lie outside the stack of {num_frames} slices: prompt on the stack's slices")
    exemplar_frames = [z for z, p in sorted(frames.items()) if p.exemplars]
    if len(exemplar_frames) > 1:
        raise Sam3Error(f"exemplar boxes on slices {exemplar_frames}: SAM3.1 takes exemplars on one slice only, keep them on one")
    first: list[PromptRequest] = []
    if exemplar_frames:
        z = exemplar_frames[0]
        exemplars = frames[z].exemplars
        if not any(b.positive for b in exemplars):
            raise Sam3Error("the exemplar boxes are all negative: draw at least one positive exemplar around an object to find")
        first.append(PromptRequest({
            "type": "add_prompt", "frame_index": z,
            "bounding_boxes": [exemplar_xywh(b, width, height) for b in exemplars],
            "bounding_box_labels": [1 if b.positive else 0 for b in exemplars],
        }, 0))
    base = USER_OBJECT_ID_BASE_WITH_EXEMPLARS if exemplar_frames else 0
    seeds: list[PromptRequest] = []
    corrections: list[PromptRequest] = []
    seeded: set[int] = set()
    for z, frame in sorted(frames.items()):
        plain = Prompts(boxes=frame.boxes, points=frame.points)
        objects = plan_objects(plain, negative_only=True) if (frame.boxes or frame.points) else []
        for label, (box, points) in enumerate(objects, start=1):
            coords, codes = object_points(box, points, width, height)
            item = PromptRequest({"type": "add_prompt", "frame_index": z, "obj_id": base + label,
                                  "points": coords, "point_labels": codes}, label)
            if box is not None or any(p.positive for p in points):
                seeds.append(item)
                seeded.add(label)
            else:
                corrections.append(item)
    orphans = sorted({c.label for c in corrections} - seeded)
    if orphans:
        raise Sam3Error(f"object(s) {orphans} have only negative clicks: click each object positively on at least one slice")
    return first + seeds + corrections


class LabelMap:
    """Model object ids -> labels, stable across slices: the user's objects keep their numbers, objects the
    detector finds get the next free ones in the order they are first seen."""

    def __init__(self, known: dict[int, int]) -> None:
        self._labels = dict(known)
        self._next = max(known.values(), default=0) + 1

    def __call__(self, obj_id: int) -> int:
        if obj_id not in self._labels:
            self._labels[obj_id] = self._next
            self._next += 1
        return self._labels[obj_id]

    def paint(self, outputs: dict[str, Any] | None, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) uint16 labels from a frame's outputs (`out_obj_ids`, `out_binary_masks` (N, H, W))."""
        labels = np.zeros(shape, dtype=np.uint16)
        if not outputs:
            return labels
        ids, masks = outputs.get("out_obj_ids"), outputs.get("out_binary_masks")
        if ids is None or masks is None:
            return labels
        ids = _numpy(ids).astype(np.int64).reshape(-1)
        if ids.size == 0:
            return labels
        masks = _numpy(masks)
        masks = masks.reshape(len(ids), *masks.shape[-2:]) > 0
        if masks.shape[-2:] != shape:
            raise Sam3Error(f"SAM3.1 returned masks of shape {masks.shape[-2:]} for slices of shape {shape}: report this with the stack's shape")
        for obj_id, mask in sorted(zip(ids.tolist(), masks, strict=True), key=lambda pair: self(pair[0])):
            labels[mask & (labels == 0)] = self(obj_id)
        return labels


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def volume_frames(volume: np.ndarray) -> list:
    """A (Z, H, W) or (Z, H, W, C) stack as the PIL RGB frames a session takes, scaled with one pair of
    percentiles for the whole stack (no flicker between slices)."""
    from PIL import Image

    data = np.asarray(volume)
    if data.ndim not in (3, 4) or (data.ndim == 4 and data.shape[-1] not in (1, 3, 4)):
        raise Sam3Error(f"SAM3.1 propagates through a (Z, H, W) stack, not an array of shape {data.shape}: choose a 3D stack")
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    limits = intensity_limits(data[..., :3] if data.ndim == 4 else data) if data.dtype != np.uint8 else None
    return [Image.fromarray(to_rgb_uint8(plane, limits)) for plane in data]


# --------------------------------------------------------------------------- the backend
class MultiplexPropagationBackend:
    """`PropagationBackend` on the SAM3.1 multiplex video predictor (CUDA only); see the module docstring."""

    name = "sam3.1 multiplex"

    def __init__(self, folder: Path, device: str) -> None:
        self.folder = Path(folder)
        self.device = require_cuda(device, "SAM3.1 multiplex propagation", "on CPU, 3D propagation runs the SAM3.0 tracker of a Hugging Face folder (model.safetensors + config.json)")
        weights = self.folder / MULTIPLEX_WEIGHTS
        if not weights.is_file():
            raise Sam3Error(f"{self.folder} has no {MULTIPLEX_WEIGHTS}: choose the SAM3.1 model folder")
        builder, why = find_multiplex_builder()
        if builder is None:
            raise Sam3Error(why)
        bpe = find_bpe_path(self.folder)
        check_multiplex_checkpoint(weights)
        self._predictor = self._build(builder, weights, bpe)

    def _build(self, builder: Callable[..., Any], weights: Path, bpe: Path) -> Any:
        wanted = {
            "checkpoint_path": str(weights),
            "bpe_path": str(bpe),
            "device": self.device,
            "use_fa3": False,  # FlashAttention 3 is an optional extra (Hopper only)
            "use_rope_real": True,
            "compile": False,
            "warm_up": False,
            "async_loading_frames": False,
        }
        try:
            parameters = inspect.signature(builder).parameters
        except (TypeError, ValueError):
            parameters = {}
        if "checkpoint_path" not in parameters:
            raise Sam3Error(f"the installed {BUILDER_NAME} takes no checkpoint_path, so it would fetch weights itself: {INSTALL_SAM3}")
        kwargs = {k: v for k, v in wanted.items() if k in parameters}
        try:
            with sam3_construction(self.device):
                return builder(**kwargs)
        except Sam3Error:
            raise
        except Exception as exc:
            raise Sam3Error(f"SAM3.1 multiplex could not be built from {weights} ({one_line(exc)}): check the CUDA install, or reinstall with {INSTALL_SAM3}") from exc

    def propagate(self, volume: np.ndarray, prompts: FramePrompts, threshold: float = 0.5,
                  cancel: CancelFlag | None = None) -> Iterator[tuple[int, np.ndarray]]:
        threshold = check_threshold(threshold)
        frames = volume_frames(volume)
        num_frames = len(frames)
        height, width = frames[0].height, frames[0].width
        plan = plan_requests(prompts, num_frames, height, width)
        labels = LabelMap({item.request["obj_id"]: item.label for item in plan if "obj_id" in item.request})
        return self._run(frames, plan, labels, threshold, cancel, (height, width))

    def _run(self, frames: list, plan: list[PromptRequest], labels: LabelMap, threshold: float,
             cancel: CancelFlag | None, shape: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
        stopped = (lambda: False) if cancel is None else (lambda: bool(cancel.cancelled))
        predictor = self._predictor
        with cuda_inference(self.device):
            session = predictor.handle_request({
                "type": "start_session", "resource_path": frames,
                "offload_video_to_cpu": len(frames) > OFFLOAD_FRAMES_ABOVE,
            })["session_id"]
        try:
            prompted: dict[int, Any] = {}
            for item in plan:
                if stopped():
                    return
                with cuda_inference(self.device):
                    response = predictor.handle_request(item.request | {"session_id": session, "output_prob_thresh": threshold})
                if response.get("outputs") is not None:
                    prompted[int(response.get("frame_index", item.request["frame_index"]))] = response["outputs"]
            done: set[int] = set()
            for z in sorted(prompted):  # the prompted slices first, as the last prompt on each left them
                if stopped():
                    return
                done.add(z)
                yield z, labels.paint(prompted[z], shape)
            start = min(int(item.request["frame_index"]) for item in plan)
            stream = predictor.handle_stream_request({
                "type": "propagate_in_video", "session_id": session, "propagation_direction": "both",
                "start_frame_index": start, "output_prob_thresh": threshold,
            })
            try:
                while not stopped():
                    with cuda_inference(self.device):  # entered around each step: never left on between yields
                        response = next(stream, None)
                    if response is None:
                        break
                    z = int(response["frame_index"])
                    if z in done or not 0 <= z < len(frames):
                        continue
                    done.add(z)
                    yield z, labels.paint(response.get("outputs"), shape)
            finally:
                stream.close()
            for z in range(len(frames)):  # every slice exactly once, even one the model left out
                if stopped():
                    return
                if z not in done:
                    done.add(z)
                    yield z, np.zeros(shape, dtype=np.uint16)
        finally:
            with cuda_inference(self.device):
                predictor.handle_request({"type": "close_session", "session_id": session})


def check_multiplex_checkpoint(path: Path) -> None:
    """`path` read with `torch.load(weights_only=True)` (memory-mapped, cheap) and shaped like a SAM3.1
    multiplex checkpoint (detector and tracker weights), before the sam3 builder loads it."""
    state = load_checkpoint_state(path, mmap=True)
    prefixes = {str(k).split(".", 1)[0] for k in state}
    del state
    if not prefixes & {"detector", "sam3_model"} or not prefixes & {"tracker", "sam2_predictor"}:
        raise Sam3Error(f"{path} does not look like a SAM3.1 multiplex checkpoint (no detector and tracker weights): use sam3.1_multiplex.pt as published")
