"""napari layer data -> prompts on one 2D plane, and the 2D plane of an image layer to embed.

Works on plain arrays (napari stores (row, col) = (y, x) coordinates, a leading z on stacks), so it is tested
without a viewer. On a stack only prompts on the current slice count; a 2D prompt layer over a stack applies
to whichever slice is shown."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import Sam3Error
from .prompts import Box, FramePrompts, Point, Prompts


def image_plane(data: np.ndarray, *, rgb: bool, slice_index: int | None) -> np.ndarray:
    """The (H, W) or (H, W, C) plane SAM3 embeds: the image itself, or slice `slice_index` of a stack."""
    data = np.asarray(data)
    spatial = data.ndim - (1 if rgb else 0)
    if spatial == 2:
        return data
    if spatial == 3:
        if slice_index is None or not 0 <= slice_index < data.shape[0]:
            raise Sam3Error(f"slice {slice_index} is outside the stack of {data.shape[0]} slices: move the z slider onto the stack")
        return np.asarray(data[slice_index])
    raise Sam3Error(f"SAM3 prompts work on 2D images and 3D stacks, this layer has shape {data.shape}: choose another image layer")


def _on_slice(coords: np.ndarray, spatial_ndim: int, slice_index: int | None) -> bool:
    """True when prompt coordinates (..., y, x) lie on the current slice (2D coordinates always do)."""
    if coords.shape[-1] <= 2 or spatial_ndim == 2 or slice_index is None:
        return True
    return bool(np.all(np.rint(coords[..., -3]) == slice_index))


def boxes_from_shapes(
    shapes: Sequence[np.ndarray],
    *,
    positive: Sequence[bool] | None = None,
    spatial_ndim: int = 2,
    slice_index: int | None = None,
    plane_shape: tuple[int, int] | None = None,
) -> tuple[Box, ...]:
    """Each shape's bounding box in (x, y) pixels, clipped to the plane; shapes on other slices are skipped."""
    boxes = []
    for i, vertices in enumerate(shapes):
        vertices = np.asarray(vertices, dtype=float)
        if vertices.ndim != 2 or vertices.shape[0] == 0 or not _on_slice(vertices, spatial_ndim, slice_index):
            continue
        (y0, x0), (y1, x1) = vertices[:, -2:].min(axis=0), vertices[:, -2:].max(axis=0)
        if plane_shape is not None:
            y0, y1 = np.clip([y0, y1], 0, plane_shape[0] - 1)
            x0, x1 = np.clip([x0, x1], 0, plane_shape[1] - 1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue  # a click, not a box
        boxes.append(Box(float(x0), float(y0), float(x1), float(y1), bool(positive[i]) if positive is not None else True))
    return tuple(boxes)


def points_from_layer(
    coords: np.ndarray,
    *,
    positive: Sequence[bool] | None = None,
    spatial_ndim: int = 2,
    slice_index: int | None = None,
) -> tuple[Point, ...]:
    """Points on the current slice as (x, y) pixels with their positive/negative flag."""
    coords = np.asarray(coords, dtype=float).reshape(-1, np.asarray(coords).shape[-1] if np.asarray(coords).size else 2)
    points = []
    for i, row in enumerate(coords):
        if _on_slice(row[None], spatial_ndim, slice_index):
            points.append(Point(float(row[-1]), float(row[-2]), bool(positive[i]) if positive is not None else True))
    return tuple(points)


def prompted_slices(coords: Sequence[np.ndarray]) -> list[int]:
    """The z indices that carry prompts, from point rows or shape vertices of a stack's prompt layer."""
    found = set()
    for item in coords:
        item = np.asarray(item, dtype=float)
        if item.shape[-1] >= 3 and item.size:
            found.update(int(z) for z in np.unique(np.rint(item.reshape(-1, item.shape[-1])[:, -3])))
    return sorted(found)


def prompts_for_mode(
    mode: str,
    data,
    *,
    positive: Sequence[bool],
    spatial_ndim: int,
    slice_index: int | None,
    plane_shape: tuple[int, int],
    text: str | None = None,
) -> Prompts:
    """A 2D mode's prompt layer data -> `Prompts` on the current plane: boxes (positive only) for `2d_box`,
    exemplar boxes (both polarities) for `2d_exemplar`, `text` with optional exemplars for `2d_text`, points
    for the point modes."""
    if mode in ("2d_box", "2d_exemplar", "2d_text"):
        boxes = boxes_from_shapes(data, positive=positive, spatial_ndim=spatial_ndim, slice_index=slice_index, plane_shape=plane_shape)
        if mode == "2d_text":
            return Prompts(exemplars=boxes, text=text if text is not None else "")
        return Prompts(exemplars=boxes) if mode == "2d_exemplar" else Prompts(boxes=tuple(b for b in boxes if b.positive))
    return Prompts(points=points_from_layer(data, positive=positive, spatial_ndim=spatial_ndim, slice_index=slice_index))


def frame_prompts(coords: np.ndarray, *, positive: Sequence[bool]) -> FramePrompts:
    """3D prompt points (z, y, x) -> the points of each prompted slice."""
    return FramePrompts(
        {z: Prompts(points=points_from_layer(coords, positive=positive, spatial_ndim=3, slice_index=z)) for z in prompted_slices([coords])}
    )
