"""`assign_synapses`: every synapse of a spec's points layer assigned a pre- and a postsynaptic segment.

The spec is the point-training spec (`nta train-points`) with a `segmentation` layer; the checkpoint is a
point-trained one of its project (window, centre marker and normalisation come from the checkpoint). Points are
cut into spatial chunks (`chunks.py`), each chunk one Dask task (`worker.assign_chunk`) that writes a part file;
at most a few chunks per worker are in flight, so millions of points stream. The parts are then merged into
`assignments.csv` (and `.parquet` when pyarrow is installed) and a Neuroglancer precomputed line layer.

Output folder (default `<project>/assignments/<checkpoint>_<mode>/`):
    run.json            what was asked (a different run in the same folder is refused unless overwrite)
    parts/              one CSV per finished chunk (a restarted run skips them)
    assignments.csv     one row per synapse, in the order of the points layer
    assignments.parquet
    lines/              precomputed line annotations pre site -> post site (scores, pre/post segments)
    summary.json        counts, read choices, timings, synapses/s, evaluation
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cancel import CancelToken
from ..predict.dask_cluster import dask_cluster
from ..predict.volume_inputs import VolumeInput, region_stats
from ..progress import EventKind, Listener, ProgressEvent
from ..project import TrainingProject
from ..project.checkpoints import file_sha256
from ..project.errors import CheckpointError, DatasetError
from ..project.storage import atomic_write_bytes
from ..project.user_input import InputError
from ..train.point_inputs import open_layers, read_synapses, resolve_location
from ..train.point_spec import PointSpec, load_spec
from .chunks import DEFAULT_CHUNK_POINTS, spatial_chunks
from .outputs import merge_parts, write_lines
from .vote import MODES
from .worker import AssignJob, ChunkResult, assign_chunk, part_path

IN_FLIGHT_PER_WORKER = 4
CONTACT_RADIUS_NM = 40.0  # reach of the contact box around a synapse point (at least one voxel per axis)


@dataclass
class AssignResult:
    output: Path
    status: str  # completed | cancelled
    synapses: int
    outside: int
    chunks: int
    chunks_before: int
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


def assign_synapses(
    spec_path: str | Path,
    *,
    checkpoint_id: str = "latest",
    project: str | Path | None = None,
    output: str | Path | None = None,
    mode: str = "max",
    contact_radius: Sequence[int] | None = None,
    dilation: int = 0,
    threshold: float = 0.5,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
    device: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    evaluate: bool = False,
    listener: Listener | None = None,
    cancel: CancelToken | None = None,
) -> AssignResult:
    """Assign partners to every synapse of the spec's points layer (see the module docstring). `project`: the
    Training Project Folder holding the checkpoint, instead of the spec's (a model applied to another volume)."""
    started = time.perf_counter()
    if mode not in MODES:
        raise InputError(f"`mode` {mode!r} is not one of {', '.join(MODES)}")
    spec, base = load_spec(spec_path)
    layers, points_location = open_layers(spec, base)
    segmentation = layers.labels.get("segmentation")
    if segmentation is None:
        raise DatasetError(f"{spec_path}: names no segmentation layer: add layers.segmentation (the cells to assign)")
    project = TrainingProject.open(Path(project).resolve() if project is not None else _project_folder(spec, base))
    checkpoint, info = _checkpoint(project, checkpoint_id, spec, mode)
    synapses = read_synapses(points_location, spec)
    if not synapses:
        raise DatasetError(f"{points_location}: holds no synapses: annotate some first")
    points = np.array([s.point(spec.line_point) for s in synapses], dtype=np.float64)
    inside = np.all((points >= 0) & (points < np.asarray(layers.image.shape) + np.asarray(layers.image.origin)), axis=1)
    window = tuple(info.window_size) if info is not None else tuple(spec.window_size)
    radius = tuple(int(v) for v in contact_radius) if contact_radius is not None else _default_radius(spec.resolution)
    asked = {
        "spec": str(Path(spec_path).resolve()),
        "checkpoint": checkpoint.name if checkpoint else None,
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
        "mode": mode, "contact_radius": list(radius), "dilation": dilation, "threshold": threshold,
        "window": list(window), "chunk_points": chunk_points, "points": len(points),
    }
    target = Path(output) if output is not None else project.layout.root / "assignments" / f"{asked['checkpoint'] or 'baseline'}_{mode}".replace(".pt", "")
    _prepare_output(target, asked, overwrite)
    stats = None
    if info is not None:
        volume = VolumeInput((layers.image,), {})
        stats = region_stats(volume, layers.image.bounds, info.normalization, (16, 128, 128))
    job = AssignJob(
        checkpoint=str(checkpoint) if checkpoint else None,
        checkpoint_sha256=asked["checkpoint_sha256"] or "",
        image=layers.image,
        segmentation=segmentation,
        stats=stats,
        window=window,
        centre_marker=bool(info.centre_marker) if info else False,
        mode=mode,
        contact_radius=radius,
        dilation=int(dilation),
        threshold=float(threshold),
        parts=str(target / "parts"),
        device=device,
        threads=None,
    )
    rows = np.nonzero(inside)[0]
    ids = [synapses[i].id for i in rows]
    status, results, before, chunks, elapsed, cluster = _run_chunks(job, points[rows], rows, ids, chunk_points, scheduler, workers, listener or (lambda e: None), cancel)
    summary: dict[str, Any] = {
        **asked,
        "synapses": int(len(rows)),
        "outside_volume": int((~inside).sum()),
        "chunks": chunks,
        "chunks_before": before,
        "reads": {kind: sum(1 for r in results if r.read == kind) for kind in ("region", "windows")},
        "time_s": {name: round(sum(getattr(r, f"{name}_s") for r in results), 3) for name in ("read", "predict", "vote")},
        "cluster": cluster,
    }
    if status == "completed":
        table = merge_parts(target / "parts", chunks, target)
        write_lines(table, target / "lines", spec.resolution, spec.axis_order)
        if evaluate:
            from .evaluate import evaluate_table

            summary["evaluation"] = evaluate_table(table, synapses, rows, spec, base, layers, radius)
            if mode != "dilate_nearest":  # the no-network baseline, reported beside the model
                baseline = assign_synapses(
                    spec_path, output=target / "baseline", mode="dilate_nearest", contact_radius=radius, dilation=dilation,
                    chunk_points=chunk_points, scheduler="in-process", overwrite=True, evaluate=True,
                )
                summary["baseline_evaluation"] = baseline.summary.get("evaluation")
            if checkpoint is not None:
                _record_evaluation(project, asked, summary)
    seconds = time.perf_counter() - started
    summary["seconds"] = round(seconds, 3)
    done = sum(r.synapses for r in results)
    summary["synapses_per_s"] = round(done / elapsed, 1) if results and elapsed > 0 else None  # over the tasks' wall time
    summary["status"] = status
    atomic_write_bytes(target / "summary.json", (json.dumps(summary, indent=2, default=str) + "\n").encode())
    return AssignResult(target, status, int(len(rows)), int((~inside).sum()), chunks, before, round(seconds, 3), summary)


def _record_evaluation(project: TrainingProject, asked: dict[str, Any], summary: dict[str, Any]) -> None:
    """One "assignment" row of the benchmark history: the checkpoint's accuracy beside the baseline's."""
    from ..project.clock import now

    overall = (summary.get("evaluation") or {}).get("overall") or {}
    if not overall.get("n"):
        return
    baseline = ((summary.get("baseline_evaluation") or {}).get("overall") or {}).get("both", {})
    record = project.checkpoints.get(Path(asked["checkpoint"]).stem)
    project.history.append_benchmark(
        {
            "kind": "assignment",
            "checkpoint_id": record.checkpoint_id,
            "parent_id": record.parent_id,
            "timestamp": now().isoformat(timespec="seconds"),
            "n_synapses": overall["n"],
            "assign_mode": asked["mode"],
            "pre_accuracy": overall["pre"]["accuracy"],
            "post_accuracy": overall["post"]["accuracy"],
            "both_accuracy": overall["both"]["accuracy"],
            "baseline_both_accuracy": baseline.get("accuracy"),
        }
    )


def _project_folder(spec: PointSpec, base: Path) -> Path:
    return Path(resolve_location(base, spec.project)).resolve()


def _checkpoint(project: TrainingProject, checkpoint_id: str, spec: PointSpec, mode: str):
    """(checkpoint path, CheckpointInfo), or (None, None) for the no-network baseline."""
    from ..model.checkpoint_info import read_checkpoint_info

    if mode == "dilate_nearest":
        return None, None
    record = project.checkpoints.get(checkpoint_id)
    path = project.layout.absolute(record.path)
    info = read_checkpoint_info(path)
    if info.training_mode != "point_windows":
        raise CheckpointError(
            f"checkpoint {record.checkpoint_id} was trained on image/mask pairs, not on synapse windows: "
            "assign with a checkpoint of `nta train-points`"
        )
    if info.axis_order and info.axis_order != spec.axis_order:
        raise CheckpointError(f"checkpoint {record.checkpoint_id} was trained in axis order {info.axis_order}, the spec says {spec.axis_order}")
    return path, info


def _default_radius(resolution: Sequence[float]) -> tuple[int, ...]:
    """The contact box: `CONTACT_RADIUS_NM` in every axis, at least one voxel."""
    return tuple(max(1, round(CONTACT_RADIUS_NM / r)) if r < CONTACT_RADIUS_NM else 1 for r in resolution)


def _prepare_output(target: Path, asked: dict[str, Any], overwrite: bool) -> None:
    run_file = target / "run.json"
    if run_file.is_file() and not overwrite:
        try:
            earlier = json.loads(run_file.read_text())
        except ValueError:
            earlier = None
        if earlier == json.loads(json.dumps(asked)):
            return  # the same run: resume
        raise DatasetError(f"{target}: holds another assignment run: choose another --output or pass --overwrite")
    if target.exists() and not overwrite and any(target.iterdir()):
        raise DatasetError(f"{target}: is not empty: choose another --output or pass --overwrite")
    if target.exists() and overwrite:
        shutil.rmtree(target)
    (target / "parts").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_file, (json.dumps(asked, indent=2) + "\n").encode())


def _run_chunks(
    job: AssignJob,
    points: np.ndarray,
    rows: np.ndarray,
    ids: list[Any],
    chunk_points: int,
    scheduler: str | None,
    workers: int | None,
    emit: Listener,
    cancel: CancelToken | None,
) -> tuple[str, list[ChunkResult], int, int, float, str | None]:
    """(status, results of the chunks run now, chunks done before, chunks in all, seconds from the first task
    to the last, cluster): chunks streamed to Dask."""
    from dataclasses import replace

    from distributed import as_completed

    from ..predict.volume_prediction import _gpus

    all_chunks = list(spatial_chunks(points, job.window, chunk_points)) if len(points) else []
    pending = [c for c in all_chunks if not part_path(job.parts, c.index).is_file()]
    before = len(all_chunks) - len(pending)
    total = len(points)
    done = sum(len(c) for c in all_chunks) - sum(len(c) for c in pending)
    results: list[ChunkResult] = []
    if not pending:
        return "completed", results, before, len(all_chunks), 0.0, None
    gpus = 0 if job.checkpoint is None else _gpus(job.device)
    with dask_cluster(scheduler, workers, gpus=gpus) as cluster:
        job = replace(job, threads=cluster.threads)
        emit(ProgressEvent(EventKind.STARTED, step=done, steps=total, message=f"{total - done} of {total} synapses to assign in {len(pending)} chunks on {cluster.description}", metrics={"dashboard": cluster.dashboard}))
        client = cluster.client
        [shared] = client.scatter([job], broadcast=True)
        queue = iter(pending)
        limit = max(1, cluster.workers) * IN_FLIGHT_PER_WORKER

        def submit(chunk):
            local = chunk.rows
            return client.submit(assign_chunk, shared, chunk.index, rows[local], [ids[i] for i in local], points[local], key=f"nta-assign-{chunk.index}-{job.parts[-12:]}", retries=1, pure=False)

        running = as_completed([submit(c) for c in itertools.islice(queue, limit)])  # zip() would drop a chunk
        started = time.perf_counter()
        for future in running:
            if cancel is not None and cancel.cancelled:
                client.cancel(list(running.futures))
                return "cancelled", results, before, len(all_chunks), time.perf_counter() - started, cluster.description
            if future.status != "finished":
                exc = future.exception()
                client.cancel(list(running.futures))
                raise DatasetError(f"an assignment chunk failed twice ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); finished chunks are kept: run the same command again to resume") from exc
            result: ChunkResult = future.result()
            results.append(result)
            done += result.synapses
            rate = sum(r.synapses for r in results) / max(time.perf_counter() - started, 1e-9)
            emit(ProgressEvent(EventKind.STEP, step=done, steps=total, eta_s=(total - done) / rate if rate else None, metrics={"synapses_per_s": rate}))
            following = next(queue, None)
            if following is not None:
                running.add(submit(following))
        elapsed = time.perf_counter() - started
    return "completed", results, before, len(all_chunks), elapsed, cluster.description
