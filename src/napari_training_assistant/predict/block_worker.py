"""What a Dask worker runs: one block of a block-wise prediction (read, normalise, tile, blend, write),
and for instance models the two stitching tasks of a block (`block_merges`, `relabel_block`).

A `BlockJob` is sent to every worker once (scattered); each task then names only a block index. The
model is loaded once per worker process and kept (`_MODELS`), with its inference copy on the worker's
device: with several GPUs, worker N of the local cluster uses GPU N. With the ONNX runtime the worker
exports the checkpoint once and runs it with onnxruntime (`onnx_runtime.OnnxUNet`).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.geometry import Box
from ..preprocess import NormalizationStats, apply_stats
from .block_plan import BlockPlan
from .instance_stitching import face_pairs, instance_block
from .volume_inputs import VolumeInput
from .volume_store import OutputLayout, VolumeStore

_MODELS: dict[tuple[str, str, str, str], Any] = {}
_STORES: dict[tuple[str, str], VolumeStore] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class BlockJob:
    """Everything a worker needs to predict any block of one prediction."""

    checkpoint: str  # absolute path of the checkpoint file
    checkpoint_sha256: str
    volume: VolumeInput
    roi_start: tuple[int, ...]
    plan: BlockPlan
    stats: NormalizationStats
    architecture: dict[str, Any]
    output: str
    layout: OutputLayout
    batch: int
    device: str | None  # None / "auto": the worker's GPU when there is one, else cpu
    threads: int | None  # torch threads per worker (CPU)
    token: str  # when the output was created: a store replaced with overwrite is opened again
    instance: Any = None  # InstanceSettings of an instance model writing labels (stitched, see instance_stitching)
    runtime: str = "torch"  # or "onnx": onnxruntime (see onnx_runtime)


@dataclass(frozen=True)
class OutputRef:
    """The output store of a prediction, for the stitching tasks."""

    output: str
    plan: BlockPlan
    layout: OutputLayout
    token: str


@dataclass(frozen=True)
class BlockResult:
    index: int
    seconds: float
    tiles: int
    voxels: int


def run_block(job: BlockJob, index: int) -> BlockResult:
    """Predict block `index` of `job` and write it (all pyramid levels, then its done mark)."""
    from .tiling import blend_tiles, probabilities_to_labels, uses_softmax

    started = time.perf_counter()
    net, device = _model(job)
    work = job.plan.work(index)
    read = Box(
        tuple(s.start + o for s, o in zip(work.read, job.roi_start, strict=True)),
        tuple(s.stop + o for s, o in zip(work.read, job.roi_start, strict=True)),
    )
    image = apply_stats(job.volume.read(read), job.stats, channel_axis_first=True)
    instance = job.instance is not None and job.layout.labels
    # an instance block blends its whole read box: the watershed sees the halo context on every side
    blended = tuple(slice(0, s.stop - s.start) for s in work.read) if instance else work.region
    probabilities = blend_tiles(
        net,
        image,
        work.tiles,
        job.plan.tile,
        batch=min(job.batch, len(work.tiles)),
        softmax=uses_softmax(job.architecture),
        region=blended,
        device=device,
    )
    faces = None
    if instance:  # block-local ids 1..n and the face slabs, stitched when every block is done
        faces = instance_block(probabilities, work, job.plan, job.layout.slabs, job.instance)
        probabilities, labels = probabilities[(slice(None), *work.region)], faces.labels
    else:
        labels = probabilities_to_labels(probabilities, job.architecture) if job.layout.labels else None
    _store(job).write_block(index, probabilities, labels, faces)
    return BlockResult(index, time.perf_counter() - started, len(work.tiles), int(np.prod(work.shape)))


def block_merges(ref: OutputRef, index: int) -> np.ndarray:
    """(k, 4) rows (block, local id, next block, local id) of the pieces to merge at block `index`'s high faces."""
    store = _store(ref)
    rows = []
    for axis, width in enumerate(ref.layout.slabs):
        position = ref.plan.position(index)
        if not width or position[axis] == ref.plan.grid[axis] - 1:
            continue
        pairs = face_pairs(*store.face_slabs(index, axis))
        following = index + math.prod(ref.plan.grid[axis + 1 :])
        rows.append(np.column_stack([np.full(len(pairs), index), pairs[:, 0], np.full(len(pairs), following), pairs[:, 1]]))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 4), np.int64)


def relabel_block(ref: OutputRef, index: int, lookup: np.ndarray) -> int:
    """Write block `index` with its final ids (`lookup[local id]`); returns the index."""
    _store(ref).relabel_block(index, lookup)
    return index


def _model(job: BlockJob):
    return worker_model(job.checkpoint, job.checkpoint_sha256, job.device, job.threads, job.runtime)


def worker_model(checkpoint: str, sha256: str, requested_device: str | None, threads: int | None, runtime: str = "torch"):
    """(inference model, device) of this worker process for a checkpoint file, loaded on first use and kept
    (one model per worker: another checkpoint or runtime replaces it)."""
    import torch

    from ..model import load_model
    from .inference_model import prepare_inference_model
    from .onnx_runtime import onnx_model

    device = worker_device(requested_device)
    key = (checkpoint, sha256, str(device), runtime)
    with _LOCK:
        if key not in _MODELS:
            if threads and device.type == "cpu":
                torch.set_num_threads(threads)
            _MODELS.clear()
            net = onnx_model(checkpoint, device, sha256=sha256) if runtime == "onnx" else load_model(checkpoint)
            _MODELS[key] = prepare_inference_model(net, device)
        return _MODELS[key], device


def worker_device(requested: str | None):
    """The asked device; for auto, the GPU numbered like this Dask worker (when it is a number)."""
    import torch

    from ..model.device import cuda_available, torch_device

    if requested not in (None, "auto"):
        return torch_device(requested)
    if not cuda_available():
        return torch.device("cpu")
    number = 0
    try:
        from distributed import get_worker

        name = get_worker().name
        number = int(name) if isinstance(name, int) or str(name).isdigit() else 0
    except (ImportError, ValueError):
        pass
    return torch.device("cuda", number % torch.cuda.device_count())


def _store(job: BlockJob | OutputRef) -> VolumeStore:
    with _LOCK:
        key = (job.output, job.token)
        if key not in _STORES:
            _STORES.clear()
            _STORES[key] = VolumeStore.open(job.output, job.plan, job.layout)
        return _STORES[key]
