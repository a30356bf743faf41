"""What a Dask worker runs: the synapses of one chunk (read windows, predict pre/post, vote, write a part).

A chunk's part file (`parts/chunk_NNNNNN.csv`, written atomically) is its done mark: a run started again
skips chunks whose part exists. The model is the worker's cached one (`predict.block_worker.worker_model`).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.geometry import Box
from ..data.volumes import VolumeSource
from ..preprocess import NormalizationStats, apply_stats
from ..project.storage import atomic_write_bytes
from .chunks import read_plan, window_starts
from .vote import NOTHING, Vote, vote

COLUMNS = (
    "row", "id", "z", "y", "x", "pre_segment", "post_segment", "pre_score", "post_score",
    "pre_runner_up", "pre_margin", "post_runner_up", "post_margin", "candidates", "flags",
    "pre_site_z", "pre_site_y", "pre_site_x", "post_site_z", "post_site_y", "post_site_x",
)


@dataclass(frozen=True)
class AssignJob:
    """Everything a worker needs for any chunk of one assignment run."""

    checkpoint: str | None  # None: dilate_nearest (no network)
    checkpoint_sha256: str
    image: VolumeSource
    segmentation: VolumeSource
    stats: NormalizationStats | None
    window: tuple[int, ...]
    centre_marker: bool
    mode: str
    contact_radius: tuple[int, ...]
    dilation: int
    threshold: float
    parts: str  # folder of the part files
    device: str | None
    threads: int | None
    batch: int = 8


@dataclass(frozen=True)
class ChunkResult:
    index: int
    synapses: int
    read: str  # "region" | "windows"
    read_s: float
    predict_s: float
    vote_s: float


def part_path(parts: str | Path, index: int) -> Path:
    return Path(parts) / f"chunk_{index:06d}.csv"


def assign_chunk(job: AssignJob, index: int, rows: np.ndarray, ids: list[Any], points: np.ndarray) -> ChunkResult:
    """Assign the synapses `points` (rows of the whole table, their ids) and write the chunk's part file."""
    clock = time.perf_counter()
    starts = window_starts(points, job.window)
    union = read_plan(starts, job.window)
    images, segments = _read_windows(job, starts, union)
    read_s = time.perf_counter() - clock
    clock = time.perf_counter()
    centres = points - starts
    probabilities = _predict(job, images, centres) if job.checkpoint is not None else [None] * len(points)
    predict_s = time.perf_counter() - clock
    clock = time.perf_counter()
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i in range(len(points)):
        result = vote(
            probabilities[i], segments[i], centres[i], mode=job.mode, contact_radius=job.contact_radius, dilation=job.dilation, threshold=job.threshold
        )
        sites = [_site(segments[i], None if probabilities[i] is None else probabilities[i][c], side.segment) + starts[i] for c, side in enumerate((result.pre, result.post))]
        writer.writerow(_row(int(rows[i]), ids[i], points[i], result, sites))
    atomic_write_bytes(part_path(job.parts, index), table.getvalue().encode())
    return ChunkResult(index, len(points), "region" if union is not None else "windows", read_s, predict_s, time.perf_counter() - clock)


def _read_windows(job: AssignJob, starts: np.ndarray, union: Box | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    boxes = [Box(tuple(int(v) for v in s), tuple(int(v) + w for v, w in zip(s, job.window, strict=True))) for s in starts]
    if union is None:
        return [job.image.read(b) for b in boxes], [job.segmentation.read(b) for b in boxes]
    image, segments = job.image.read(union), job.segmentation.read(union)
    return [image[b.slices(union.start)] for b in boxes], [segments[b.slices(union.start)] for b in boxes]


def _predict(job: AssignJob, images: list[np.ndarray], centres: np.ndarray) -> list[np.ndarray]:
    """(2, *window) sigmoid probabilities per window, in batches of `job.batch`."""
    import torch

    from ..data.point_windows.window_dataset import marker_ball
    from ..predict.block_worker import worker_model

    net, device = worker_model(job.checkpoint, job.checkpoint_sha256, job.device, job.threads)
    out: list[np.ndarray] = []
    for start in range(0, len(images), job.batch):
        group = []
        for image, centre in zip(images[start : start + job.batch], centres[start : start + job.batch], strict=True):
            channels = [apply_stats(image, job.stats, channel_axis_first=False)]
            if job.centre_marker:
                channels.append(marker_ball(job.window, centre))
            group.append(np.stack(channels))
        batch = torch.from_numpy(np.stack(group)).to(device)
        with torch.inference_mode():
            out.extend(torch.sigmoid(net(batch)).float().cpu().numpy())
    return out


def _site(segments: np.ndarray, weights: np.ndarray | None, segment: int) -> np.ndarray:
    """Where a partner is: the (probability-weighted) centroid of its voxels in the window (window coordinates)."""
    if segment == NOTHING:
        return np.full(segments.ndim, np.nan)
    member = segments == segment
    coords = np.nonzero(member)
    w = np.ones(len(coords[0])) if weights is None else weights[member].astype(np.float64) + 1e-12
    return np.array([float(np.average(c, weights=w)) for c in coords])


def _row(row: int, synapse_id: Any, point: np.ndarray, result: Vote, sites: list[np.ndarray]) -> list[Any]:
    pre, post = result.pre, result.post
    return [
        row, synapse_id, *(round(float(v), 3) for v in point), pre.segment, post.segment, round(pre.score, 4), round(post.score, 4),
        pre.runner_up, round(pre.margin, 4), post.runner_up, round(post.margin, 4), result.candidates, ";".join(result.flags),
        *(round(float(v), 3) for v in sites[0]), *(round(float(v), 3) for v in sites[1]),
    ]
