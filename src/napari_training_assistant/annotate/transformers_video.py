"""3D propagation with transformers' `Sam3TrackerVideoModel` (CPU or CUDA) from a facebook/sam3 folder.

Slices are prepared like 2D images (`transformers_backend.PixelSettings`), one contrast for the whole stack,
and made only when the tracker asks for them (`LazyFrames`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .backend import CancelFlag
from .errors import Sam3Error
from .image_prep import intensity_limits, to_rgb_uint8
from .object_plan import check_threshold, logit, plan_objects
from .prompts import Box, FramePrompts, Point
from .transformers_backend import (
    BOX_LABELS,
    PixelSettings,
    box_corners,
    check_sam3_folder,
    inference_mode,
    load_part,
    paint,
    to_model_xy,
    transformers_class,
    upsample,
)


class LazyFrames(Mapping):
    """A stack's slices as model input, made when the tracker asks for one (the session reads frames only by
    index and length), so a long stack never sits in memory at the model's resolution."""

    def __init__(self, volume: np.ndarray, pixels: PixelSettings, limits: tuple[float, float] | None) -> None:
        self.volume, self.pixels, self.limits = volume, pixels, limits

    def __getitem__(self, index: int) -> Any:
        return self.pixels.tensor(to_rgb_uint8(self.volume[index], self.limits), "cpu")[0]

    def __len__(self) -> int:
        return len(self.volume)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.volume)))


class TransformersVideoBackend:
    """`PropagationBackend` on transformers' `Sam3TrackerVideoModel` (CPU or CUDA).

    On each prompted slice, box k is object k (1-based) and the points outside boxes (or all points, without
    boxes) make the next object, so prompts on several slices with the same layout refine the same objects."""

    name = "transformers"

    def __init__(self, folder: Path, device: str) -> None:
        self.folder = Path(folder)
        self.device = device
        check_sam3_folder(self.folder)
        self.model = load_part(transformers_class("Sam3TrackerVideoModel"), self.folder, device)
        self.pixels = PixelSettings.for_folder(self.folder, int(self.model.config.image_size))

    def propagate(self, volume: np.ndarray, prompts: FramePrompts, threshold: float = 0.5,
                  cancel: CancelFlag | None = None) -> Iterator[tuple[int, np.ndarray]]:
        threshold = check_threshold(threshold)
        volume = np.asarray(volume)
        plans = self._plans(volume, prompts)
        session = self._session(volume, len(plans))
        shape = (volume.shape[1], volume.shape[2])
        for frame in sorted(plans):  # every object gets its conditioning output(s) before anything is tracked
            if cancel is not None and cancel.cancelled:
                return
            with inference_mode():
                self._add_inputs(session, frame, plans[frame], shape)
                self.model(session, frame_idx=frame)
        for frame, reverse in self._order(min(plans), len(volume)):
            if cancel is not None and cancel.cancelled:
                return
            with inference_mode():
                labels = self._labels(self.model(session, frame_idx=frame, reverse=reverse), shape, threshold)
            yield frame, labels

    def _plans(self, volume: np.ndarray, prompts: FramePrompts) -> dict[int, list[tuple[Box | None, tuple[Point, ...]]]]:
        """The objects to segment on each prompted slice (see `plan_objects`)."""
        if volume.ndim not in (3, 4) or (volume.ndim == 4 and volume.shape[-1] not in (1, 3, 4)):
            raise Sam3Error(f"SAM3 propagation runs through a (Z, H, W) or (Z, H, W, C) stack, not an array of shape {volume.shape}")
        if prompts.is_empty():
            raise Sam3Error("no prompt on any slice: click points (or draw boxes) on one or more slices first")
        plans = {}
        for frame, frame_prompts in prompts.frames.items():
            if frame_prompts.is_empty():
                continue
            if not 0 <= frame < len(volume):
                raise Sam3Error(f"prompts on slice {frame}, but the stack has slices 0 to {len(volume) - 1}")
            if frame_prompts.exemplars:
                raise Sam3Error("exemplar boxes are a 2D prompt: use boxes or points on the slices to propagate")
            plans[int(frame)] = plan_objects(frame_prompts)
        return plans

    def _session(self, volume: np.ndarray, prompted: int) -> Any:
        import torch

        limits = None if volume.dtype == np.uint8 else intensity_limits(volume)  # one contrast for the whole stack
        session = transformers_class("Sam3TrackerVideoInferenceSession")(
            video_height=volume.shape[1], video_width=volume.shape[2], inference_device=self.device,
            inference_state_device=self.device, video_storage_device="cpu", dtype=torch.float32,
            max_vision_features_cache_size=prompted + 1,  # the prompted slices are embedded once
        )
        session.processed_frames = LazyFrames(volume, self.pixels, limits)
        return session

    def _add_inputs(self, session: Any, frame: int, objects: list[tuple[Box | None, tuple[Point, ...]]],
                    shape: tuple[int, int]) -> None:
        """Each object's box corners (labels 2, 3) and points (1 positive, 0 negative) on `frame`, as
        `Sam3TrackerVideoProcessor.add_inputs_to_inference_session` stores them."""
        import torch

        size = self.pixels.size
        for obj_id, (box, points) in enumerate(objects, start=1):
            xy = [to_model_xy(p.x, p.y, shape, size) for p in points]
            labels = [int(p.positive) for p in points]
            if box is not None:
                corners = box_corners(box, shape, size)
                xy, labels = [corners[:2], corners[2:], *xy], [*BOX_LABELS, *labels]
            obj_idx = session.obj_id_to_idx(obj_id)
            session.add_point_inputs(obj_idx, frame, {
                "point_coords": torch.tensor([[xy]], dtype=torch.float32),
                "point_labels": torch.tensor([[labels]], dtype=torch.int32),
            })
            session.remove_mask_inputs(obj_idx, frame)
        session.obj_with_new_inputs = list(range(1, len(objects) + 1))

    @staticmethod
    def _order(first: int, depth: int) -> list[tuple[int, bool]]:
        """(slice, reverse) in tracking order, each slice once: forward from the first prompted slice to the
        last slice (on later prompted slices, the objects prompted there keep their conditioning masks), then
        backward from the slice before it to slice 0."""
        return [(z, False) for z in range(first, depth)] + [(z, True) for z in range(first - 1, -1, -1)]

    @staticmethod
    def _labels(output: Any, shape: tuple[int, int], threshold: float) -> np.ndarray:
        labels = np.zeros(shape, dtype=np.uint16)
        cut = logit(threshold)
        for obj_id, logits in sorted(zip(output.object_ids, output.pred_masks, strict=True), key=lambda item: item[0]):
            paint(labels, (upsample(logits[:1], shape)[0] > cut).cpu().numpy(), int(obj_id))
        return labels
