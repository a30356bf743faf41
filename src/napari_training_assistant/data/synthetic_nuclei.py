"""Fluorescence-like 2D nuclei with instance ground truth, generated deterministically (sample data)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflected borders (numpy only)."""
    kernel = _gaussian_kernel(sigma)
    pad = len(kernel) // 2
    out = image.astype(np.float32)
    for axis in range(out.ndim):
        padded = np.pad(out, [(pad, pad) if a == axis else (0, 0) for a in range(out.ndim)], mode="reflect")
        out = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="valid"), axis, padded)
    return out


def make_nuclei(
    shape: tuple[int, int] = (256, 256),
    n_nuclei: int = 24,
    radius_range: tuple[float, float] = (7.0, 14.0),
    noise: float = 0.06,
    seed: int = 0,
    touching: float = 0.0,
    brightness_range: tuple[float, float] = (0.55, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """(image uint16, instance labels uint16): elliptical nuclei with textured intensity, uneven
    background, blur and shot-like noise; labels are 1..N.

    `touching`: the fraction of nuclei placed against an earlier one (overlapping it slightly; the shared
    pixels go to the nucleus whose centre is nearer in its own shape, with a faint darker seam), the
    clusters a binary mask merges into one object. Other nuclei keep a gap to every neighbour."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    labels = np.zeros(shape, np.uint16)
    signal = np.zeros(shape, np.float32)
    owner_distance = np.full(shape, np.inf, np.float32)
    centres: list[tuple[float, float, float]] = []  # (cy, cx, mean radius) per placed nucleus
    placed = 0
    for _ in range(n_nuclei * 20):
        if placed == n_nuclei:
            break
        ry, rx = rng.uniform(*radius_range, size=2)
        partner = int(rng.integers(placed)) if touching > 0 and placed and rng.random() < touching else None
        if partner is None:
            cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
        else:
            py, px, pr = centres[partner]
            angle_to = rng.uniform(0, 2 * np.pi)
            reach = (pr + (ry + rx) / 2) * rng.uniform(0.72, 0.88)
            cy, cx = py + reach * np.sin(angle_to), px + reach * np.cos(angle_to)
            if not (ry <= cy <= h - ry and rx <= cx <= w - rx):
                continue
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dy * np.cos(angle) + dx * np.sin(angle)) / ry
        v = (-dy * np.sin(angle) + dx * np.cos(angle)) / rx
        distance = u**2 + v**2
        grown = distance <= 1.35  # keep a gap to every nucleus but the partner
        neighbours = labels[grown]
        if ((neighbours > 0) & (neighbours != (partner or -1) + 1)).any():
            continue
        placed += 1
        take = (distance <= 1.0) & (distance < owner_distance)
        labels[take] = placed
        owner_distance[take] = distance[take]
        centres.append((cy, cx, (ry + rx) / 2))
        brightness = rng.uniform(*brightness_range)
        texture = 1.0 + 0.15 * rng.standard_normal(int(take.sum())).astype(np.float32)
        signal[take] = brightness * texture
    if touching > 0:
        signal[_seams(labels)] *= 0.75
    image = gaussian_blur(signal, 1.2)
    gradient = 0.08 + 0.06 * (xx / w) + 0.04 * (yy / h)
    image = image + gradient
    image = image + noise * rng.standard_normal(shape).astype(np.float32) * np.sqrt(np.clip(image, 0.01, None))
    image = np.clip(image, 0, None)
    return (image / image.max() * 40000).astype(np.uint16), labels


def _seams(labels: np.ndarray) -> np.ndarray:
    """Pixels of a nucleus with a 4-neighbour in another nucleus (not background)."""
    seam = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        a, b = np.swapaxes(labels, 0, axis)[:-1], np.swapaxes(labels, 0, axis)[1:]
        meet = (a > 0) & (b > 0) & (a != b)
        np.swapaxes(seam, 0, axis)[:-1] |= meet
        np.swapaxes(seam, 0, axis)[1:] |= meet
    return seam


def nuclei_dataset(count: int, shape: tuple[int, int] = (256, 256), seed: int = 0, **options: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` independent (image, labels) pairs (`options`: those of `make_nuclei`)."""
    return [make_nuclei(shape, seed=seed + i, **options) for i in range(count)]
