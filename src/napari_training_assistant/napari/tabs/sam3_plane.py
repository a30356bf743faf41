"""SAM3 tab, 2D previews: the whole plane as before; on a large image a window around box and point prompts,
the tiles in view (**Run in view**) or every tile (**Scan image**) for concept prompts (text, exemplars); and
the score threshold, which re-labels the last concept result without running SAM3 again.

The tab owns the worker, Stop and the result layers' names; this panel owns its widgets and what a 2D run
reads and writes. Tiling, stitching and scoring are in `annotate.tiling` and `annotate.detections`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget

from ...annotate.detections import Detections, paint_instances
from ...annotate.errors import Sam3Error
from ...annotate.from_layers import image_plane
from ...annotate.model_folder import check_reads_text
from ...annotate.object_plan import check_concept
from ...annotate.tiling import (
    PlaneSource,
    TiledDetections,
    TileGrid,
    Window,
    model_input_size,
    new_canvas,
    shift_prompts,
)
from ...cancel import CancelToken
from ...project.schemas.sam3 import CONCEPT_MODES
from .. import sam3_layers
from ..frame_writer import FrameWriter
from ..layer_choice import image_data
from .base import probability_spin


@dataclass
class ConceptResult:
    """The last concept result and where it is drawn, so that the score threshold can re-label it."""

    found: Detections | TiledDetections
    layer_name: str
    slice_index: int | None
    window: Window  # where a single Detections lies in the plane (the whole plane, or a window)


class PlanePanel:
    def __init__(self, tab) -> None:
        self.tab = tab
        self.result: ConceptResult | None = None
        self.large = False  # the last run was on a tiled (large) image: accepting crops to the labelled region
        self.text = QLineEdit()
        self.text.setPlaceholderText("what to find, e.g. nucleus")
        self.text.setToolTip("2D text mode: SAM3 finds every instance of this concept; exemplar boxes (optional) refine it")
        self.score = probability_spin("Text and exemplar detections scoring less are left out; changing it re-labels the last result at once",
                                      low=0.05, high=0.95)
        self.tile = QSpinBox()
        self.tile.setRange(0, 65536)
        self.tile.setSingleStep(256)
        self.tile.setSpecialValueText("model input")
        self.tile.setToolTip("Tile edge for images larger than the model input (0: the model input, 1008 px for SAM3)")
        self.view_button = QPushButton("Run in view")
        self.view_button.setToolTip("Text / exemplar modes: segment the tiles that cover the part of the image on screen")
        self.scan_button = QPushButton("Scan image")
        self.scan_button.setToolTip("Text / exemplar modes: segment every tile of the image in the background (Stop ends it)")
        self.view_button.clicked.connect(lambda: self.tab.run_2d(in_view=True))
        self.scan_button.clicked.connect(lambda: self.tab.run_2d(scan=True))
        self.score.valueChanged.connect(self.rethreshold)

    def rows(self) -> list[tuple[str, QWidget]]:
        """The panel's rows of the tab's form."""
        buttons = QWidget()
        row = QHBoxLayout(buttons)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.view_button)
        row.addWidget(self.scan_button)
        return [("Text prompt", self.text), ("Score ≥", self.score), ("Tile size", self.tile), ("Large images", buttons)]

    def set_enabled(self, idle: bool, has_image: bool, mode: str) -> None:
        concept = mode in CONCEPT_MODES
        self.text.setEnabled(mode == "2d_text")
        self.view_button.setEnabled(idle and has_image and concept)
        self.scan_button.setEnabled(idle and has_image and concept)

    # ------------------------------------------------------------------ runs
    def start(self, folder, layer, mode: str, *, in_view: bool = False, scan: bool = False) -> None:
        """A 2D run on the plane shown: whole, a window around the prompts, the tiles in view, or a scan."""
        tab = self.tab
        data, rgb, z = image_data(layer), bool(getattr(layer, "rgb", False)), tab.viewer_slice()
        plane = image_plane(data, rgb=rgb, slice_index=z)
        shape = tuple(int(v) for v in np.shape(plane)[:2])
        grid = TileGrid.for_model(shape, model_input_size(folder.path), self.tile.value())
        concept = mode in CONCEPT_MODES
        if (in_view or scan) and not concept:
            raise Sam3Error("Run in view and Scan image find every instance of a concept: choose the 2D text or 2D exemplar mode")
        prompts = tab.read_prompts(mode, layer.ndim, z, shape, text=self.text.text() if mode == "2d_text" else None)
        if concept:
            check_concept(prompts)  # an empty text, or a folder that cannot read text, is refused before any layer changes
        if prompts.text:
            check_reads_text(folder)
        records = prompts.as_records(mode, frame=z)
        key = (id(data), z)
        self.result, self.large = None, grid.is_large
        if scan or in_view or (concept and grid.is_large):
            windows = grid.windows() if scan else grid.covering(self.visible_window(layer, shape))
            self._scan(folder, layer, z, PlaneSource(plane, rgb=rgb, coarse=coarse_level(layer)), windows, prompts, key, records)
            return
        window = grid.around(prompts) if grid.is_large else (0, shape[0], 0, shape[1])
        pixels = PlaneSource(plane, rgb=rgb).read(window) if grid.is_large else np.asarray(plane)
        local = shift_prompts(prompts, window) if grid.is_large else prompts
        threshold, score = tab.threshold.value(), self.score.value()
        tab.show_message("Running SAM3 (the first preview of an image loads the model and embeds the image)…")
        tab._start(lambda: tab.annotator.preview(folder, pixels, (key, window), local, threshold, score),
                   lambda preview: self._show(preview, layer, z, window, records, large=grid.is_large))

    def _show(self, preview, layer, z: int | None, window: Window, records: list[dict[str, Any]], large: bool) -> None:
        target = self._target(layer, z)
        y0, y1, x0, x1 = window
        if large:
            self._clear(target, z)
        self._write(target, z, (slice(y0, y1), slice(x0, x1)), preview.labels)
        if preview.detections is not None:
            self.result = ConceptResult(preview.detections, target.name, z, window)
            show_scores(target, preview.detections.scored_labels(self.score.value())[1])
        tab = self.tab
        tab.last_preview = preview
        tab._prompts, tab._preview_slice = records, z
        cached = "cached image embedding" if not preview.embedded else f"image embedded in {preview.embed_s:.1f} s"
        where = f" on slice {z}" if z is not None else ""
        place = f" in the window y {y0}-{y1}, x {x0}-{x1}" if large else ""
        tab.show_message(f"{preview.objects} object(s){where}{place} in {preview.segment_s:.2f} s ({cached}).")

    def _scan(self, folder, layer, z: int | None, source: PlaneSource, windows: list[Window], prompts, key, records) -> None:
        tab = self.tab
        target = self._target(layer, z)
        self._clear(target, z)
        writer = tab.writer = FrameWriter(target, parent=tab)
        cancel = tab.cancel = CancelToken()
        canvas, scores, score = new_canvas(source.shape), {}, self.score.value()
        prefix = () if z is None else (z,)

        def on_tile(index: int, found: Detections) -> None:  # worker thread: paint privately, queue the tile's labels
            paint_instances(canvas, found.instances, score, scores)
            y0, y1, x0, x1 = windows[index]
            writer.put((*prefix, slice(y0, y1), slice(x0, x1)), np.array(canvas[y0:y1, x0:x1]))

        writer.written.connect(lambda count: tab.show_message(f"Scanning: {count} of {len(windows)} tile(s)…"))
        writer.start()
        tab._prompts, tab._preview_slice = records, z
        tab.show_message(f"Scanning {len(windows)} tile(s) of {source.shape[0]} x {source.shape[1]} with {folder.describe()}…")
        tab._start(lambda: tab.annotator.scan(folder, source, key, windows, prompts, tab.threshold.value(), cancel, on_tile),
                   lambda found: self._scanned(found, target.name, z, len(windows), scores))

    def _scanned(self, found: TiledDetections, layer_name: str, z: int | None, planned: int, scores: dict) -> None:
        tab = self.tab
        writer, tab.writer = tab.writer, None
        writer.finish()
        stopped = tab.cancel is not None and tab.cancel.cancelled
        self.result = ConceptResult(found, layer_name, z, (0, *found.shape[:1], 0, *found.shape[1:]))
        if layer_name in tab.viewer.layers:
            show_scores(tab.viewer.layers[layer_name], scores)
        verb = "Stopped after" if stopped else "Scanned"
        tab.show_message(f"{verb} {len(found.tiles)} of {planned} tile(s): {len(scores)} object(s) at score ≥ {self.score.value():.2f}.")

    # ------------------------------------------------------------------ score threshold
    def rethreshold(self, *_) -> None:
        """Re-label the last concept result at the new score threshold (no model run)."""
        result, tab = self.result, self.tab
        if result is None or tab.worker is not None or result.layer_name not in tab.viewer.layers:
            return
        target = tab.viewer.layers[result.layer_name]
        y0, y1, x0, x1 = result.window
        labels, scores = result.found.scored_labels(self.score.value())
        show_scores(target, scores)
        if isinstance(result.found, TiledDetections):
            self._clear(target, result.slice_index)
            y0, y1, x0, x1 = 0, labels.shape[0], 0, labels.shape[1]
        self._write(target, result.slice_index, (slice(y0, y1), slice(x0, x1)), np.asarray(labels[:]))
        tab.show_message(f"{len(scores)} object(s) at score ≥ {self.score.value():.2f} (re-labelled, SAM3 not run).")
        tab._save_config()

    # ------------------------------------------------------------------ layers
    def _target(self, layer, z: int | None):
        """The preview labels layer; over a 2D image it is uint32 (a scan may find more than 65,535 objects),
        a chunked zarr array beyond `IN_MEMORY_PIXELS`."""
        shape = tuple(np.shape(image_data(layer))[: layer.ndim])
        return sam3_layers.ensure_labels_layer(self.tab.viewer, self.tab.layer_names()["preview"], shape, layer,
                                               empty=(lambda: new_canvas(shape)) if z is None else None)

    @staticmethod
    def _clear(target, z: int | None) -> None:
        if z is None:
            target.data[...] = 0
        else:
            target.data[z] = 0

    @staticmethod
    def _write(target, z: int | None, window: tuple[slice, slice], labels: np.ndarray) -> None:
        target.data[(window if z is None else (z, *window))] = labels
        target.refresh()

    @staticmethod
    def visible_window(layer, shape: tuple[int, int]) -> Window:
        """The part of the image on screen in level-0 pixels (the whole image before the first draw)."""
        corners = np.asarray(layer.corner_pixels, dtype=float)[:, -2:]
        if not corners.any():
            return 0, shape[0], 0, shape[1]
        factor = np.ones(2)
        if getattr(layer, "multiscale", False):  # corners are pixels of the level on screen
            level_shape = np.shape(layer.data[layer.data_level])[-2 - (1 if layer.rgb else 0) :][:2]
            factor = np.asarray(shape, dtype=float) / np.asarray(level_shape, dtype=float)
        (y0, x0), (y1, x1) = np.floor(corners[0] * factor), np.ceil((corners[1] + 1) * factor)
        return int(max(y0, 0)), int(min(y1, shape[0])), int(max(x0, 0)), int(min(x1, shape[1]))


def coarse_level(layer) -> Any:
    """A multiscale 2D image's coarsest level (for the intensity range of a scan), else None."""
    return layer.data[-1] if getattr(layer, "multiscale", False) and layer.ndim == 2 else None


def show_scores(layer, scores: dict[int, float]) -> None:
    """Each object's detection score as a feature of the labels layer (napari shows it under the cursor)."""
    layer.features = {"index": [0, *scores], "score": [float("nan"), *(round(s, 3) for s in scores.values())]}
