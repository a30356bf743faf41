"""Tiled SAM3 on large images: the grid, windows around prompts, one contrast for all tiles, and a scan whose
objects crossing tile borders come out whole with unique ids (a stand-in backend that finds bright blobs, so
the expected answer is known), then the same path through the tiny random SAM3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from napari_training_assistant.annotate.annotator import Annotator
from napari_training_assistant.annotate.detections import Detections, Instance
from napari_training_assistant.annotate.errors import Sam3Error
from napari_training_assistant.annotate.model_folder import ModelFolder
from napari_training_assistant.annotate.prompts import Box, Point, Prompts
from napari_training_assistant.annotate.tiling import (
    PlaneSource,
    TileGrid,
    model_input_size,
    new_canvas,
    shift_prompts,
)


def test_tiles_cover_the_image_with_overlap_and_end_on_its_edge():
    grid = TileGrid.for_model((1000, 2500), model_size=400)
    windows = grid.windows()
    assert grid.overlap == 100 and grid.is_large
    covered = np.zeros(grid.shape, dtype=int)
    for y0, y1, x0, x1 in windows:
        assert (y1 - y0, x1 - x0) == (400, 400)
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    xs = sorted({w[2] for w in windows})
    assert xs[0] == 0 and xs[-1] == 2100 and all(b - a <= 300 for a, b in zip(xs, xs[1:], strict=False))
    assert grid.covering((0, 10, 0, 10)) == [windows[0]]
    assert not TileGrid.for_model((500, 590), model_size=400).is_large  # up to 1.5 tiles: embedded whole, as before


def test_a_tile_smaller_than_the_model_input_is_refused_in_one_line():
    with pytest.raises(Sam3Error, match="tile size 256 is smaller than the model's input of 1008 px") as info:
        TileGrid.for_model((5000, 5000), 1008, tile=256)
    assert "\n" not in str(info.value)
    assert TileGrid.for_model((5000, 5000), 1008, tile=0).tile == 1008


def test_boxes_and_points_get_one_window_centred_on_them():
    grid = TileGrid.for_model((3000, 3000), 500)
    prompts = Prompts(boxes=(Box(1000, 1200, 1100, 1300),), points=(Point(1050, 1250),))
    y0, y1, x0, x1 = grid.around(prompts)
    assert (y1 - y0, x1 - x0) == (500, 500) and y0 <= 1200 and y1 >= 1300 and x0 <= 1000 and x1 >= 1100
    assert grid.around(Prompts(points=(Point(2990, 5),))) == (0, 500, 2500, 3000)  # kept inside the image
    wide = grid.around(Prompts(points=(Point(100, 100), Point(1500, 100))))
    assert wide[3] - wide[2] >= 1400  # grown to hold every prompt
    local = shift_prompts(prompts, (y0, y1, x0, x1))
    assert local.boxes[0].x0 == 1000 - x0 and local.points[0].y == 1250 - y0


def test_exemplars_only_follow_into_the_windows_that_hold_them():
    prompts = Prompts(text="cell", exemplars=(Box(10, 10, 20, 20),))
    assert shift_prompts(prompts, (0, 100, 0, 100)).exemplars and not shift_prompts(prompts, (0, 100, 50, 150)).exemplars
    assert shift_prompts(prompts, (0, 100, 50, 150)).text == "cell"


def test_one_contrast_for_the_whole_image_from_a_dask_array_or_a_coarse_level():
    da = pytest.importorskip("dask.array")
    image = np.linspace(0, 60000, 800 * 800, dtype=np.float32).reshape(800, 800).astype(np.uint16)
    source = PlaneSource(da.from_array(image, chunks=200))
    dark, bright = source.read((0, 100, 0, 100)), source.read((700, 800, 700, 800))
    assert dark.dtype == np.uint8 and dark.shape == (100, 100, 3) and dark.max() < 40 and bright.min() > 210
    coarse = PlaneSource(image, coarse=image[::8, ::8])
    assert coarse.limits == pytest.approx(source.limits, abs=600)  # 1 % of the range
    with pytest.raises(Sam3Error, match="2D images"):
        PlaneSource(np.zeros((4, 50, 50)))


def test_model_input_size_is_read_from_the_folder(tiny_sam3_folder, tmp_path):
    assert model_input_size(tiny_sam3_folder) == 224
    assert model_input_size(tmp_path) == 1008


def test_a_huge_canvas_only_stores_what_is_painted():
    canvas = new_canvas((60000, 60000))
    canvas[30000:30010, 30000:30010] = 7
    assert canvas.shape == (60000, 60000) and int(canvas[30005, 30005]) == 7
    assert isinstance(new_canvas((100, 100)), np.ndarray)


# ------------------------------------------------------------------------------------------------ scans
def blob_image(seed: int, shape=(900, 1300), count=30) -> tuple[np.ndarray, int]:
    """Bright discs (radius 12-30) at random places, many across tile borders; returns (image, discs)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, dtype=np.uint8)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    placed = 0
    for _ in range(count * 20):
        cy, cx, r = rng.integers(40, shape[0] - 40), rng.integers(40, shape[1] - 40), rng.integers(12, 30)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        grown = (yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 4) ** 2
        if not image[grown].any():
            image[disc] = 200
            placed += 1
        if placed == count:
            break
    return image, placed


class BlobBackend:
    """Finds every bright connected blob of the tile it was given (cut where the tile ends), score 0.9."""

    name, device = "blobs", "cpu"

    def __init__(self):
        self.embedded = []

    def set_image(self, image, key):
        self.image, _ = image[..., 0] > 100, self.embedded.append(key)
        return True

    def detect(self, prompts, threshold=0.5):
        components, count = ndimage.label(self.image)
        found = [Instance.from_full_mask(0.9, components == i) for i in range(1, count + 1)]
        return Detections(self.image.shape, found)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_scan_finds_each_object_once_with_objects_across_tile_borders_merged(seed):
    image, discs = blob_image(seed)
    backend = BlobBackend()
    annotator = Annotator(image_loader=lambda folder: backend)
    folder = ModelFolder(Path("."), "transformers", Path("model.safetensors"), "cpu")
    grid = TileGrid.for_model(image.shape, 256)
    seen = []
    found = annotator.scan(folder, PlaneSource(image), "img", grid.windows(), Prompts(text="blob"), on_tile=lambda i, d: seen.append(i))
    labels = found.labels(0.5)
    truth, _ = ndimage.label(image > 100)
    assert seen == list(range(len(grid.windows()))) and len(backend.embedded) == len(grid.windows())
    assert len(np.unique(labels)) - 1 == discs  # unique ids, one per disc
    for disc in range(1, discs + 1):
        values = np.unique(labels[truth == disc])
        assert len(values) == 1 and values[0] > 0  # each disc whole, in one object
    assert found.labels(0.95).max() == 0  # re-thresholded without a model


def test_a_scan_stops_between_tiles_when_cancelled():
    image, _ = blob_image(4)
    backend = BlobBackend()
    annotator = Annotator(image_loader=lambda folder: backend)
    folder = ModelFolder(Path("."), "transformers", Path("model.safetensors"), "cpu")
    cancel = type("Flag", (), {"cancelled": False})()
    windows = TileGrid.for_model(image.shape, 256).windows()
    found = annotator.scan(folder, PlaneSource(image), "img", windows, Prompts(text="blob"), cancel=cancel,
                           on_tile=lambda i, d: setattr(cancel, "cancelled", i == 1))
    assert len(found.tiles) == 2 < len(windows)


def test_a_scan_through_the_tiny_sam3(tiny_sam3_folder):
    pytest.importorskip("transformers")
    from napari_training_assistant.annotate.model_folder import validate_model_folder

    folder = validate_model_folder(tiny_sam3_folder, "2d", "cpu")
    image = np.random.default_rng(0).integers(0, 4000, (500, 400)).astype(np.uint16)
    grid = TileGrid.for_model(image.shape, model_input_size(tiny_sam3_folder))
    found = Annotator().scan(folder, PlaneSource(image), "img", grid.windows(), Prompts(text="nucleus"))
    labels = found.labels(0.05)
    assert len(found.tiles) == len(grid.windows()) == 9 and labels.shape == (500, 400)
    assert all(item.seen in grid.windows() for tile in found.tiles for item in tile.instances)
