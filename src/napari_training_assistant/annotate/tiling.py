"""SAM3 on 2D images larger than its input: a grid of overlapping tiles, read from any array-like.

SAM3 squashes whatever it is given to its input size (1008 px), so a slide or mosaic seen whole loses its
objects. An image more than `TILE_SLACK` times the tile size is cut into tiles of `tile` pixels overlapping
by `overlap`, the last row and column aligned to the image's edge. Tiles are read one at a time from the
layer's array (numpy, dask, zarr, or level 0 of a multiscale pyramid) with one intensity range for the whole
image, so that contrast does not jump between tiles. Boxes and points are segmented in one window centred on
them; concept prompts (text, exemplars) run on every tile of a scan, exemplars on the tiles that hold them."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .detections import Detections, paint_instances
from .errors import Sam3Error
from .image_prep import intensity_limits, to_rgb_uint8
from .prompts import Box, Point, Prompts

SAM3_INPUT = 1008  # facebook/sam3's image size
TILE_SLACK = 1.5  # images up to this many tiles wide are embedded whole, as before tiling
OVERLAP_FRACTION = 0.25  # of the tile: objects up to this size are whole in at least one tile
LIMIT_SAMPLES = 1 << 22  # pixels read to find the intensity range of a large image
IN_MEMORY_PIXELS = 1 << 26  # label images up to this size are numpy arrays (256 MB as uint32), larger ones zarr

Window = tuple[int, int, int, int]  # (y0, y1, x0, x1) in image pixels


def model_input_size(folder: str | Path) -> int:
    """The square input SAM3 squashes images to: the tracker's `image_size` in a Hugging Face folder's
    config.json, else SAM3's 1008."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        return int(config.get("tracker_config", {}).get("image_size", SAM3_INPUT))
    except (OSError, ValueError, AttributeError, TypeError):
        return SAM3_INPUT


@dataclass(frozen=True)
class TileGrid:
    shape: tuple[int, int]
    tile: int
    overlap: int

    @classmethod
    def for_model(cls, shape: Sequence[int], model_size: int, tile: int | None = None) -> TileGrid:
        """The grid for an image of `shape` (H, W) with tiles of `tile` pixels (default: the model's input),
        refused in one line when a tile is smaller than the model's input."""
        tile = int(model_size if tile in (None, 0) else tile)
        if tile < model_size:
            raise Sam3Error(f"tile size {tile} is smaller than the model's input of {model_size} px: use {model_size} or more (0 = the model's input)")
        return cls((int(shape[0]), int(shape[1])), tile, int(round(tile * OVERLAP_FRACTION)))

    @property
    def is_large(self) -> bool:
        """The image is too big to embed whole (more than `TILE_SLACK` tiles along a side)."""
        return max(self.shape) > TILE_SLACK * self.tile

    def windows(self) -> list[Window]:
        """Every tile, row by row."""
        rows, cols = (_starts(length, self.tile, self.overlap) for length in self.shape)
        return [(y, min(y + self.tile, self.shape[0]), x, min(x + self.tile, self.shape[1])) for y in rows for x in cols]

    def covering(self, region: Window) -> list[Window]:
        """The tiles that intersect `region` (e.g. the part of the image in view)."""
        y0, y1, x0, x1 = region
        return [w for w in self.windows() if w[0] < y1 and w[1] > y0 and w[2] < x1 and w[3] > x0]

    def around(self, prompts: Prompts) -> Window:
        """One window of at least a tile, centred on the boxes and points (grown to hold them all), inside the image."""
        ys, xs = _prompt_extent(prompts)
        return (*_centred(min(ys), max(ys), self.tile, self.shape[0]), *_centred(min(xs), max(xs), self.tile, self.shape[1]))


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _centred(low: float, high: float, tile: int, length: int) -> tuple[int, int]:
    size = min(max(tile, int(math.ceil(high - low)) + 2), length)
    start = int(round((low + high) / 2 - size / 2))
    start = min(max(start, 0), length - size)
    return start, start + size


def _prompt_extent(prompts: Prompts) -> tuple[list[float], list[float]]:
    boxes = [*prompts.boxes, *prompts.exemplars]
    ys = [v for b in boxes for v in (b.y0, b.y1)] + [p.y for p in prompts.points]
    xs = [v for b in boxes for v in (b.x0, b.x1)] + [p.x for p in prompts.points]
    if not ys:
        raise Sam3Error("no box or point to centre the window on: draw one, or use Scan image for a text prompt")
    return ys, xs


def shift_prompts(prompts: Prompts, window: Window) -> Prompts:
    """The prompts in the window's pixels; exemplar boxes outside the window are left out."""
    y0, y1, x0, x1 = window

    def box(b: Box) -> Box:
        return replace(b, x0=b.x0 - x0, x1=b.x1 - x0, y0=b.y0 - y0, y1=b.y1 - y0)

    inside = [b for b in prompts.exemplars if min(b.x0, b.x1) >= x0 and max(b.x0, b.x1) <= x1 and min(b.y0, b.y1) >= y0 and max(b.y0, b.y1) <= y1]
    return Prompts(boxes=tuple(box(b) for b in prompts.boxes), points=tuple(Point(p.x - x0, p.y - y0, p.positive) for p in prompts.points),
                   exemplars=tuple(box(b) for b in inside), text=prompts.text)


class PlaneSource:
    """A 2D grey or RGB(A) image of any array type, read a window at a time as SAM3's RGB uint8, with one
    intensity range for the whole image (from a coarser pyramid level or a strided sample)."""

    def __init__(self, data: Any, *, rgb: bool = False, coarse: Any = None) -> None:
        self.data, self.rgb = data, rgb
        shape = tuple(int(v) for v in np.shape(data))
        if len(shape) - (1 if rgb else 0) != 2:
            raise Sam3Error(f"tiled SAM3 works on 2D images, not an array of shape {shape}: choose a 2D image or one slice")
        self.shape = shape[:2]
        self.limits = None if np.dtype(data.dtype) == np.uint8 else intensity_limits(np.asarray(self._sample(coarse)))

    def _sample(self, coarse: Any) -> Any:
        if coarse is not None:
            return coarse
        step = max(1, math.ceil(math.sqrt(self.shape[0] * self.shape[1] / LIMIT_SAMPLES)))
        return self.data[::step, ::step]

    def read(self, window: Window) -> np.ndarray:
        y0, y1, x0, x1 = window
        return to_rgb_uint8(np.asarray(self.data[y0:y1, x0:x1]), self.limits)


def new_canvas(shape: tuple[int, int], in_memory_pixels: int = IN_MEMORY_PIXELS) -> Any:
    """An empty uint32 label image: numpy up to `in_memory_pixels`, else a chunked in-memory zarr array that
    stores only the chunks painted (a 60,000 x 60,000 slide with few objects stays small)."""
    if shape[0] * shape[1] <= in_memory_pixels:
        return np.zeros(shape, dtype=np.uint32)
    import zarr

    return zarr.create_array(store=zarr.storage.MemoryStore(), shape=shape, chunks=(1024, 1024), dtype="uint32", fill_value=0)


@dataclass
class TiledDetections:
    """What a scan found, tile by tile in image coordinates; labels at any score threshold without the model."""

    shape: tuple[int, int]
    tiles: list[Detections] = field(default_factory=list)

    def labels(self, score_threshold: float) -> Any:
        return self.scored_labels(score_threshold)[0]

    def scored_labels(self, score_threshold: float) -> tuple[Any, dict[int, float]]:
        """A new label image of every tile's instances at `score_threshold`, and {label: score}."""
        canvas, scores = new_canvas(self.shape), {}
        for found in self.tiles:
            paint_instances(canvas, found.instances, score_threshold, scores)
        return canvas, scores

    @property
    def instances(self) -> int:
        return sum(len(found.instances) for found in self.tiles)
