"""EM-like 3D volumes with synapses between "axon" and "dendrite" cells, generated deterministically.

Sample data for point-windowed 3D training of synapse partner assignment: a 2-channel (pre, post)
multilabel output. Voxels are anisotropic like serial-section EM (resolution [40, 4, 4] nm, z, y, x).

* cells are Voronoi-like regions (nearest seed point, z distances weighted by `anisotropy`) over a
  gently warped grid; every voxel belongs to a cell (membranes included);
* the image has textured cytoplasm (brightness and grain drawn per cell, independent of its role), dark
  membranes at cell boundaries, a few dark mitochondria, dark vesicle clouds on the presynaptic side of
  each synapse and a dark, thickened postsynaptic density (PSD) on the postsynaptic side; then blur and
  noise;
* what real data sets vary varies per volume (`Style`, drawn from the seed): membrane thickness and
  contrast, cytoplasm brightness, grain, PSD darkness and thickness, vesicle count and size, blur, noise,
  the number of cells and how much their boundaries bend; synapse orientation is random in-plane;
* each synapse is a line from a point inside an axon cell (start, presynaptic) across the contact to a
  point inside a dendrite cell (end, postsynaptic); its midpoint is the synapse point on the contact.

`python -m napari_training_assistant.data.synthetic_em OUT_DIR [--shape Z Y X] [--seed S]` writes a
ready-to-use project folder (zarr layers, csv points, regions.json and spec.yaml).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geometry import Box
from .point_regimes import PARTNER_WINDOW, partner_regime
from .synthetic_em_render import Style, _render

RESOLUTION: tuple[int, int, int] = (40, 4, 4)
AXON = "axon"
DENDRITE = "dendrite"
DEFAULT_SHAPE: tuple[int, int, int] = (32, 128, 128)
_DEFAULT_CELLS = 32
_DEFAULT_SYNAPSES = 48
_LINE_HALF_LENGTH = (3.5, 6.0)  # in-plane voxels on each side of the contact


@dataclass(frozen=True)
class SyntheticEM:
    """One generated volume, all arrays in (z, y, x) order."""

    image: np.ndarray  # uint8
    segmentation: np.ndarray  # uint32 cell ids 1..N, every voxel labelled
    label0: np.ndarray  # uint8, 1 on presynaptic cells that take part in synapses
    label1: np.ndarray  # uint8, 1 on postsynaptic cells that take part in synapses
    synapses: list[dict]  # {id, start, end, point, pre_id, post_id}; start/end/point are (z, y, x) floats
    regions: list[dict]  # {"start": [z, y, x], "stop": [z, y, x], "tags": ["train"] | ["val"]}
    roles: dict[int, str] = field(default_factory=dict)  # cell id -> "axon" | "dendrite"
    resolution: tuple[int, int, int] = RESOLUTION
    seed: int = 0
    style: dict = field(default_factory=dict)  # the drawn `Style` and cell-shape parameters

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape)

    @property
    def axon_ids(self) -> list[int]:
        return sorted(cell for cell, role in self.roles.items() if role == AXON)

    @property
    def dendrite_ids(self) -> list[int]:
        return sorted(cell for cell, role in self.roles.items() if role == DENDRITE)

    @property
    def points(self) -> np.ndarray:
        """(n, 3) synapse midpoints."""
        return np.array([s["point"] for s in self.synapses], dtype=np.float64).reshape(-1, 3)

    @property
    def lines(self) -> np.ndarray:
        """(n, 2, 3) synapse lines, start (presynaptic) then end (postsynaptic)."""
        return np.array([[s["start"], s["end"]] for s in self.synapses], dtype=np.float64).reshape(-1, 2, 3)

    def region_boxes(self) -> list[Box]:
        return [Box(tuple(r["start"]), tuple(r["stop"])) for r in self.regions]


# ----------------------------------------------------------------------------------------- helpers
def _scaled_counts(shape: Sequence[int], n_cells: int | None, n_synapses: int | None) -> tuple[int, int]:
    factor = float(np.prod(shape)) / float(np.prod(DEFAULT_SHAPE))
    cells = n_cells if n_cells is not None else max(8, int(round(_DEFAULT_CELLS * factor)))
    synapses = n_synapses if n_synapses is not None else max(4, int(round(_DEFAULT_SYNAPSES * factor)))
    return cells, synapses


def _quadrant_boxes(shape: Sequence[int]) -> list[Box]:
    """The volume split in-plane into 4 boxes (full z): (y low, x low), (y low, x high), ..."""
    z, y, x = shape
    ys, xs = [(0, y // 2), (y // 2, y)], [(0, x // 2), (x // 2, x)]
    return [Box((0, y0, x0), (z, y1, x1)) for y0, y1 in ys for x0, x1 in xs]


def _place_seeds(rng: np.random.Generator, shape: Sequence[int], count: int, scale: np.ndarray) -> np.ndarray:
    """Seed points spread out by best-candidate sampling (in the anisotropic metric)."""
    extent = np.asarray(shape, dtype=np.float64)
    seeds = [rng.uniform(0, 1, 3) * extent]
    for _ in range(count - 1):
        candidates = rng.uniform(0, 1, (16, 3)) * extent
        gaps = (((candidates[:, None, :] - np.asarray(seeds)[None]) * scale) ** 2).sum(-1).min(1)
        seeds.append(candidates[int(np.argmax(gaps))])
    return np.asarray(seeds)


def _warped_grid(rng: np.random.Generator, shape: Sequence[int], bend: float = 1.0) -> tuple[np.ndarray, ...]:
    """(z, y, x) coordinates with smooth in-plane displacements so cell boundaries bend a little."""
    z = np.arange(shape[0], dtype=np.float32)[:, None, None]
    y = np.arange(shape[1], dtype=np.float32)[None, :, None]
    x = np.arange(shape[2], dtype=np.float32)[None, None, :]
    warped = []
    for base in (y, x):
        shift = np.zeros(tuple(shape), np.float32)
        for _ in range(3):
            direction = rng.normal(size=3) * np.array([0.3, 1.0, 1.0])
            direction /= np.linalg.norm(direction)
            wavelength = rng.uniform(40, 90)
            phase = rng.uniform(0, 2 * np.pi)
            k = (2 * np.pi / wavelength) * direction.astype(np.float32)
            shift += np.float32(bend * rng.uniform(0.8, 1.6)) * np.sin(k[0] * z * 4 + k[1] * y + k[2] * x + phase)
        warped.append(base + shift)
    return z, warped[0], warped[1]


def _voronoi(coords: tuple[np.ndarray, ...], seeds: np.ndarray, scale: np.ndarray, chunk=(8, 32, 32)):
    """Nearest and second-nearest seed per voxel with their squared distances (scaled metric).

    Vectorised per chunk of voxels; a chunk only looks at seeds that can be first or second there:
    a seed farther from the chunk's bounding box than the second-smallest farthest-point distance of
    any seed is neither."""
    z, y, x = coords
    shape = np.broadcast_shapes(z.shape, y.shape, x.shape)
    z, y, x = (np.broadcast_to(c, shape) for c in coords)
    best = np.empty(shape, np.float32)
    second = np.empty(shape, np.float32)
    best_id = np.empty(shape, np.int32)
    second_id = np.empty(shape, np.int32)
    scaled_seeds = (seeds * scale).astype(np.float32)
    scale32 = scale.astype(np.float32)
    for z0 in range(0, shape[0], chunk[0]):
        for y0 in range(0, shape[1], chunk[1]):
            for x0 in range(0, shape[2], chunk[2]):
                block = (slice(z0, z0 + chunk[0]), slice(y0, y0 + chunk[1]), slice(x0, x0 + chunk[2]))
                points = np.stack([z[block].ravel(), y[block].ravel(), x[block].ravel()], axis=1) * scale32
                lo, hi = points.min(0), points.max(0)
                near = (np.maximum(np.maximum(lo - scaled_seeds, scaled_seeds - hi), 0) ** 2).sum(1)
                far = (np.maximum(np.abs(scaled_seeds - lo), np.abs(scaled_seeds - hi)) ** 2).sum(1)
                bound = np.partition(far, 1)[1]  # at least 2 seeds
                keep = np.flatnonzero(near <= bound)
                near_seeds = scaled_seeds[keep]
                dist = (points[:, 0:1] - near_seeds[:, 0]) ** 2
                dist += (points[:, 1:2] - near_seeds[:, 1]) ** 2
                dist += (points[:, 2:3] - near_seeds[:, 2]) ** 2
                top = np.argpartition(dist, 1, axis=1)[:, :2]
                pair = np.take_along_axis(dist, top, axis=1)
                swap = pair[:, 1] < pair[:, 0]
                top[swap] = top[swap][:, ::-1]
                pair[swap] = pair[swap][:, ::-1]
                size = best[block].shape
                best[block] = pair[:, 0].reshape(size)
                second[block] = pair[:, 1].reshape(size)
                best_id[block] = keep[top[:, 0]].reshape(size)
                second_id[block] = keep[top[:, 1]].reshape(size)
    return best, best_id, second, second_id


def _voxel(point: Sequence[float]) -> tuple[int, ...]:
    return tuple(int(np.round(v)) for v in point)


# -------------------------------------------------------------------------------------- synapses
def _choose_synapses(
    rng: np.random.Generator,
    seg: np.ndarray,
    contact_distance: np.ndarray,
    candidates: np.ndarray,
    pre_post: np.ndarray,
    directions: np.ndarray,
    n_synapses: int,
    min_distance: float,
    min_distance_z: float,
    max_per_pair: int,
) -> list[dict]:
    """Greedy choice of spread-out contact sites, balanced over the 4 quadrants, each checked along its
    line: the presynaptic half lies in the pre cell, the postsynaptic half in the post cell."""
    shape = seg.shape
    quadrants = _quadrant_boxes(shape)
    per_quadrant = [n_synapses // 4 + (1 if q < n_synapses % 4 else 0) for q in range(4)]
    order = rng.permutation(len(candidates))
    quadrant_of = (candidates[:, 1] >= quadrants[3].start[1]) * 2 + (
        candidates[:, 2] >= quadrants[3].start[2]
    )
    in_quadrant = [order[quadrant_of[order] == q] for q in range(4)]
    accepted: list[np.ndarray] = []
    pair_counts: dict[tuple[int, int], int] = {}
    chosen: list[dict] = []
    steps = np.linspace(-1.0, 1.0, 13)
    for q in range(4):
        taken = 0
        for i in in_quadrant[q]:
            if taken == per_quadrant[q]:
                break
            centre = candidates[i].astype(np.float64)
            pre, post = (int(v) for v in pre_post[i])
            if pair_counts.get((pre, post), 0) >= max_per_pair:
                continue
            if accepted:
                others = np.asarray(accepted)
                spread = ((others[:, 0] - centre[0]) / min_distance_z) ** 2 + (
                    (others[:, 1] - centre[1]) ** 2 + (others[:, 2] - centre[2]) ** 2
                ) / min_distance**2
                if spread.min() < 1.0:
                    continue
            half = directions[i] * rng.uniform(*_LINE_HALF_LENGTH)
            start = np.round(centre - half, 3)
            end = np.round(centre + half, 3)
            ends = np.stack([start, end])
            if (np.abs(ends - np.floor(ends) - 0.5) < 0.02).any():
                continue  # no rounding ties: every reader rounds the ends to the same voxels
            if (ends < 0).any() or (np.round(ends) > np.asarray(shape) - 1).any():
                continue
            samples = np.round(centre[None] + steps[:, None] * half[None]).astype(int)
            if (samples < 0).any() or (samples >= np.asarray(shape)).any():
                continue
            cells = seg[tuple(samples.T)]
            if not ((cells[steps <= -0.4] == pre).all() and (cells[steps >= 0.4] == post).all()):
                continue
            if contact_distance[_voxel(start)] < 1.5 or contact_distance[_voxel(end)] < 1.5:
                continue  # both ends clear of the membranes
            accepted.append(centre)
            pair_counts[(pre, post)] = pair_counts.get((pre, post), 0) + 1
            taken += 1
            chosen.append(
                {
                    "start": tuple(float(v) for v in start),
                    "end": tuple(float(v) for v in end),
                    "point": tuple(float(v) for v in (start + end) / 2),
                    "pre_id": pre,
                    "post_id": post,
                    "normal": directions[i] / np.linalg.norm(directions[i]),
                }
            )
    chosen.sort(key=lambda s: s["point"])
    for number, synapse in enumerate(chosen, start=1):
        synapse["id"] = number
    return chosen


# ------------------------------------------------------------------------------------------- API
def _attempt(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    n_cells: int,
    n_synapses: int,
    anisotropy: float,
    min_distance: float,
    min_distance_z: float,
    max_per_pair: int,
    bend: float = 1.0,
):
    scale = np.array([anisotropy, 1.0, 1.0])
    seeds = _place_seeds(rng, shape, n_cells, scale)
    coords = _warped_grid(rng, shape, bend)
    best, best_id, second, second_id = _voronoi(coords, seeds, scale)
    seeds_scaled = seeds * scale
    seed_gap = np.linalg.norm(seeds_scaled[:, None] - seeds_scaled[None], axis=-1)
    np.fill_diagonal(seed_gap, 1.0)
    # distance (in-plane voxel units) to the bisector of the two nearest seeds: distance to the boundary
    contact_distance = (second - best) / (2.0 * seed_gap[best_id, second_id]).astype(np.float32)
    seg = (best_id + 1).astype(np.uint32)

    roles_by_index = np.array([AXON] * (n_cells // 2) + [DENDRITE] * (n_cells - n_cells // 2))[
        rng.permutation(n_cells)
    ]
    is_axon = roles_by_index == AXON
    # contact sites: voxels on an axon-dendrite boundary whose normal lies mostly in-plane
    normal = seeds_scaled[None] - seeds_scaled[:, None]  # [a, b]: from seed a towards seed b
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True).clip(1e-9)
    inplane = np.linalg.norm(normal[..., 1:], axis=-1)
    margin = 7
    edge = np.zeros(shape, bool)
    edge[1:-1, margin:-margin, margin:-margin] = True
    candidate_mask = (
        edge
        & (contact_distance < 0.5)
        & (is_axon[best_id] != is_axon[second_id])
        & (inplane[best_id, second_id] > 0.8)
    )
    candidates = np.argwhere(candidate_mask)
    first, other = best_id[candidate_mask], second_id[candidate_mask]
    pre = np.where(is_axon[first], first, other)
    post = np.where(is_axon[first], other, first)
    pre_post = np.stack([pre + 1, post + 1], axis=1)
    unit = normal[pre, post]  # scaled metric, from the pre seed towards the post seed
    directions = unit / scale  # voxels moved per in-plane unit along the normal
    directions = directions / np.linalg.norm(unit[:, 1:], axis=1, keepdims=True).clip(1e-9)
    synapses = _choose_synapses(
        rng, seg, contact_distance, candidates, pre_post, directions,
        n_synapses, min_distance, min_distance_z, max_per_pair,
    )  # fmt: skip
    roles = {int(i) + 1: str(role) for i, role in enumerate(roles_by_index)}
    return seg, contact_distance, synapses, roles


def make_em_volume(
    shape: Sequence[int] = DEFAULT_SHAPE,
    n_cells: int | None = None,
    n_synapses: int | None = None,
    seed: int = 0,
    anisotropy: float = 10.0,
    min_distance: float = 8.0,
    min_distance_z: float = 3.0,
    max_per_pair: int = 3,
    min_synapses_per_region: int = 5,
    noise: float | None = None,
    val_region: int = 3,
    max_attempts: int = 12,
) -> SyntheticEM:
    """A deterministic (per seed) EM-like volume with cells, synapses, labels and train/val regions.

    `anisotropy` weights z distances when cells are grown (z voxels are 10x thicker than in-plane ones);
    `n_cells` / `n_synapses` default to about 32 (x 0.75..1.35, drawn) / 48 at shape (32, 128, 128), scaled
    with the volume otherwise. The rendering `Style` (and `noise`, unless given) is drawn from the seed.
    Cells are regrown (with derived seeds) until each of the 4 in-plane quadrant regions holds at least
    `min_synapses_per_region` synapse points; the attempt with the fullest poorest region is kept.
    """
    shape = tuple(int(v) for v in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive sizes (z, y, x), got {shape}")
    style_rng = np.random.default_rng([seed, 1_000_003])  # independent of the attempts below
    style = Style.draw(style_rng, noise)
    bend = float(style_rng.uniform(0.4, 2.2))
    cell_factor = float(style_rng.uniform(0.75, 1.35))
    if n_cells is None:
        n_cells = max(8, int(round(_scaled_counts(shape, None, None)[0] * cell_factor)))
    n_cells, n_synapses = _scaled_counts(shape, n_cells, n_synapses)
    if n_cells < 2:
        raise ValueError("n_cells must be at least 2 (one axon, one dendrite)")
    quadrants = _quadrant_boxes(shape)
    best_result, best_score = None, -1
    for attempt in range(max(1, max_attempts)):
        rng = np.random.default_rng([seed, attempt])
        result = _attempt(
            rng, shape, n_cells, n_synapses, anisotropy, min_distance, min_distance_z, max_per_pair, bend
        )
        counts = [sum(box.contains(s["point"]) for s in result[2]) for box in quadrants]
        score = min(counts)
        if score > best_score:
            best_result, best_score, best_rng = result, score, rng
        if score >= min_synapses_per_region:
            break
    seg, contact_distance, synapses, roles = best_result
    image = _render(best_rng, seg, contact_distance, synapses, n_cells, style)
    pre_ids = sorted({s["pre_id"] for s in synapses})
    post_ids = sorted({s["post_id"] for s in synapses})
    label0 = np.isin(seg, pre_ids).astype(np.uint8)
    label1 = np.isin(seg, post_ids).astype(np.uint8)
    synapses = [
        {key: s[key] for key in ("id", "start", "end", "point", "pre_id", "post_id")} for s in synapses
    ]
    regions = [
        {"start": list(box.start), "stop": list(box.stop), "tags": ["val" if q == val_region else "train"]}
        for q, box in enumerate(quadrants)
    ]
    drawn = {**style.as_dict(), "cells": n_cells, "bend": round(bend, 3)}
    return SyntheticEM(image, seg, label0, label1, synapses, regions, roles, RESOLUTION, seed, drawn)


LABEL_WINDOW: tuple[int, int, int] = (16, 64, 64)


def spec_dict(window_size: Sequence[int] | None = None, partners: bool = True) -> dict:
    """The project spec of a written synapse dataset (paths relative to spec.yaml). `partners` (the
    default): the partner-assignment regime (`point_regimes.partner_regime`); otherwise the
    label0/label1 volumes as targets."""
    window = [int(v) for v in (window_size or (PARTNER_WINDOW if partners else LABEL_WINDOW))]
    regime = (
        partner_regime(window)
        if partners
        else {
            "targets": "labels",
            "training": {"lr": 0.0005, "batch_size": 4, "epochs": 10, "loss_crop_pad": [1, 4, 4], "class_balance": "default"},
        }
    )
    return {
        "project": "synapse-project",
        "axis_order": "zyx",
        "resolution": list(RESOLUTION),
        "layers": {
            "img": {"path": "img.zarr"},
            "label0": {"path": "pre.zarr"},
            "label1": {"path": "post.zarr"},
            "segmentation": {"path": "seg.zarr"},
            "points": {"path": "synapses.csv"},
        },
        "regions": {"path": "regions.json"},
        "train_tags": ["train"],
        "val_tags": ["val"],
        "window_size": window,
        "line_point": "midpoint",
        "targets": regime["targets"],
        "model": {
            "spatial_dims": "3d",
            "depth": 3,
            "base_channels": 16,
            "output_mode": "multilabel",
            "output_channels": 2,
        },
        "training": {
            **regime["training"],
            "min_nonzero_fraction": 0.0,
            "num_workers": 0,
            "seed": 0,
            "device": "auto",
            "devices": 1,
        },
    }


def _write_zarr(path: Path, data: np.ndarray, chunks: Sequence[int]) -> None:
    import zarr

    array = zarr.create_array(
        store=str(path),
        shape=data.shape,
        chunks=tuple(min(c, n) for c, n in zip(chunks, data.shape, strict=True)),
        dtype=data.dtype,
        zarr_format=3,
        overwrite=True,
        attributes={"axis_order": "zyx", "resolution": list(RESOLUTION)},
    )
    array[...] = data


def write_synapse_dataset(
    folder: str | Path,
    shape: Sequence[int] = DEFAULT_SHAPE,
    seed: int = 0,
    chunks: Sequence[int] = (16, 64, 64),
    volume: SyntheticEM | None = None,
    partners: bool = True,
    **options,
) -> dict[str, Path]:
    """Write a synapse project folder; returns the written paths by name (img, pre, post, seg,
    synapses, points, regions, spec). `options` go to `make_em_volume`; pass `volume` to write an
    already generated one instead; `partners`: the spec's regime (`spec_dict`)."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    em = volume if volume is not None else make_em_volume(shape, seed=seed, **options)
    paths = {
        "img": folder / "img.zarr",
        "pre": folder / "pre.zarr",
        "post": folder / "post.zarr",
        "seg": folder / "seg.zarr",
        "synapses": folder / "synapses.csv",
        "points": folder / "points.csv",
        "regions": folder / "regions.json",
        "spec": folder / "spec.yaml",
    }
    for name, data in (("img", em.image), ("pre", em.label0), ("post", em.label1), ("seg", em.segmentation)):
        _write_zarr(paths[name], data, chunks)
    with open(paths["synapses"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "z1", "y1", "x1", "z2", "y2", "x2"])
        for s in em.synapses:
            writer.writerow([s["id"], *s["start"], *s["end"]])
    with open(paths["points"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "z", "y", "x"])
        for s in em.synapses:
            writer.writerow([s["id"], *s["point"]])
    paths["regions"].write_text(json.dumps(em.regions, indent=2) + "\n", encoding="utf-8")
    default = PARTNER_WINDOW if partners else LABEL_WINDOW
    window = [min(w, n) for w, n in zip(default, em.shape, strict=True)]
    paths["spec"].write_text(
        yaml.safe_dump(spec_dict(window, partners), sort_keys=False, default_flow_style=None), encoding="utf-8"
    )
    return paths


def synapse_sample_data(seed: int = 0) -> list[tuple]:
    """napari layer-data tuples (image, cells, pre, post, synapse points and lines) for a sample menu."""
    em = make_em_volume(seed=seed)
    scale = tuple(float(v) for v in em.resolution)
    return [
        (em.image, {"name": "synthetic EM", "scale": scale}, "image"),
        (em.segmentation, {"name": "cells", "scale": scale, "opacity": 0.3, "visible": False}, "labels"),
        (em.label0, {"name": "pre (label0)", "scale": scale, "opacity": 0.4}, "labels"),
        (em.label1, {"name": "post (label1)", "scale": scale, "opacity": 0.4}, "labels"),
        (em.points, {"name": "synapses", "scale": scale, "size": 4, "face_color": "yellow"}, "points"),
        (
            list(em.lines),
            {"name": "synapse lines", "scale": scale, "shape_type": "line", "edge_color": "cyan"},
            "shapes",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_training_assistant.data.synthetic_em",
        description="Write a synthetic EM synapse project (img/pre/post/seg zarr, synapses.csv, regions, spec.yaml).",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=list(DEFAULT_SHAPE))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", action="store_true", help="a spec training on the label0/label1 volumes (no centre marker)")
    args = parser.parse_args(argv)
    em = make_em_volume(tuple(args.shape), seed=args.seed)
    paths = write_synapse_dataset(args.out_dir, volume=em, partners=not args.labels)
    for name, path in paths.items():
        print(f"{name}: {path}")
    boxes = em.region_boxes()
    per_region = [sum(box.contains(s["point"]) for s in em.synapses) for box in boxes]
    print(
        f"cells: {len(em.roles)} ({len(em.axon_ids)} axons, {len(em.dendrite_ids)} dendrites); "
        f"synapses: {len(em.synapses)}; per region: "
        + ", ".join(f"{r['tags'][0]}={n}" for r, n in zip(em.regions, per_region, strict=True))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
