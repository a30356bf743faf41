"""Rendering of the synthetic EM image: textured cytoplasm, dark membranes, mitochondria, postsynaptic
densities and vesicle clouds, then blur and noise (see `synthetic_em` for the generated volumes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MEMBRANE_SIGMA = 1.1  # in-plane voxels; dark band about 3 voxels wide


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
    noise: float,
    roles: dict[int, str],
) -> np.ndarray:
    shape = seg.shape
    # axons (presynaptic type) have darker, grainy, vesicle-rich cytoplasm; dendrites are lighter and
    # smoother, as in EM of neuropil: the cue a network uses to tell the pre from the post side
    is_axon = np.zeros(n_cells + 1, bool)
    is_axon[[cell for cell, role in roles.items() if role == "axon"]] = True
    cell_level = np.where(is_axon, rng.uniform(0.52, 0.64, n_cells + 1), rng.uniform(0.72, 0.86, n_cells + 1)).astype(np.float32)
    texture = _blur(rng.standard_normal(shape).astype(np.float32), (0.6, 2.0, 2.0))
    texture /= max(float(texture.std()), 1e-6)
    grain = _blur(rng.standard_normal(shape).astype(np.float32), (0.4, 0.7, 0.7))
    grain /= max(float(grain.std()), 1e-6)
    amplitude = np.where(is_axon, 0.16, 0.0).astype(np.float32)[seg]
    signal = cell_level[seg] * (1.0 + 0.05 * texture + amplitude * grain)
    # darkness in [0, 1]: how far each voxel is pulled towards the dark level
    darkness = 0.85 * np.exp(-0.5 * (contact_distance / _MEMBRANE_SIGMA) ** 2)

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
        radius = rng.uniform(5.0, 8.0)
        box = _local_box(centre, [1.6, radius + 3, radius + 3], shape)
        if box is not None:
            region, (gz, gy, gx) = box
            along = (gy - centre[1]) * tangent[1] + (gx - centre[2]) * tangent[2]
            band = (
                (seg[region] == synapse["post_id"])
                & (contact_distance[region] < rng.uniform(2.5, 3.5))
                & (((gz - centre[0]) / 1.6) ** 2 + (along / radius) ** 2 < 1.0)
            )
            paint(region, np.where(band, 0.9, 0.0).astype(np.float32))
        # vesicle cloud: small dark blobs on the pre side
        for _ in range(int(rng.integers(10, 18))):
            depth = rng.uniform(2.5, 9.0)
            spot = (
                centre
                - step * depth
                + tangent * rng.uniform(-radius, radius)
                + np.array([rng.uniform(-1.5, 1.5), 0, 0], np.float32)
            )
            size = rng.uniform(1.2, 1.9)
            box = _local_box(spot, [0.8, size + 1, size + 1], shape)
            if box is None:
                continue
            region, (gz, gy, gx) = box
            radial = ((gz - spot[0]) / 0.8) ** 2 + ((gy - spot[1]) ** 2 + (gx - spot[2]) ** 2) / size**2
            blob = (seg[region] == synapse["pre_id"]) & (contact_distance[region] > 1.2)
            paint(region, np.where(blob, 0.7 * np.exp(-radial), 0.0).astype(np.float32))

    dark_level = np.float32(0.12)
    image = signal * (1.0 - darkness) + dark_level * darkness
    image = _blur(image, (0.45, 0.9, 0.9))
    image += noise * rng.standard_normal(shape).astype(np.float32)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)
