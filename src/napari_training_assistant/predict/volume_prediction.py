"""Block-wise prediction of images and volumes of any size, on Dask, into OME-Zarr (`predict_volume`).

The volume is never held whole: each block (see `block_plan`) is a Dask task that reads its tiles with
their halo, runs the same tiling and blending as `predict_image` and writes its part of the output
(`volume_store`). The result equals whole-image prediction (no seams). A run that stops (killed,
cancelled, a block that failed twice) keeps its finished blocks; the same call again finishes the rest.

Instance models: each block runs the seeded watershed with its halo context and writes block-local ids;
when every block is done, the objects are stitched across block faces and every block is rewritten with
final ids 1..N (`instance_stitching`, two more Dask passes); only then is the output complete.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..cancel import CancelToken
from ..data.geometry import Box
from ..model.checkpoint_info import CheckpointInfo, read_checkpoint_info
from ..model.unet import level_factors, validate_architecture
from ..preprocess import NormalizationStats
from ..progress import EventKind, Listener, ProgressEvent
from ..project.checkpoints import file_sha256
from ..project.clock import now
from ..project.errors import DatasetError
from ..project.run_options import PredictOptions
from ..project.user_input import InputError
from .block_plan import BlockPlan
from .block_worker import (
    BlockJob,
    BlockResult,
    OutputRef,
    block_merges,
    relabel_block,
    run_block,
    worker_device,
)
from .dask_cluster import Cluster, dask_cluster
from .instance_stitching import MERGE_FRACTION, block_lookup, final_ids, missing_context, slab_widths
from .instances import InstanceSettings, checkpoint_settings
from .onnx_runtime import runtime_parameters
from .tiling import DEFAULT_TILE, default_batch_size, tile_stride
from .volume_inputs import BlockMask, VolumeInput, open_input, open_mask, parse_roi, region_stats
from .volume_store import (
    PREDICTED,
    PROBABILITY_DTYPES,
    RELABELLED,
    SKIPPED,
    OutputLayout,
    VolumeStore,
    fingerprint_json,
    read_attributes,
)

ProbabilityKind = str  # "float16" | "uint8" | None


class PredictionFailed(RuntimeError):
    """A block failed twice: the run stopped, its finished blocks are kept."""


@dataclass
class VolumeResult:
    output: Path
    status: str  # completed | cancelled
    shape: list[int]
    roi: list[list[int]]
    blocks: int
    blocks_before: int  # finished by an earlier run of the same prediction
    blocks_predicted: int
    blocks_skipped: int
    seconds: float
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def voxels_per_s(self) -> float | None:
        return self.parameters.get("voxels_per_s")


def predict_volume(checkpoint: str | Path, source: Any, target: str | Path, **options: Any) -> VolumeResult:
    """Predict `source` with the checkpoint file `checkpoint` block by block into the Zarr folder `target`.

    source: any volume `open_volume` reads (TIFF/BigTIFF, Zarr, OME-Zarr level `scale`, Neuroglancer
        precomputed folder or URL, numpy/dask arrays, a napari multiscale list).
    block_shape: output voxels per block (default about 4096^2 in 2D, 384^3 in 3D, clipped to the region);
        bigger blocks compute fewer border tiles twice. halo: the voxels each block reads beyond its edges,
        i.e. the tile overlap in voxels (default tile x overlap; giving it sets the overlap).
    roi: 'z0:z1,y0:y1,x0:x1' (absolute voxels); mask: a volume of any resolution over the same extent,
        blocks where it is all zero are skipped (left 0).
    probabilities: also write probabilities as 'float16', 'uint8' (x255) or 'float32'; labels: write labels.
    scheduler: None/'local' (a local Dask cluster, stopped afterwards), 'in-process', or a scheduler
        address; workers: local worker processes (default: one per GPU, else one per 8 cores).
    overwrite: replace whatever `target` holds; without it only the same prediction is resumed there.
    """
    run_options = {k: options.pop(k) for k in ("scheduler", "workers", "overwrite", "listener", "cancel") if k in options}
    return prepare_volume(checkpoint, source, **options).run(target, **run_options)


def prepare_volume(
    checkpoint: str | Path,
    source: Any,
    *,
    block_shape: int | Sequence[int] | None = None,
    halo: int | Sequence[int] | None = None,
    tile_size: int | Sequence[int] | None = None,
    overlap: float = 0.5,
    batch_size: int | None = None,
    device: str | None = None,
    roi: str | Sequence[Sequence[int]] | None = None,
    mask: Any = None,
    mask_dataset: str | None = None,
    probabilities: ProbabilityKind | None = None,
    labels: bool = True,
    dataset: str | None = None,
    scale: int | str = 0,
    channel_axis: int | None = None,
    source_axes: str | None = None,
    checkpoint_name: str | None = None,
    instance: InstanceSettings | None = None,
    runtime: str = "torch",
) -> PreparedVolume:
    """Open and check everything `predict_volume` needs (one-line errors, nothing written yet).

    instance: post-processing of an instance model (`InstanceSettings`; defaults when None).
    runtime: "torch", or "onnx" (each worker exports the network once and runs it with onnxruntime)."""
    name = checkpoint_name or Path(checkpoint).name
    info = read_checkpoint_info(checkpoint)
    info.require_applicable(name)
    if not labels and probabilities is None:
        raise InputError("nothing to write: keep the labels or ask for probabilities (float16, uint8 or float32)")
    if probabilities is not None and probabilities not in PROBABILITY_DTYPES:
        raise InputError(f"`probabilities` {probabilities!r} is not one of {', '.join(PROBABILITY_DTYPES)}")
    architecture = dict(info.architecture)
    config = validate_architecture(architecture)
    if instance is not None and config.output_mode != "instance":
        raise InputError(
            f"`min_size`, `foreground_threshold` and `boundary_threshold` apply to instance models; {name} is a {config.output_mode} model"
        )
    instance = checkpoint_settings(instance, info.instance_settings, name) if config.output_mode == "instance" and labels else None
    spatial_axes = _spatial_axes(info)
    volume = open_input(
        source,
        spatial_axes=spatial_axes,
        input_channels=info.input_channels,
        dataset=dataset,
        scale=scale,
        channel_axis=channel_axis,
        source_axes=source_axes,
    )
    region = parse_roi(roi, volume, spatial_axes)
    options = PredictOptions(tile_size=tile_size, overlap=overlap, batch_size=batch_size, device=device, runtime=runtime)
    pooling = [math.prod(axis) for axis in zip(*level_factors(config), strict=True)]
    tile = options.tile_for(info.spatial_dims, level_factors(config)) or info.tile_size or [DEFAULT_TILE[len(spatial_axes)]] * len(spatial_axes)
    tile = [min(t, s) for t, s in zip(tile, region.shape, strict=True)]
    plan = BlockPlan.build(region.shape, tile, _strides(tile, options.overlap, halo), _block_shape(block_shape, pooling, len(spatial_axes)))
    if instance is not None and missing_context(plan):
        raise InputError(
            f"instance models need a `halo` of at least 1 voxel on every axis cut into blocks to stitch objects across blocks; got {list(plan.halo)}"
        )
    layout = _layout(architecture, labels, probabilities, spatial_axes, slab_widths(plan) if instance is not None else ())
    stitching = _stitching_record(instance, layout, len(spatial_axes))
    checkpoint_sha = file_sha256(Path(checkpoint))
    fingerprint = {
        "source": volume.description,
        "roi": [list(region.start), list(region.stop)],
        "checkpoint_sha256": checkpoint_sha,
        "tile": list(plan.tile),
        "strides": list(plan.strides),
        "block": list(plan.block),
        "labels": layout.labels,
        "probabilities": layout.probabilities,
        "normalization": info.normalization,
        **({"instance": stitching} if stitching else {}),
    }
    block_mask = open_mask(mask, volume, spatial_axes, mask_dataset) if mask is not None else None
    parameters = {
        "format": "ome-zarr",
        "source": volume.description,
        "roi": fingerprint["roi"],
        "tile_size": list(plan.tile),
        "overlap": options.overlap if halo is None else None,
        "halo": list(plan.halo),
        "reach": list(plan.reach),
        "block_shape": list(plan.block),
        "blocks": plan.count,
        "recompute_ratio": round(plan.recompute_ratio, 4),
        "batch_size": options.batch_size or default_batch_size(plan.tile),
        "device": device or "auto",
        **runtime_parameters(options.runtime, worker_device(device)),
        "normalization": info.normalization,
        "output_mode": architecture.get("output_mode"),
        "threshold": architecture.get("threshold"),
        "labels": layout.labels,
        "probabilities": layout.probabilities,
        "levels": plan.levels,
        "mask": None if mask is None else str(mask) if isinstance(mask, str | Path) else "<array>",
        "version": __version__,
        **info.prediction_parameters(),
        **stitching,
    }
    return PreparedVolume(
        checkpoint=Path(checkpoint).resolve(),
        checkpoint_sha256=checkpoint_sha,
        info=info,
        volume=volume,
        region=region,
        plan=plan,
        layout=layout,
        fingerprint=fingerprint,
        mask=block_mask,
        device=device,
        parameters=parameters,
        instance=instance,
        runtime=options.runtime,
    )


@dataclass
class PreparedVolume:
    """A checked block-wise prediction, ready to `run` into an output folder."""

    checkpoint: Path
    checkpoint_sha256: str
    info: CheckpointInfo
    volume: VolumeInput
    region: Box
    plan: BlockPlan
    layout: OutputLayout
    fingerprint: dict[str, Any]
    mask: BlockMask | None
    device: str | None
    parameters: dict[str, Any]
    instance: InstanceSettings | None = None  # an instance model writing labels: stitched across blocks
    runtime: str = "torch"

    def run(
        self,
        target: str | Path,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        overwrite: bool = False,
        listener: Listener | None = None,
        cancel: CancelToken | None = None,
    ) -> VolumeResult:
        """Predict every block not yet done in `target` (created, or resumed when it holds this prediction).

        The cluster is started (or reached) before anything is written; a finished output starts none."""
        started = time.perf_counter()
        emit = listener or (lambda event: None)
        attributes = read_attributes(Path(target))
        finished = (
            not overwrite
            and attributes is not None
            and attributes.get("status") == "complete"
            and fingerprint_json(attributes.get("fingerprint", {})) == fingerprint_json(self.fingerprint)
        )
        with contextlib.ExitStack() as stack:
            cluster = None if finished else stack.enter_context(dask_cluster(scheduler, workers, gpus=_gpus(self.device)))
            store, attributes = self._open_store(Path(target), overwrite)
            stats = NormalizationStats.from_dict(attributes["normalization_stats"])
            states = store.block_states()
            before = int((states > 0).sum())
            if self.mask is not None:
                _skip_empty_blocks(store, self.plan, states, self.mask, self.region.start)
                states = store.block_states()
            pending = [int(i) for i in (states == 0).nonzero()[0]]
            parameters = {**self.parameters, "normalization_stats": stats.to_dict()}
            status, predicted, elapsed = "completed", 0, 0.0
            token = str(attributes.get("created", ""))
            if pending and cluster is not None:
                job = self._job(Path(target), stats, token, cluster.threads, parameters["batch_size"])
                status, predicted, elapsed = _run_blocks(job, pending, self.plan, cluster, emit, cancel, before)
                parameters.update(workers=cluster.workers, cluster=cluster.description)
            if self.instance is not None and status == "completed":
                if cluster is not None:
                    ref = OutputRef(str(Path(target).resolve()), self.plan, self.layout, token)
                    status = stitch_instances(ref, store, cluster, emit, cancel)
                objects = store.read_attributes().get("objects")
                parameters["objects"] = objects
        states = store.block_states()
        done = int((states > 0).sum())
        if status == "completed":
            store.update_attributes(status="complete", finished=now().isoformat(), blocks_done=done)
        parameters["voxels_per_s"] = round(_voxels(self.plan, pending, states) / elapsed, 1) if predicted and elapsed > 0 else None
        emit(ProgressEvent(EventKind.FINISHED, step=done, steps=self.plan.count, message=f"{status}: {target}"))
        return VolumeResult(
            output=Path(target),
            status=status,
            shape=list(self.plan.shape),
            roi=self.fingerprint["roi"],
            blocks=self.plan.count,
            blocks_before=before,
            blocks_predicted=predicted,
            blocks_skipped=int((states == SKIPPED).sum()),
            seconds=round(time.perf_counter() - started, 3),
            parameters=parameters,
        )

    def _open_store(self, target: Path, overwrite: bool) -> tuple[VolumeStore, dict[str, Any]]:
        """The output store (new or resumed) with the region's normalisation statistics recorded in it."""
        region, resolution = self.region, self.volume.channels[0].resolution
        store, attributes = VolumeStore.create_or_resume(
            target,
            self.plan,
            self.layout,
            self.fingerprint,
            scale=resolution,
            translation=[s * r for s, r in zip(region.start, resolution or [1.0] * region.ndim, strict=True)],
            unit="nanometer" if resolution else None,
            overwrite=overwrite,
        )
        if "normalization_stats" not in attributes:
            stats = region_stats(self.volume, region, self.info.normalization, self.plan.chunk)
            attributes = {**attributes, "normalization_stats": stats.to_dict(), "created": now().isoformat()}
            store.update_attributes(**attributes)
        return store, attributes

    def _job(self, target: Path, stats: NormalizationStats, token: str, threads: int | None, batch: int) -> BlockJob:
        return BlockJob(
            checkpoint=str(self.checkpoint),
            checkpoint_sha256=self.checkpoint_sha256,
            volume=self.volume,
            roi_start=self.region.start,
            plan=self.plan,
            stats=stats,
            architecture=dict(self.info.architecture),
            output=str(target.resolve()),
            layout=self.layout,
            batch=batch,
            device=self.device,
            threads=threads,
            token=token,
            instance=self.instance,
            runtime=self.runtime,
        )


def stitch_instances(ref: OutputRef, store: VolumeStore, cluster: Cluster, emit: Listener, cancel: CancelToken | None) -> str:
    """Stitch the instance labels of a store whose blocks are all predicted (or skipped): pair the pieces at
    every block face, union them, and rewrite every block not yet relabelled with final ids 1..N, as Dask
    tasks. The number of objects goes into the store's attributes; returns completed or cancelled."""
    plan = ref.plan
    states = store.block_states()
    emit(ProgressEvent(EventKind.MESSAGE, step=plan.count, steps=plan.count, message=f"stitching objects across {plan.count} blocks"))
    blocks = [i for i in range(plan.count) if states[i] != SKIPPED]
    status, results = _map_blocks(cluster, block_merges, ref, blocks, "faces", ref.token, plan, cancel)
    if status != "completed":
        return status
    merges = np.concatenate([np.zeros((0, 4), np.int64), *results])
    try:
        ids, offsets = final_ids(store.block_objects(), merges)
    except ValueError as exc:
        raise DatasetError(f"{exc}: predict a smaller --roi") from exc
    objects = int(ids.max()) if ids.size else 0
    todo = [i for i in range(plan.count) if states[i] == PREDICTED]
    lookups = [block_lookup(ids, offsets, i) for i in todo]
    message = f"{objects} objects ({len(merges)} pieces joined across block faces); writing final ids into {len(todo)} blocks"
    emit(ProgressEvent(EventKind.MESSAGE, step=plan.count, steps=plan.count, message=message))
    status, _ = _map_blocks(cluster, relabel_block, ref, todo, "relabel", ref.token, plan, cancel, lookups)
    if status == "completed":
        store.update_attributes(objects=objects, pieces_joined=len(merges))
    return status


def _stitching_record(instance: InstanceSettings | None, layout: OutputLayout, dims: int) -> dict[str, Any]:
    """The recorded post-processing of an instance prediction ({} for other models)."""
    if instance is None:
        return {}
    return {**instance.record(dims), "instance_stitch_slab": list(layout.slabs), "instance_merge_fraction": MERGE_FRACTION}


def _spatial_axes(info: CheckpointInfo) -> str:
    axes = "zyx" if info.spatial_dims == "3d" else "yx"
    return info.axis_order if info.axis_order and len(info.axis_order) == len(axes) else axes


def _strides(tile: Sequence[int], overlap: float, halo: int | Sequence[int] | None) -> list[int]:
    if halo is None:
        return [tile_stride(t, overlap) for t in tile]
    halos = [int(halo)] * len(tile) if isinstance(halo, int) else [int(h) for h in halo]
    if len(halos) == 1:
        halos = halos * len(tile)
    if len(halos) != len(tile) or any(not 0 <= h < t for h, t in zip(halos, tile, strict=True)):
        raise InputError(f"`halo` {halos}: give one value per axis (or one for all), each 0 <= halo < tile {list(tile)}")
    return [t - h for t, h in zip(tile, halos, strict=True)]


def _block_shape(block: int | Sequence[int] | None, pooling: Sequence[int], dims: int) -> list[int] | None:
    if block is None:
        return None
    values = [int(block)] * dims if isinstance(block, int) else [int(b) for b in block]
    if len(values) == 1:
        values = values * dims
    if len(values) != dims:
        raise InputError(f"`block_shape` has {len(values)} values but the model is {dims}D: give 1 or {dims}")
    small = [(b, p) for b, p in zip(values, pooling, strict=True) if b < p]
    if small:
        raise InputError(
            f"`block_shape` {values} is smaller than the model pools ({list(pooling)} per axis): use at least {max(p for _, p in small)}"
        )
    return values


def _layout(
    architecture: dict[str, Any], labels: bool, probabilities: str | None, spatial_axes: str, slabs: Sequence[int] = ()
) -> OutputLayout:
    """What the output holds. Instance labels are uint32: block-local ids first, final ids 1..N once stitched
    (`instance_stitching.final_ids` refuses more than 2^32 - 1 objects)."""
    channels = int(architecture.get("output_channels") or 1)
    mode = architecture.get("output_mode") or ("multiclass" if channels > 1 else "binary")
    dtype = "uint32" if mode == "instance" else "uint16" if mode == "multiclass" and channels > 256 else "uint8"
    return OutputLayout(
        labels=labels,
        labels_channels=channels if mode == "multilabel" else 0,
        labels_dtype=dtype,
        probabilities=probabilities,
        channels=channels,
        spatial_axes=spatial_axes,
        slabs=tuple(slabs),
    )


def _skip_empty_blocks(store: VolumeStore, plan: BlockPlan, states, mask: BlockMask, origin: Sequence[int]) -> None:
    for index in (states == 0).nonzero()[0]:
        out = plan.out_slices(int(index))
        box = Box(tuple(s.start + o for s, o in zip(out, origin, strict=True)), tuple(s.stop + o for s, o in zip(out, origin, strict=True)))
        if not mask.any(box):
            store.mark_skipped(int(index))


def _voxels(plan: BlockPlan, indices: Sequence[int], states) -> int:
    return sum(math.prod(s.stop - s.start for s in plan.out_slices(i)) for i in indices if states[i] in (PREDICTED, RELABELLED))


def _gpus(device: str | None) -> int:
    """GPUs the local cluster gets one worker each for: all of them when the device is auto."""
    from ..model.device import cuda_available

    if device not in (None, "auto") or not cuda_available():
        return 0
    import torch

    return torch.cuda.device_count()


def _run_blocks(
    job: BlockJob,
    pending: list[int],
    plan: BlockPlan,
    cluster: Cluster,
    emit: Listener,
    cancel: CancelToken | None,
    before: int,
) -> tuple[str, int, float]:
    """(status, blocks predicted, seconds): every pending block as one Dask task."""
    dashboard = f"; dashboard {cluster.dashboard}" if cluster.dashboard else ""
    message = f"{len(pending)} of {plan.count} blocks to predict on {cluster.description}{dashboard}"
    emit(ProgressEvent(EventKind.STARTED, step=before, steps=plan.count, message=message, metrics={"output": job.output, "dashboard": cluster.dashboard}))
    started = time.perf_counter()

    def progress(result: BlockResult, done: int) -> None:
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed > 0 else None
        eta = (len(pending) - done) / rate if rate else None
        emit(
            ProgressEvent(
                EventKind.STEP,
                step=before + done,
                steps=plan.count,
                eta_s=eta,
                metrics={"blocks_per_s": rate, "block": result.index, "block_s": result.seconds},
            )
        )

    status, results = _map_blocks(cluster, run_block, job, pending, "block", job.token, plan, cancel, on_result=progress, finished=before)
    return status, len(results), time.perf_counter() - started


def _map_blocks(
    cluster: Cluster,
    function: Any,
    shared: Any,
    indices: list[int],
    name: str,
    token: str,
    plan: BlockPlan,
    cancel: CancelToken | None,
    extra: list[Any] | None = None,
    *,
    on_result: Any = None,
    finished: int = 0,
) -> tuple[str, list[Any]]:
    """(status, results in completion order): `function(shared, index[, extra])` for every index, one Dask task
    each (`shared` sent to every worker once); cancelled between tasks; a task failing twice stops it all."""
    from distributed import as_completed

    if not indices:
        return "completed", []
    client = cluster.client
    [scattered] = client.scatter([shared], broadcast=True)
    keys = [f"nta-{name}-{i}-{token}" for i in indices]
    columns = [[scattered] * len(indices), indices, *([extra] if extra is not None else [])]
    futures = client.map(function, *columns, key=keys, retries=1, pure=False)
    results: list[Any] = []
    try:
        for future in as_completed(futures):
            if cancel is not None and cancel.cancelled:
                client.cancel(futures)
                return "cancelled", results
            if future.status != "finished":
                _fail(future, plan, finished + len(results))
            results.append(future.result())
            if on_result is not None:
                on_result(results[-1], len(results))
    except BaseException:
        client.cancel(futures)
        raise
    return "completed", results


def _fail(future, plan: BlockPlan, finished: int) -> None:
    exc = future.exception()
    index = int(str(future.key).split("-")[2])
    where = ", ".join(f"{s.start}:{s.stop}" for s in plan.out_slices(index))
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, DatasetError):
        raise DatasetError(f"block {index} ({where}): {text}") from exc
    raise PredictionFailed(
        f"block {index} ({where}) failed twice ({type(exc).__name__}: {text}); {finished} finished block(s) are kept: "
        "run the same command again to resume"
    ) from exc
