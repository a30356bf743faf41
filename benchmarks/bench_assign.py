"""Synapse partner assignment speed: synapses per second of `assign_synapses`, for two window sizes, on 1 and
2 local Dask workers, and where the time goes (reading windows, predicting, voting). Prints one JSON object.

A synthetic EM volume is generated (fixed seed) with many synapses; a point model is trained for one epoch for
each window size (speed does not depend on how well it is trained); assignment runs with `mode="max"`. The
in-process run gives the time split (summed over chunks); the local-cluster runs give the scaling (task phase:
synapses / wall time from the first task to the last, the run summary's synapses_per_s).

    python benchmarks/bench_assign.py            # 48 x 256 x 256 volume
    python benchmarks/bench_assign.py --quick    # 24 x 128 x 128
A CUDA GPU, when present, adds a `gpu` section (1 worker per GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

WINDOWS = {"8x24x24": [8, 24, 24], "16x64x64": [16, 64, 64]}
CHUNK = 8  # synapses per task: enough tasks for two workers on the small generated volumes


def _dataset(folder: Path, shape: tuple[int, int, int], window: list[int]) -> Path:
    from napari_training_assistant.data.synthetic_em import make_em_volume, write_synapse_dataset

    volume = make_em_volume(shape, seed=7, n_synapses=max(48, shape[1] * shape[2] // 400))
    paths = write_synapse_dataset(folder, volume=volume)
    spec = yaml.safe_load(paths["spec"].read_text())
    spec["window_size"] = window
    spec["training"]["loss_crop_pad"] = [0, 0, 0]
    paths["spec"].write_text(yaml.safe_dump(spec))
    return paths["spec"]


def _train(spec: Path) -> float:
    from napari_training_assistant.train import TrainOptions
    from napari_training_assistant.train.point_run import train_points

    started = time.perf_counter()
    result = train_points(spec, TrainOptions(epochs=1, device="cpu"))
    assert result.status == "completed", result.status
    return time.perf_counter() - started


def _assign(spec: Path, output: Path, **options: Any) -> dict[str, Any]:
    from napari_training_assistant.assign.run import assign_synapses

    started = time.perf_counter()
    result = assign_synapses(spec, output=output, overwrite=True, **options)
    wall = time.perf_counter() - started
    summary = result.summary
    split = summary["time_s"]
    total = sum(split.values()) or 1.0
    return {
        "synapses": result.synapses,
        "chunks": result.chunks,
        "wall_s": round(wall, 2),
        "synapses_per_s_wall": round(result.synapses / wall, 1),
        "synapses_per_s_tasks": summary["synapses_per_s"],
        "reads": summary["reads"],
        "time_fraction": {name: round(seconds / total, 3) for name, seconds in split.items()},
        "cluster": summary.get("cluster"),
    }


def run(quick: bool) -> dict[str, Any]:
    import torch

    shape = (24, 128, 128) if quick else (48, 256, 256)
    out: dict[str, Any] = {
        "benchmark": "assign_synapses: synapses/s by window size, 1 vs 2 local Dask workers, time split",
        "quick": quick,
        "volume_shape": list(shape),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "windows": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, window in WINDOWS.items():
            spec = _dataset(Path(tmp) / name, shape, window)
            case: dict[str, Any] = {"train_1_epoch_s": round(_train(spec), 1)}
            case["in_process"] = _assign(spec, Path(tmp) / f"{name}_in", scheduler="in-process", chunk_points=CHUNK)
            for workers in (1, 2):
                case[f"local_{workers}_workers"] = _assign(spec, Path(tmp) / f"{name}_w{workers}", workers=workers, chunk_points=CHUNK)
            case["speedup_2_workers_tasks"] = round(case["local_2_workers"]["synapses_per_s_tasks"] / case["local_1_workers"]["synapses_per_s_tasks"], 3)
            case["speedup_2_workers_wall"] = round(case["local_1_workers"]["wall_s"] / case["local_2_workers"]["wall_s"], 3)
            case["synapses"] = case["in_process"]["synapses"]
            if torch.cuda.is_available():
                case["gpu"] = _assign(spec, Path(tmp) / f"{name}_gpu", device="auto", chunk_points=256)
            out["windows"][name] = case
    if not torch.cuda.is_available():
        out["gpu"] = {"skipped": "no CUDA device: synapses/s per GPU not measured"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller volume (a few minutes on 2 cores)")
    args = parser.parse_args()
    print(json.dumps(run(args.quick)))


if __name__ == "__main__":
    main()
