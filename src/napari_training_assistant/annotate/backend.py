"""The interface every SAM3 backend implements, so that the tab and the CLI never know which one runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from .detections import Detections
from .prompts import FramePrompts, Prompts


class CancelFlag(Protocol):
    @property
    def cancelled(self) -> bool: ...


class ImageBackend(Protocol):
    """2D segmentation from prompts. The image embedding is computed once per `set_image` key and reused:
    later prompts on the same image only run the prompt encoder and mask decoder."""

    name: str
    device: str

    def set_image(self, image: np.ndarray, key: object) -> bool:
        """Embed a 2D image, (H, W) grey or (H, W, C) with C in 1, 3 or 4; returns False when `key` is
        already the cached image (nothing computed)."""

    def segment(self, prompts: Prompts, threshold: float = 0.5) -> np.ndarray:
        """Labels (H, W) uint16 for the current image: 0 background, objects 1..n (boxes in order, or one
        object from points alone, then every object found from the text and exemplars)."""

    def detect(self, prompts: Prompts, threshold: float = 0.5) -> Detections:
        """Every instance of the concept (text and/or exemplars) on the current image with its score, masks
        cut at the probability `threshold`; the score threshold is chosen later (`Detections.labels`)."""


class PropagationBackend(Protocol):
    """3D: prompts on some slices of a (Z, H, W) stack, masks propagated through every slice."""

    name: str
    device: str

    def propagate(self, volume: np.ndarray, prompts: FramePrompts, threshold: float = 0.5,
                  cancel: CancelFlag | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yields (slice index, labels (H, W) uint16) as each slice is done, prompted slices first, then
        forward and backward through the stack; stops early when `cancel.cancelled`."""
