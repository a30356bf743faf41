"""Small previews of dataset pairs for the Dataset tab's table: the image (middle plane of a stack, first
channel) with its mask in magenta, cached by content hash; large pairs get none (never a long read on the GUI
thread)."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtGui import QIcon, QImage, QPixmap

THUMBNAIL_PX = 48
MAX_VOXELS = 4_000_000  # pairs above this many image voxels get no thumbnail


class PairThumbnails:
    """`icon(project, pair)`: a QIcon (or None), built once per image and mask content."""

    def __init__(self) -> None:
        self._icons: dict[tuple[str, str], QIcon | None] = {}

    def icon(self, project, pair) -> QIcon | None:
        key = (pair.image_sha256, pair.mask_sha256)
        if key not in self._icons:
            self._icons[key] = self._build(project, pair) if math.prod(pair.image_shape) <= MAX_VOXELS else None
        return self._icons[key]

    @staticmethod
    def _build(project, pair) -> QIcon | None:
        from ..project.image_io import read_tiff

        try:
            image = read_tiff(project.layout.absolute(pair.image_path))
            mask = read_tiff(project.layout.absolute(pair.mask_path))
        except (OSError, ValueError):
            return None
        return QIcon(QPixmap.fromImage(_qimage(thumbnail(image, mask, pair.image_channels is not None))))


def _plane(array: np.ndarray, spatial: int) -> np.ndarray:
    """The middle plane of the last `spatial` axes' leading axis (3D), as (y, x)."""
    return array[array.shape[0] // 2] if spatial == 3 else array


def thumbnail(image: np.ndarray, mask: np.ndarray, has_channels: bool, size: int = THUMBNAIL_PX) -> np.ndarray:
    """(size, size, 3) uint8: the image's first channel stretched 1-99 %, the mask's labelled pixels in magenta."""
    grey = np.asarray(image[0] if has_channels else image, dtype=np.float32)
    labels = np.asarray(mask if mask.ndim == grey.ndim else mask.max(axis=0))
    grey, labels = _plane(grey, grey.ndim), _plane(labels, labels.ndim)
    step = max(1, math.ceil(max(grey.shape) / size))
    grey, labels = grey[::step, ::step], labels[::step, ::step] > 0
    low, high = np.percentile(grey, (1, 99)) if grey.size else (0.0, 1.0)
    grey = np.clip((grey - low) / max(float(high - low), 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[labels] = 0.5 * rgb[labels] + 0.5 * np.array([1.0, 0.0, 1.0])
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[: rgb.shape[0], : rgb.shape[1]] = rgb[:size, :size]
    return (canvas * 255).astype(np.uint8)


def _qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    return QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format.Format_RGB888).copy()
