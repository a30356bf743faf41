"""One place that owns the loaded SAM3 backends and runs previews (the tab and scripts call it; no Qt here).

A backend is loaded once per (folder, device) and kept; the image embedding is cached by the backend per image
key, so a second prompt on the same image or slice only runs the prompt encoder and mask decoder. A lock keeps
two previews (a live-points click and a button press) from running the model at the same time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .backend import CancelFlag, ImageBackend, PropagationBackend
from .detections import Detections
from .errors import Sam3Error
from .loading import load_image_backend, load_propagation_backend
from .model_folder import ModelFolder
from .object_plan import check_concept
from .prompts import Prompts
from .tiling import PlaneSource, TiledDetections, Window, shift_prompts


@dataclass(frozen=True)
class Preview:
    labels: np.ndarray  # (H, W) uint16
    embedded: bool  # the image embedding was computed for this preview (not cached)
    embed_s: float
    segment_s: float
    detections: Detections | None = None  # a concept prompt's scored instances (re-thresholded without the model)

    @property
    def objects(self) -> int:
        return int(len(np.unique(self.labels)) - (1 if (self.labels == 0).any() else 0))


class Annotator:
    def __init__(
        self,
        image_loader: Callable[[ModelFolder], ImageBackend] = load_image_backend,
        propagation_loader: Callable[[ModelFolder], PropagationBackend] = load_propagation_backend,
    ):
        self._image_loader = image_loader
        self._propagation_loader = propagation_loader
        self._image: tuple[tuple, ImageBackend] | None = None
        self._propagation: tuple[tuple, PropagationBackend] | None = None
        self._lock = threading.Lock()

    def image_backend(self, folder: ModelFolder) -> ImageBackend:
        """The loaded 2D backend for `folder` (loaded now when the folder or device changed)."""
        return self._backend("_image", folder, self._image_loader)

    def propagation_backend(self, folder: ModelFolder) -> PropagationBackend:
        return self._backend("_propagation", folder, self._propagation_loader)

    def _backend(self, slot: str, folder: ModelFolder, loader: Callable):
        key = (folder.path.resolve(), folder.kind, folder.device)
        held = getattr(self, slot)
        if held is None or held[0] != key:
            held = None
            setattr(self, slot, None)  # free the previous model before loading another
            setattr(self, slot, (key, loader(folder)))
        return getattr(self, slot)[1]

    def preview(self, folder: ModelFolder, plane: np.ndarray, key: object, prompts: Prompts, threshold: float = 0.5,
                score_threshold: float | None = None) -> Preview:
        """Labels for `prompts` on the 2D `plane` (embedding reused when `key` is the cached image). A concept
        prompt alone (text and/or exemplars) keeps its scored detections, labelled at `score_threshold`
        (default: `threshold`)."""
        if prompts.is_empty() and not prompts.is_concept:
            raise Sam3Error("no prompt on this image (or slice): draw a box or click a point in the SAM3 prompt layer first")
        concept = prompts.is_concept and not (prompts.boxes or prompts.points)
        with self._lock:
            backend = self.image_backend(folder)
            start = time.perf_counter()
            embedded = backend.set_image(plane, key)
            middle = time.perf_counter()
            found = backend.detect(prompts, threshold) if concept else None
            labels = found.labels(threshold if score_threshold is None else score_threshold) if found else backend.segment(prompts, threshold)
            end = time.perf_counter()
        return Preview(np.asarray(labels, dtype=np.uint16), embedded, middle - start, end - middle, found)

    def scan(self, folder: ModelFolder, source: PlaneSource, key: object, windows: list[Window], prompts: Prompts,
             threshold: float = 0.5, cancel: CancelFlag | None = None,
             on_tile: Callable[[int, Detections], None] | None = None) -> TiledDetections:
        """A concept prompt (text, exemplars) on each window of a large image, one tile in memory at a time:
        each tile is embedded (cached by `key` and window) and searched; `on_tile(index, detections)` gets
        what each tile found, in image coordinates. Stops between tiles when `cancel.cancelled`."""
        check_concept(prompts)
        found = TiledDetections(source.shape)
        for index, window in enumerate(windows):
            if cancel is not None and cancel.cancelled:
                break
            local = shift_prompts(prompts, window)
            if not local.text and not local.exemplars:
                continue  # exemplars alone only search the tiles that hold them
            rgb = source.read(window)
            with self._lock:
                backend = self.image_backend(folder)
                backend.set_image(rgb, (key, window))
                tile = backend.detect(local, threshold).moved((window[0], window[2]))
            found.tiles.append(tile)
            if on_tile is not None:
                on_tile(index, tile)
        return found
