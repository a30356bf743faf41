"""Block-wise prediction (`predict_volume`): peak memory against volume size, throughput against the
in-memory `predict_image`, and scaling over Dask workers (CPU processes; GPUs where there are some).

All 2D images of blurred blobs on noise, generated with a fixed seed and written to Zarr strip by strip
(generating a volume never holds it whole either). Prints one JSON object.

memory      `predict_volume(scheduler="in-process", block_shape=2048)` in a fresh child process per volume
            size, under a memory cap: RLIMIT_DATA (heap and private anonymous memory), set in the child
            before exec. RLIMIT_AS at the same cap is tried too and reported (it counts the virtual
            reservations of torch and Dask: ~1.6 GiB VmPeak). Two float32 volumes (4 bytes a voxel: over
            the cap in half the CPU time of uint16), the larger 4x the smaller and over the cap; a control
            child that loads the larger one whole under the same cap shows the cap bites. The child
            reports its own peak RSS (VmHWM) of the set-up (imports, Dask, model, normalisation
            statistics, output store) and, after resetting the peak (/proc/self/clear_refs), of the block
            phase. A run that fails under the cap is repeated without it to measure its peak. A tiny
            network (depth 1, 4 channels; tiles 256, halo 32) keeps the CPU time of a volume over the cap
            to a minute or two: the network's memory does not depend on the volume.
throughput  small U-Net (depth 3, base 16), tiles 256, overlap 0.5, batch 4, this process's torch threads,
            uint16 image that fits in memory: in memory (Zarr -> numpy, percentile normalisation,
            `predict_image`, labels) against `predict_volume(scheduler="in-process")` with the default
            block shape and with one of half the image's edge (`recompute_ratio`: tiles run / tiles of one
            whole-image pass). Warm-up first, then the variants alternate `--repeats` times; medians.
            Ratios are of wall-clock voxels/s of whole calls; `_per_tile` divides out the recomputed tiles.
scaling     same network, `predict_volume(scheduler="local")`, workers=1 (1 process x all cores as torch
            threads) against workers=cores (processes x 1 thread): wall time of the whole call (cluster
            start-up, statistics, output store), voxels/s of the block phase (`VolumeResult.voxels_per_s`;
            each worker's first block loads torch and the model there) and steady voxels/s (blocks
            finished after each worker's first). Also run without Dask's worker MALLOC_TRIM_THRESHOLD_
            (see `without_dask_malloc_trim`), and in-process as a reference. Each once (--quick) or
            twice, alternating (at most `--repeats` times).
gpu         with CUDA only (else skipped with a note): `predict_image` on one GPU, and `predict_volume`
            with scheduler "local" on 1 GPU worker and on one worker per GPU.

    python benchmarks/bench_predict_volume.py --quick   # about 2-3 minutes on 2 idle cores
    python benchmarks/bench_predict_volume.py           # about 10 minutes on 2 idle cores
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20
SEED = 0
INPUT_CHUNK = 512  # Zarr chunk edge of the generated inputs
STRIP_ROWS = 512  # rows generated and written at a time

# memory section: a tiny network so that a volume larger than the cap is predicted in minutes
MEMORY_ARCH = {"preset": "custom", "depth": 1, "base_channels": 4}
MEMORY_TILE, MEMORY_HALO, MEMORY_BLOCK = 256, 32, 2048
# throughput, scaling and GPU sections: the small U-Net preset
NETWORK_ARCH = {"preset": "small_unet"}  # depth 3, base 16
TILE, OVERLAP, BATCH = 256, 0.5, 4

SIZES = {
    # memory: (columns, rows of the smaller volume, cap MiB), float32; the larger has 4x the rows.
    #   quick: 176 and 704 MiB under 640 MiB; the smaller is under EXACT_STATS_VOXELS (read whole for
    #   its statistics). full: 544 MiB and 2.1 GiB under 1 GiB, both above it (statistics sampled).
    # throughput: square image edge; scaling: (rows, columns, block edge)
    "quick": {"memory": (8192, 5632, 640), "throughput": 1024, "scaling": (1024, 2048, 512)},
    "full": {"memory": (16384, 8704, 1024), "throughput": 2048, "scaling": (2048, 4096, 1024)},
}
MEMORY_DTYPE = "float32"  # 4 bytes a voxel: a volume over the cap in half the voxels (CPU time) of uint16


# ---- data ----------------------------------------------------------------------------------------------


def blob_strip(rows: int, cols: int, seed: int, index: int, dtype: str = "uint16") -> np.ndarray:
    """(rows, cols) of `dtype`: noise around 200 plus blurred blobs of ~1000, reproducible per strip."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng((seed, index))
    coarse = np.zeros((math.ceil(rows / 4), math.ceil(cols / 4)), np.float32)
    count = coarse.size // 400
    coarse[rng.integers(0, coarse.shape[0], count), rng.integers(0, coarse.shape[1], count)] = 1.0
    blobs = gaussian_filter(coarse, 1.5)
    blobs *= np.float32(1000.0 / max(float(blobs.max()), 1e-6))
    image = np.repeat(np.repeat(blobs, 4, axis=0), 4, axis=1)[:rows, :cols]
    image += rng.integers(150, 250, size=(rows, cols), dtype=np.uint16)
    return image.astype(dtype)


def write_volume(
    path: Path, shape: tuple[int, int], seed: int = SEED, dtype: str = "uint16"
) -> dict[str, Any]:
    """A 2D Zarr array of blobs written strip by strip (never held whole); reused when present."""
    import zarr

    if not (path / ".zarray").is_file():
        started = time.perf_counter()
        array = zarr.open_array(
            str(path), mode="w", shape=shape, chunks=(INPUT_CHUNK, INPUT_CHUNK), dtype=dtype, zarr_format=2
        )
        for index, row in enumerate(range(0, shape[0], STRIP_ROWS)):
            rows = min(STRIP_ROWS, shape[0] - row)
            array[row : row + rows] = blob_strip(rows, shape[1], seed, index, dtype)
        generated = round(time.perf_counter() - started, 2)
    else:
        generated = None
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    return {
        "shape": list(shape),
        "dtype": dtype,
        "voxels": math.prod(shape),
        "bytes": nbytes,
        "generated_s": generated,
    }


def write_checkpoint(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    import torch

    from napari_training_assistant.model import build_model, save_checkpoint
    from napari_training_assistant.project.schemas.architecture import default_architecture

    architecture = default_architecture("2d", **overrides).model_dump()
    torch.manual_seed(SEED)
    model = build_model(architecture).eval()
    save_checkpoint(path, model, architecture, {"normalization": "percentile"})
    return {
        "depth": architecture["depth"],
        "base_channels": architecture["base_channels"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# ---- child process (memory section) ---------------------------------------------------------------------


def _status_kib(*keys: str) -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in keys:
                values[name] = int(rest.split()[0])
    return values


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process under the parent's limits; returns what it measured (printed as JSON)."""
    if spec["kind"] == "load":  # control: hold the whole volume, as the in-memory path must
        import zarr

        array = zarr.open_array(spec["source"], mode="r")
        try:
            whole = array[...]
        except MemoryError as exc:
            return {"held_whole": False, "error": _describe(exc)}
        return {"held_whole": True, "bytes": int(whole.nbytes)}

    from napari_training_assistant.predict.volume_prediction import predict_volume
    from napari_training_assistant.progress import EventKind

    imported = _status_kib("VmRSS")["VmRSS"]
    marks: dict[str, Any] = {}

    def listen(event: Any) -> None:
        if event.kind == EventKind.STARTED and "setup" not in marks:
            marks["setup"] = _status_kib("VmHWM", "VmData")
            try:  # reset the peak RSS: what follows is the block phase alone
                Path("/proc/self/clear_refs").write_text("5")
                marks["reset"] = True
            except OSError:
                marks["reset"] = False

    try:
        result = predict_volume(
            spec["checkpoint"],
            spec["source"],
            spec["target"],
            scheduler="in-process",
            block_shape=spec["block"],
            tile_size=spec["tile"],
            halo=spec["halo"],
            overwrite=True,
            listener=listen,
        )
    except Exception as exc:  # noqa: BLE001 - reported: which phase ran out of memory, and where
        return {
            "status": "failed",
            "error": _describe(exc),
            "failed_in": "blocks" if "setup" in marks else "set-up (cluster, statistics, output store)",
            **_peaks(imported, marks),
        }
    return {
        "status": result.status,
        "blocks": result.blocks,
        "seconds": result.seconds,
        "voxels_per_s": result.voxels_per_s,
        "recompute_ratio": result.parameters["recompute_ratio"],
        "halo": result.parameters["halo"],
        "block_shape": result.parameters["block_shape"],
        **_peaks(imported, marks),
    }


def _describe(exc: BaseException) -> str:
    """'Type: message (at file:line in function)' of the innermost frame."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}{where}"


def _peaks(imported_kib: int, marks: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of the set-up, of the block phase (after the reset) and of the whole run, in MiB."""
    end = _status_kib("VmHWM", "VmData", "VmPeak")
    setup = marks.get("setup", {}).get("VmHWM")
    reset = bool(marks.get("reset"))
    return {
        "rss_after_imports_mib": _mib(imported_kib),
        "peak_rss_setup_mib": _mib(setup) if setup else None,
        "peak_rss_blocks_mib": _mib(end["VmHWM"]) if reset else None,
        # without a reset, VmHWM at the end is the peak of the whole run
        "peak_rss_mib": _mib(max(end["VmHWM"], setup or 0) if reset else end["VmHWM"]),
        "vm_data_end_mib": _mib(end["VmData"]),
        "vm_peak_mib": _mib(end["VmPeak"]),
    }


def run_child(spec: dict[str, Any], limit: tuple[int, int] | None) -> dict[str, Any]:
    """`child_main(spec)` in a fresh interpreter with resource `limit` (resource id, bytes) set first."""

    def limit_memory() -> None:
        if limit is not None:
            resource.setrlimit(limit[0], (limit[1], limit[1]))

    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=errors,
            preexec_fn=limit_memory,  # noqa: PLW1509 - only setrlimit, before exec
        )
        output = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        tail = [line.strip() for line in errors.read().decode(errors="replace").strip().splitlines()[-3:]]
    try:
        report = json.loads(output.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        report = {"status": "failed", "exit_code": proc.returncode, "error": " | ".join(tail)[:400] or None}
    # the parent's view (wait4): the child's peak after its reset, i.e. not the set-up's
    report["ru_maxrss_seen_by_parent_mib"] = round(usage.ru_maxrss / 1024, 1)
    return report


# ---- sections ----------------------------------------------------------------------------------------------


def memory_section(work: Path, quick: bool) -> dict[str, Any]:
    from napari_training_assistant.predict.volume_inputs import EXACT_STATS_VOXELS

    width, rows, cap_mib = SIZES["quick" if quick else "full"]["memory"]
    cap = cap_mib * MIB
    checkpoint = work / "memory_net.pt"
    network = write_checkpoint(checkpoint, MEMORY_ARCH)
    specs, cases = [], []
    for factor in (1, 4):
        shape = (rows * factor, width)
        source = work / f"memory_{shape[0]}x{shape[1]}_{MEMORY_DTYPE}.zarr"
        volume = write_volume(source, shape, dtype=MEMORY_DTYPE)
        spec = {
            "kind": "predict",
            "checkpoint": str(checkpoint),
            "source": str(source),
            "target": str(work / "memory_out.zarr"),
            "block": MEMORY_BLOCK,
            "tile": MEMORY_TILE,
            "halo": MEMORY_HALO,
        }
        report = run_child(spec, (resource.RLIMIT_DATA, cap))
        if report.get("status") != "completed":  # measure its peak without the cap
            report = {**run_child(spec, None), "under_cap": report}
        specs.append(spec)
        cases.append(
            {
                "volume": volume,
                "volume_mib": round(volume["bytes"] / MIB, 1),
                "statistics": "exact (whole region read)"
                if volume["voxels"] <= EXACT_STATS_VOXELS
                else "sampled",
                **report,
            }
        )
    small, large = cases
    ok = small.get("status") == "completed" and large.get("status") == "completed"
    under_cap = [c.get("under_cap", {}).get("status", c.get("status")) for c in cases]
    # the cap is real: holding the larger volume whole under it fails
    control = run_child({"kind": "load", "source": specs[1]["source"]}, (resource.RLIMIT_DATA, cap))
    # RLIMIT_AS (address space) at the same cap, on the smaller volume
    as_report = run_child(specs[0], (resource.RLIMIT_AS, cap))
    return {
        "network": {**network, "tile": MEMORY_TILE, "halo": MEMORY_HALO},
        "block_shape": [MEMORY_BLOCK, MEMORY_BLOCK],
        "cap": {
            "mib": cap_mib,
            "enforced_with": "RLIMIT_DATA (setrlimit in the child before exec)",
            "control_load_larger_volume_whole": control,
            "rlimit_as_at_cap": {
                "works": as_report.get("status") == "completed",
                "error": as_report.get("error"),
                "failed_in": as_report.get("failed_in"),
                "vm_peak_of_the_runs_above_mib": [c.get("vm_peak_mib") for c in cases],
            },
        },
        "volume_mib": [small["volume_mib"], large["volume_mib"]],
        "status_under_cap": under_cap,
        "volume_ratio": round(large["volume"]["bytes"] / small["volume"]["bytes"], 2),
        "larger_volume_over_cap": large["volume"]["bytes"] > cap,
        "peak_rss_mib": [small.get("peak_rss_mib"), large.get("peak_rss_mib")],
        "peak_rss_ratio": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3) if ok else None,
        "peak_rss_blocks_mib": [small.get("peak_rss_blocks_mib"), large.get("peak_rss_blocks_mib")],
        "peak_rss_blocks_ratio": (
            round(large["peak_rss_blocks_mib"] / small["peak_rss_blocks_mib"], 3)
            if ok and small["peak_rss_blocks_mib"] and large["peak_rss_blocks_mib"]
            else None
        ),
        "larger_peak_rss_below_volume_bytes": bool(
            ok and large["peak_rss_mib"] * MIB < large["volume"]["bytes"]
        ),
        "cases": cases,
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def throughput_section(work: Path, quick: bool, repeats: int) -> dict[str, Any]:
    import torch
    import zarr

    from napari_training_assistant.model import load_model
    from napari_training_assistant.predict import predict_image, probabilities_to_labels
    from napari_training_assistant.predict.volume_prediction import predict_volume
    from napari_training_assistant.preprocess import normalize

    edge = SIZES["quick" if quick else "full"]["throughput"]
    small_block = edge // 2
    checkpoint = work / "network.pt"
    network = write_checkpoint(checkpoint, NETWORK_ARCH)
    source = work / f"throughput_{edge}.zarr"
    volume = write_volume(source, (edge, edge))
    warm_source = work / "throughput_warm.zarr"
    write_volume(warm_source, (edge // 2, edge // 2), seed=SEED + 1)
    model = load_model(checkpoint)
    architecture = model.architecture
    voxels = edge * edge

    def in_memory(path: Path) -> tuple[float, float, float, np.ndarray]:
        started, cpu = time.perf_counter(), time.process_time()
        image = zarr.open_array(str(path), mode="r")[...]
        normalised = normalize(image, "percentile", channel_axis_first=False)
        begun = time.perf_counter()
        probabilities = predict_image(model, normalised, tile_size=TILE, overlap=OVERLAP, batch_size=BATCH)
        predicted = time.perf_counter() - begun
        labels = probabilities_to_labels(probabilities, architecture)
        return time.perf_counter() - started, time.process_time() - cpu, predicted, labels

    def blockwise(path: Path, block: int | None, name: str) -> tuple[float, float, Any]:
        started, cpu = time.perf_counter(), time.process_time()
        result = predict_volume(
            checkpoint,
            path,
            work / f"out_{name}.zarr",
            scheduler="in-process",
            block_shape=block,
            tile_size=TILE,
            overlap=OVERLAP,
            batch_size=BATCH,
            overwrite=True,
        )
        return time.perf_counter() - started, time.process_time() - cpu, result

    variants = {"default_block": None, "small_block": small_block}
    in_memory(warm_source)
    for name, block in variants.items():
        blockwise(warm_source, block, f"warm_{name}")
    wall: dict[str, list[float]] = {"in_memory": [], "predict_image": [], **{k: [] for k in variants}}
    cpu: dict[str, list[float]] = {"in_memory": [], **{k: [] for k in variants}}
    block_rate: dict[str, list[float]] = {k: [] for k in variants}
    results: dict[str, Any] = {}
    labels = None
    load_before = os.getloadavg()[0]
    for rep in range(repeats):
        order = ["in_memory", *variants]
        for name in order if rep % 2 == 0 else order[::-1]:
            if name == "in_memory":
                total, seconds_cpu, predicted, labels = in_memory(source)
                wall["in_memory"].append(total)
                wall["predict_image"].append(predicted)
            else:
                total, seconds_cpu, result = blockwise(source, variants[name], name)
                wall[name].append(total)
                block_rate[name].append(result.voxels_per_s)
                results[name] = result
            cpu[name].append(seconds_cpu)
    rates = {k: voxels / statistics.median(v) for k, v in wall.items()}
    variants_out = {}
    for name in variants:
        written = zarr.open_array(str(work / f"out_{name}.zarr" / "labels" / "0"), mode="r")[...]
        params = results[name].parameters
        variants_out[name] = {
            "block_shape": params["block_shape"],
            "blocks": results[name].blocks,
            "recompute_ratio": params["recompute_ratio"],
            "halo": params["halo"],
            "wall_s": _median(wall[name]),
            "voxels_per_s": round(rates[name]),
            "block_phase_voxels_per_s": round(statistics.median(block_rate[name])),
            "ratio_vs_in_memory": round(rates[name] / rates["in_memory"], 3),
            "ratio_vs_in_memory_per_tile": round(
                rates[name] / rates["in_memory"] * params["recompute_ratio"], 3
            ),
            "cpu_s": _median(cpu[name]),
            "cpu_ratio_vs_in_memory": round(
                statistics.median(cpu["in_memory"]) / statistics.median(cpu[name]), 3
            ),
            "block_phase_ratio_vs_predict_image": round(
                statistics.median(block_rate[name]) / rates["predict_image"], 3
            ),
            "labels_equal_fraction": float(np.mean(written == labels)),
            "runs_s": [round(t, 3) for t in wall[name]],
        }
    return {
        "network": {**network, "tile": TILE, "overlap": OVERLAP, "batch_size": BATCH},
        "torch_threads": torch.get_num_threads(),
        "image": volume,
        "in_memory": {
            "what": "Zarr -> numpy, percentile normalisation, predict_image, probabilities_to_labels",
            "wall_s": _median(wall["in_memory"]),
            "voxels_per_s": round(rates["in_memory"]),
            "cpu_s": _median(cpu["in_memory"]),
            "runs_s": [round(t, 3) for t in wall["in_memory"]],
        },
        "predict_image": {
            "wall_s": _median(wall["predict_image"]),
            "voxels_per_s": round(rates["predict_image"]),
            "runs_s": [round(t, 3) for t in wall["predict_image"]],
        },
        "predict_volume_in_process": variants_out,
        "goal": "ratio_vs_in_memory >= 0.9 (whole calls, wall clock)",
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def timed_cluster_run(
    checkpoint: Path,
    source: Path,
    target: Path,
    workers: int,
    block: int,
    scheduler: str = "local",
    **options: Any,
) -> dict[str, Any]:
    """`predict_volume(scheduler=...)`: wall time of the call, voxels/s of its block phase, the steady
    voxels/s (of the blocks finished after each worker's first, which loads torch and the model there),
    and the CPU seconds and minor page faults of the worker processes (their lifetime up to the last
    block; in-process: this process during the call), which depend less on other load than wall time."""
    from napari_training_assistant.predict.volume_prediction import predict_volume
    from napari_training_assistant.progress import EventKind

    finished: list[float] = []
    usage: dict[str, float] = {}

    def worker_usage() -> tuple[float, int]:  # defined here: pickled by value to the workers
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime, own.ru_minflt

    def listen(event: Any) -> None:
        if event.kind == EventKind.STEP:
            finished.append(time.perf_counter())
            if scheduler == "local" and event.step == event.steps:  # the cluster still runs
                from distributed import default_client

                rows = default_client().run(worker_usage).values()
                usage.update(cpu=sum(r[0] for r in rows), faults=sum(r[1] for r in rows))

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = predict_volume(
        checkpoint,
        source,
        target,
        scheduler=scheduler,
        workers=workers if scheduler == "local" else None,
        block_shape=block,
        tile_size=TILE,
        overlap=OVERLAP,
        batch_size=BATCH,
        overwrite=True,
        listener=listen,
        **options,
    )
    wall = time.perf_counter() - started
    if scheduler != "local":
        after = resource.getrusage(resource.RUSAGE_SELF)
        usage.update(
            cpu=after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            faults=after.ru_minflt - before.ru_minflt,
        )
    block_voxels = block * block  # the benchmark's images are whole multiples of the block
    later = len(finished) - workers
    steady = later * block_voxels / (finished[-1] - finished[workers - 1]) if later > 0 else None
    return {
        "wall": wall,
        "rate": result.voxels_per_s,
        "steady": steady,
        "cpu": usage.get("cpu"),
        "faults": usage.get("faults"),
        "parameters": result.parameters,
    }


@contextlib.contextmanager
def without_dask_malloc_trim() -> Iterator[None]:
    """Worker processes spawned without Dask's MALLOC_TRIM_THRESHOLD_=65536 (distributed.nanny.pre-spawn-environ).

    Setting it at all turns off glibc's dynamic mmap threshold: torch's large buffers are then mapped and
    unmapped for every batch (page faults). A Nanny also copies it into this process's environment, where
    later clusters would inherit it: it is removed for the duration and put back afterwards."""
    import dask

    saved = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            yield
    finally:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        if saved is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = saved


def _cluster_summary(done: list[dict[str, Any]], voxels: int) -> dict[str, Any]:
    steady = [r["steady"] for r in done if r["steady"]]
    walls = [r["wall"] for r in done]
    return {
        "cluster": done[-1]["parameters"].get("cluster"),
        "wall_s": _median(walls),
        "voxels_per_s": round(voxels / statistics.median(walls)),
        "block_phase_voxels_per_s": round(statistics.median([r["rate"] for r in done])),
        "steady_voxels_per_s": round(statistics.median(steady)) if steady else None,
        "worker_cpu_s": _median([r["cpu"] for r in done])
        if all(r["cpu"] is not None for r in done)
        else None,
        "worker_minor_page_faults": round(statistics.median([r["faults"] for r in done]))
        if all(r["faults"] is not None for r in done)
        else None,
        "runs_s": [round(w, 3) for w in walls],
    }


def _speedup(one: dict[str, Any], many: dict[str, Any]) -> dict[str, Any]:
    return {
        "wall": round(one["wall_s"] / many["wall_s"], 3),
        "block_phase": round(many["block_phase_voxels_per_s"] / one["block_phase_voxels_per_s"], 3),
        "steady": round(many["steady_voxels_per_s"] / one["steady_voxels_per_s"], 3)
        if one["steady_voxels_per_s"] and many["steady_voxels_per_s"]
        else None,
    }


def scaling_section(work: Path, quick: bool, repeats: int, cores: int) -> dict[str, Any]:
    import torch

    rows, cols, block = SIZES["quick" if quick else "full"]["scaling"]
    checkpoint = work / "network.pt"
    if not checkpoint.exists():
        write_checkpoint(checkpoint, NETWORK_ARCH)
    source = work / f"scaling_{rows}x{cols}.zarr"
    volume = write_volume(source, (rows, cols))
    target = work / "out_scaling.zarr"
    configs = [(n, trim) for trim in (True, False) for n in sorted({1, max(1, cores)})]
    runs: dict[tuple[int, bool], list[dict[str, Any]]] = {c: [] for c in configs}
    in_process = []
    timed_cluster_run(checkpoint, source, target, 1, block, scheduler="in-process", device="cpu")  # warm-up
    for rep in range(repeats):
        for workers, trim in configs if rep % 2 == 0 else configs[::-1]:
            with contextlib.nullcontext() if trim else without_dask_malloc_trim():
                runs[workers, trim].append(
                    timed_cluster_run(checkpoint, source, target, workers, block, device="cpu")
                )
        in_process.append(
            timed_cluster_run(checkpoint, source, target, 1, block, scheduler="in-process", device="cpu")
        )
    parameters = runs[configs[0]][-1]["parameters"]
    voxels = rows * cols
    counts = sorted({n for n, _ in configs})
    out: dict[str, Any] = {
        "image": volume,
        "network": "as in throughput",
        "block_shape": [block, block],
        "blocks": parameters["blocks"],
        "recompute_ratio": parameters["recompute_ratio"],
        "cpu_cores": cores,
        "in_process_reference": {
            "what": f"scheduler='in-process' in this warm process: 1 worker thread, {torch.get_num_threads()} torch threads",
            **{k: v for k, v in _cluster_summary(in_process, voxels).items() if k != "cluster"},
        },
        "workers": {str(n): _cluster_summary(runs[n, True], voxels) for n in counts},
        "workers_without_dask_malloc_trim": {
            str(n): _cluster_summary(runs[n, False], voxels) for n in counts
        },
    }
    if len(counts) > 1:
        out["speedup"] = _speedup(out["workers"]["1"], out["workers"][str(counts[-1])])
        out["speedup_without_dask_malloc_trim"] = _speedup(
            out["workers_without_dask_malloc_trim"]["1"],
            out["workers_without_dask_malloc_trim"][str(counts[-1])],
        )
    return out


def gpu_section(work: Path, quick: bool, repeats: int) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {
            "skipped": "no CUDA device (torch.cuda.is_available() is False): voxels/s per GPU not measured"
        }
    import zarr

    from napari_training_assistant.model import load_model
    from napari_training_assistant.predict import predict_image
    from napari_training_assistant.preprocess import normalize

    gpus = torch.cuda.device_count()
    edge, block = (4096, 1024) if quick else (8192, 2048)
    checkpoint = work / "network.pt"
    if not checkpoint.exists():
        write_checkpoint(checkpoint, NETWORK_ARCH)
    source = work / f"gpu_{edge}.zarr"
    volume = write_volume(source, (edge, edge))
    image = normalize(zarr.open_array(str(source), mode="r")[...], "percentile", channel_axis_first=False)
    model = load_model(checkpoint).to("cuda")
    predict_image(model, image[:1024, :1024], tile_size=TILE, overlap=OVERLAP, batch_size=BATCH)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        predict_image(model, image, tile_size=TILE, overlap=OVERLAP, batch_size=BATCH)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    del model, image
    torch.cuda.empty_cache()
    out: dict[str, Any] = {
        "gpus": gpus,
        "name": torch.cuda.get_device_name(0),
        "image": volume,
        "block_shape": [block, block],
        "predict_image_voxels_per_s": round(edge * edge / statistics.median(times)),
        "workers": {},
    }
    for workers in sorted({1, gpus}):
        done = [
            timed_cluster_run(checkpoint, source, work / "out_gpu.zarr", workers, block)
            for _ in range(repeats)
        ]
        rate = statistics.median([r["rate"] for r in done])
        steady = [r["steady"] for r in done if r["steady"]]
        out["workers"][str(workers)] = {
            "cluster": done[-1]["parameters"].get("cluster"),
            "wall_s": _median([r["wall"] for r in done]),
            "block_phase_voxels_per_s": round(rate),
            "block_phase_voxels_per_s_per_gpu": round(rate / workers),
            "steady_voxels_per_s": round(statistics.median(steady)) if steady else None,
        }
    if gpus > 1:
        w = out["workers"]
        out["speedup_all_gpus_block_phase"] = round(
            w[str(gpus)]["block_phase_voxels_per_s"] / w["1"]["block_phase_voxels_per_s"], 3
        )
    return out


# ---- main ----------------------------------------------------------------------------------------------------


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller volumes (about 2-3 minutes on 2 cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant (median reported)")
    parser.add_argument("--sections", default="memory,throughput,scaling,gpu", help="comma-separated subset")
    parser.add_argument(
        "--workdir", type=Path, help="keep generated volumes here (default: a temporary folder)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_main(json.loads(args.child))))
        return
    import torch

    wanted = set(args.sections.split(","))
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    cores = _cores()
    with tempfile.TemporaryDirectory(prefix="bench_predict_volume_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {
            "benchmark": "predict_volume: peak RSS vs volume size, throughput vs predict_image, worker scaling",
            "quick": args.quick,
            "repeats": args.repeats,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": cores,
            "machine": platform.machine(),
        }
        if "memory" in wanted:
            report["memory"] = memory_section(work, args.quick)
        if "throughput" in wanted:
            report["throughput"] = throughput_section(work, args.quick, args.repeats)
        if "scaling" in wanted:
            report["scaling"] = scaling_section(
                work, args.quick, 1 if args.quick else min(args.repeats, 2), cores
            )
        if "gpu" in wanted:
            report["gpu"] = gpu_section(work, args.quick, args.repeats)
    report["load_avg_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    report["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
