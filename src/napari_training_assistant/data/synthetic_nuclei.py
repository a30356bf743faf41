"""Fluorescence-like 2D nuclei with instance ground truth, generated deterministically (sample data)."""

from __future__ import annotations

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
) -> tuple[np.ndarray, np.ndarray]:
    """(image uint16, instance labels uint16): elliptical nuclei with textured intensity, uneven
    background, blur and shot-like noise. Nuclei do not overlap; labels are 1..N."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    labels = np.zeros(shape, np.uint16)
    signal = np.zeros(shape, np.float32)
    placed = 0
    for _ in range(n_nuclei * 20):
        if placed == n_nuclei:
            break
        ry, rx = rng.uniform(*radius_range, size=2)
        cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dy * np.cos(angle) + dx * np.sin(angle)) / ry
        v = (-dy * np.sin(angle) + dx * np.cos(angle)) / rx
        inside = u**2 + v**2 <= 1.0
        grown = u**2 + v**2 <= 1.35  # keep a gap between nuclei
        if (labels[grown] > 0).any():
            continue
        placed += 1
        labels[inside] = placed
        brightness = rng.uniform(0.55, 1.0)
        texture = 1.0 + 0.15 * rng.standard_normal(int(inside.sum())).astype(np.float32)
        signal[inside] = brightness * texture
    image = gaussian_blur(signal, 1.2)
    gradient = 0.08 + 0.06 * (xx / w) + 0.04 * (yy / h)
    image = image + gradient
    image = image + noise * rng.standard_normal(shape).astype(np.float32) * np.sqrt(np.clip(image, 0.01, None))
    image = np.clip(image, 0, None)
    return (image / image.max() * 40000).astype(np.uint16), labels


def nuclei_dataset(count: int, shape: tuple[int, int] = (256, 256), seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` independent (image, labels) pairs."""
    return [make_nuclei(shape, seed=seed + i) for i in range(count)]
