"""Sliding-window prediction speed: `predict_image` vs MONAI's `sliding_window_inference`.

Same model object, same input, same tiles (roi), overlap 0.5, Gaussian weighting with
sigma = tile/8 (MONAI sigma_scale 0.125), same batch of tiles, the same activation applied to
MONAI's blended logits, both under torch.inference_mode, torch threads left as they are.
Each case is warmed up once (on a crop that makes the same batch shapes), then the two are
timed alternately `--repeats` times; medians are reported. Prints one JSON object.

    python benchmarks/bench_predict.py            # 2048^2 2D, 192^3 3D (slow on 2 cores)
    python benchmarks/bench_predict.py --quick    # 1024^2 2D, 128^3 3D
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch

from napari_training_assistant.model import build_model
from napari_training_assistant.predict import iter_tiles, predict_image
from napari_training_assistant.predict.tiling import default_batch_size, uses_softmax
from napari_training_assistant.project.schemas.architecture import default_architecture

OVERLAP = 0.5


def monai_predict(
    model: torch.nn.Module, image: np.ndarray, tile: tuple[int, ...], batch: int, softmax: bool
) -> np.ndarray:
    from monai.inferers import sliding_window_inference

    with torch.inference_mode():
        x = torch.from_numpy(image)[None, None]
        logits = sliding_window_inference(
            x, tile, batch, model, overlap=OVERLAP, mode="gaussian", sigma_scale=0.125
        )[0]
        prob = torch.softmax(logits, dim=0) if softmax else torch.sigmoid(logits)
    return prob.numpy()


def ours_predict(
    model: torch.nn.Module, image: np.ndarray, tile: tuple[int, ...], batch: int, softmax: bool
) -> np.ndarray:
    return predict_image(model, image, tile_size=tile, overlap=OVERLAP, batch_size=batch)


def run_case(
    name: str, arch: dict[str, Any], shape: tuple[int, ...], tile: tuple[int, ...], repeats: int
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(arch).eval()
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    batch = default_batch_size(tile)
    softmax = uses_softmax(model.architecture)
    n_tiles = len(list(iter_tiles(shape, tile, OVERLAP)))
    stride = int(tile[0] * (1 - OVERLAP))
    # warm-up crop: batch + 1 tiles, so both the full and the last (single-tile) batch shapes occur
    warm = image[tuple(slice(0, t + batch * stride if i == 0 else t) for i, t in enumerate(tile))]
    for fn in (ours_predict, monai_predict):
        fn(model, warm, tile, batch, softmax)
    times: dict[str, list[float]] = {"ours": [], "monai": []}
    results: dict[str, np.ndarray] = {}
    for rep in range(repeats):
        order = [("ours", ours_predict), ("monai", monai_predict)]
        for key, fn in order if rep % 2 == 0 else order[::-1]:  # alternate who goes first
            start = time.perf_counter()
            results[key] = fn(model, image, tile, batch, softmax)
            times[key].append(time.perf_counter() - start)
    ours_s, monai_s = statistics.median(times["ours"]), statistics.median(times["monai"])
    return {
        "case": name,
        "architecture": {
            k: arch_value
            for k, arch_value in model.architecture.items()
            if k in ("spatial_dims", "depth", "base_channels", "normalization", "upsampling", "output_mode")
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "image_shape": list(shape),
        "tile": list(tile),
        "overlap": OVERLAP,
        "batch_size": batch,
        "tiles": n_tiles,
        "ours_s": round(ours_s, 3),
        "monai_s": round(monai_s, 3),
        "speed_ratio": round(monai_s / ours_s, 3),
        "max_abs_diff": float(np.abs(results["ours"] - results["monai"]).max()),
        "ours_runs_s": [round(t, 3) for t in times["ours"]],
        "monai_runs_s": [round(t, 3) for t in times["monai"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median reported)")
    parser.add_argument("--quick", action="store_true", help="1024^2 2D image and 128^3 3D volume")
    parser.add_argument("--cases", default="2d,3d", help="comma-separated subset of 2d,3d")
    args = parser.parse_args()
    import monai

    cases = []
    wanted = set(args.cases.split(","))
    load_before = os.getloadavg()[0]
    if "2d" in wanted:
        size = 1024 if args.quick else 2048
        arch = default_architecture("2d").model_dump()
        cases.append(run_case("2d_default_unet", arch, (size, size), (256, 256), args.repeats))
    if "3d" in wanted:
        size = 128 if args.quick else 192
        arch = default_architecture("3d", preset="small_unet").model_dump()
        cases.append(run_case("3d_small_unet", arch, (size,) * 3, (96, 96, 96), args.repeats))
    report = {
        "benchmark": "predict_image vs monai.inferers.sliding_window_inference",
        "quick": args.quick,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "device": "cpu",
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cases": cases,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
