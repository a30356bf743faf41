"""Rendering of the synthetic EM image: textured cytoplasm, dark membranes, mitochondria, postsynaptic
densities and vesicle clouds, then blur and noise (see `synthetic_em` for the generated volumes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Style:
    """What varies from one generated volume to the next, as it varies between real EM data sets.

    Cell brightness and graininess are drawn per cell and independent of the cell's role, so only the
    synapse itself (vesicles on the pre side, the density on the post side) tells pre from post."""

    membrane_sigma: float  # in-plane voxels: thickness of the dark band at cell boundaries
    membrane_darkness: float  # 0..1: how far membranes are pulled to the dark level (contrast)
    cytoplasm: tuple[float, float]  # range of per-cell brightness
    grain: float  # largest per-cell grain amplitude
    psd_darkness: float
    psd_thickness: float  # in-plane voxels from the contact into the post cell
    vesicles: tuple[int, int]  # vesicles per synapse (low, high)
    vesicle_size: tuple[float, float]  # in-plane radius range, voxels
    blur: float  # in-plane sigma of the imaging blur, voxels
    noise: float  # standard deviation of the added noise (image in 0..1)

    @classmethod
    def draw(cls, rng: np.random.Generator, noise: float | None = None) -> Style:
        low = rng.uniform(0.45, 0.65)
        return cls(
            membrane_sigma=float(rng.uniform(0.8, 1.6)),
            membrane_darkness=float(rng.uniform(0.6, 0.9)),
            cytoplasm=(float(low), float(low + rng.uniform(0.15, 0.3))),
            grain=float(rng.uniform(0.04, 0.18)),
            psd_darkness=float(rng.uniform(0.85, 1.0)),
            psd_thickness=float(rng.uniform(3.0, 4.5)),
            vesicles=(int(rng.integers(20, 30)), int(rng.integers(35, 55))),
            vesicle_size=(float(rng.uniform(1.2, 1.5)), float(rng.uniform(1.6, 2.1))),
            blur=float(rng.uniform(0.6, 1.2)),
            noise=float(rng.uniform(0.02, 0.07)) if noise is None else float(noise),
        )

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------- helpers
def _blur(volume: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Separable Gaussian blur with per-axis sigma (voxels), as a weighted sum of shifted views."""
    out = volume.astype(np.float32)
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0 or out.shape[axis] < 2:
            continue
        radius = min(max(1, int(np.ceil(3 * sigma))), out.shape[axis] - 1)
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        taps = (taps / taps.sum()).astype(np.float32)
        widths = [(0, 0)] * out.ndim
        widths[axis] = (radius, radius)
        padded = np.pad(out, widths, mode="reflect")
        length = out.shape[axis]
        result = np.zeros_like(out)
        for offset, weight in enumerate(taps):
            view = [slice(None)] * out.ndim
            view[axis] = slice(offset, offset + length)
            result += weight * padded[tuple(view)]
        out = result
    return out


def _local_box(centre: Sequence[float], radius: Sequence[float], shape: Sequence[int]):
    """Slices of the box around `centre` (clipped to the volume) and its voxel coordinates."""
    lo = [max(0, int(np.floor(c - r))) for c, r in zip(centre, radius, strict=True)]
    hi = [min(n, int(np.ceil(c + r)) + 1) for c, r, n in zip(centre, radius, shape, strict=True)]
    if any(b <= a for a, b in zip(lo, hi, strict=True)):
        return None
    slices = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    grids = np.meshgrid(
        *[np.arange(a, b, dtype=np.float32) for a, b in zip(lo, hi, strict=True)], indexing="ij"
    )
    return slices, grids


# ------------------------------------------------------------------------------------- rendering
def _render(
    rng: np.random.Generator,
    seg: np.ndarray,
    contact_distance: np.ndarray,
    synapses: list[dict],
    n_cells: int,
    style: Style,
) -> np.ndarray:
    shape = seg.shape
    # brightness and grain per cell, whatever its role: the synapse is the only pre/post cue
    cell_level = rng.uniform(*style.cytoplasm, n_cells + 1).astype(np.float32)
    texture = _blur(rng.standard_normal(shape).astype(np.float32), (0.6, 2.0, 2.0))
    texture /= max(float(texture.std()), 1e-6)
    grain = _blur(rng.standard_normal(shape).astype(np.float32), (0.4, 0.7, 0.7))
    grain /= max(float(grain.std()), 1e-6)
    amplitude = rng.uniform(0.0, style.grain, n_cells + 1).astype(np.float32)[seg]
    signal = cell_level[seg] * (1.0 + 0.05 * texture + amplitude * grain)
    # darkness in [0, 1]: how far each voxel is pulled towards the dark level
    darkness = style.membrane_darkness * np.exp(-0.5 * (contact_distance / style.membrane_sigma) ** 2)

    def paint(region: tuple[slice, ...], weight: np.ndarray) -> None:
        darkness[region] = np.maximum(darkness[region], weight)

    for _ in range(max(1, n_cells // 3)):  # mitochondria: elongated dark blobs inside cells
        tries = rng.integers(0, shape, size=(50, 3))
        inside_cells = tries[contact_distance[tuple(tries.T)] > 5.0]
        if len(inside_cells) == 0:
            continue
        centre = inside_cells[0].astype(np.float32)
        cell = seg[tuple(centre.astype(int))]
        axes = np.array([rng.uniform(1.0, 2.5), rng.uniform(5.0, 9.0), rng.uniform(2.5, 4.0)], np.float32)
        angle = rng.uniform(0, np.pi)
        box = _local_box(centre, [axes[0], axes[1], axes[1]], shape)
        if box is None:
            continue
        region, (gz, gy, gx) = box
        dy, dx = gy - centre[1], gx - centre[2]
        u = (dy * np.cos(angle) + dx * np.sin(angle)) / axes[1]
        v = (-dy * np.sin(angle) + dx * np.cos(angle)) / axes[2]
        radial = ((gz - centre[0]) / axes[0]) ** 2 + u**2 + v**2
        inside = (radial < 1.0) & (seg[region] == cell) & (contact_distance[region] > 1.5)
        cristae = 0.12 * np.sin(3.0 * u * np.pi)
        paint(region, np.where(inside, 0.42 + cristae, 0.0).astype(np.float32))

    for synapse in synapses:
        centre = np.asarray(synapse["point"], np.float32)
        normal = synapse["normal"].astype(np.float32)  # scaled metric, towards the post cell
        inplane = np.array([0.0, normal[1], normal[2]], np.float32)
        inplane /= max(float(np.linalg.norm(inplane)), 1e-6)
        tangent = np.array([0.0, -inplane[2], inplane[1]], np.float32)
        step = np.array([normal[0] / 10.0, normal[1], normal[2]], np.float32)  # voxels per in-plane unit
        # postsynaptic density: a dark, thick band on the post side of the contact
        radius = rng.uniform(6.0, 10.0)
        box = _local_box(centre, [2.0, radius + 3, radius + 3], shape)
        if box is not None:
            region, (gz, gy, gx) = box
            along = (gy - centre[1]) * tangent[1] + (gx - centre[2]) * tangent[2]
            band = (
                (seg[region] == synapse["post_id"])
                & (contact_distance[region] < style.psd_thickness * rng.uniform(0.85, 1.15))
                & (((gz - centre[0]) / 2.0) ** 2 + (along / radius) ** 2 < 1.0)
            )
            paint(region, np.where(band, style.psd_darkness, 0.0).astype(np.float32))
        # vesicle cloud: small dark blobs on the pre side
        for _ in range(int(rng.integers(style.vesicles[0], style.vesicles[1] + 1))):
            depth = rng.uniform(2.5, 10.0)
            spot = (
                centre
                - step * depth
                + tangent * rng.uniform(-radius, radius)
                + np.array([rng.uniform(-1.2, 1.2), 0, 0], np.float32)
            )
            size = rng.uniform(*style.vesicle_size)
            box = _local_box(spot, [1.0, size + 1, size + 1], shape)
            if box is None:
                continue
            region, (gz, gy, gx) = box
            radial = ((gz - spot[0]) / 1.0) ** 2 + ((gy - spot[1]) ** 2 + (gx - spot[2]) ** 2) / size**2
            blob = (seg[region] == synapse["pre_id"]) & (contact_distance[region] > 1.2)
            paint(region, np.where(blob, 0.8 * np.exp(-radial), 0.0).astype(np.float32))

    dark_level = np.float32(0.12)
    image = signal * (1.0 - darkness) + dark_level * darkness
    image = _blur(image, (0.45, style.blur, style.blur))
    image += style.noise * rng.standard_normal(shape).astype(np.float32)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)
