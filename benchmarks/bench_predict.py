"""Sliding-window prediction speed: `predict_image` vs MONAI's `sliding_window_inference`, and the
ONNX runtime (`nta predict --runtime onnx`) beside them.

Same model object, same input, same tiles (roi), overlap 0.5, Gaussian weighting with
sigma = tile/8 (MONAI sigma_scale 0.125), same batch of tiles, the same activation applied to
MONAI's blended logits, both under torch.inference_mode, torch threads left as they are. The ONNX
runtime is `predict_image` around the same weights exported to ONNX and run by onnxruntime on the
CPU with as many threads as torch (`onnx_over_torch`: its median time over PyTorch's, same run;
`onnx_max_abs_diff`: probabilities vs PyTorch's). Each case is warmed up once (on a crop that makes
the same batch shapes), then the runners are timed in rotating order `--repeats` times; medians are
reported. Prints one JSON object.

    python benchmarks/bench_predict.py            # 2048^2 2D, 192^3 3D (slow on 2 cores)
    python benchmarks/bench_predict.py --quick    # 1024^2 2D, 128^3 3D
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_training_assistant.model import build_model, save_checkpoint
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


def onnx_unet(model: torch.nn.Module, folder: Path) -> tuple[torch.nn.Module, float]:
    """(the model as `nta predict --runtime onnx` runs it, seconds to save, export and open it)."""
    from napari_training_assistant.predict.onnx_runtime import onnx_model

    start = time.perf_counter()
    path = folder / "model.pt"
    save_checkpoint(path, model, model.architecture, {})
    onnx = onnx_model(path, "cpu")
    return onnx, time.perf_counter() - start


def run_case(
    name: str, arch: dict[str, Any], shape: tuple[int, ...], tile: tuple[int, ...], repeats: int, onnx: bool
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(arch).eval()
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    batch = default_batch_size(tile)
    softmax = uses_softmax(model.architecture)
    n_tiles = len(list(iter_tiles(shape, tile, OVERLAP)))
    stride = int(tile[0] * (1 - OVERLAP))
    runners = {"ours": (ours_predict, model), "monai": (monai_predict, model)}
    extra: dict[str, Any] = {}
    if onnx:  # the same tiling (predict_image) around the ONNX session
        with tempfile.TemporaryDirectory() as folder:
            onnx_net, export_s = onnx_unet(model, Path(folder))
        runners["onnx"] = (ours_predict, onnx_net)
        extra = {"onnx_export_s": round(export_s, 3), "onnx_provider": onnx_net.provider}
    # warm-up crop: batch + 1 tiles, so both the full and the last (single-tile) batch shapes occur
    warm = image[tuple(slice(0, t + batch * stride if i == 0 else t) for i, t in enumerate(tile))]
    for fn, net in runners.values():
        fn(net, warm, tile, batch, softmax)
    times: dict[str, list[float]] = {key: [] for key in runners}
    results: dict[str, np.ndarray] = {}
    keys = list(runners)
    for rep in range(repeats):
        for key in keys[rep % len(keys) :] + keys[: rep % len(keys)]:  # rotate who goes first
            fn, net = runners[key]
            start = time.perf_counter()
            results[key] = fn(net, image, tile, batch, softmax)
            times[key].append(time.perf_counter() - start)
    median = {key: statistics.median(values) for key, values in times.items()}
    report = {
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
        "ours_s": round(median["ours"], 3),
        "monai_s": round(median["monai"], 3),
        "speed_ratio": round(median["monai"] / median["ours"], 3),
        "max_abs_diff": float(np.abs(results["ours"] - results["monai"]).max()),
    }
    if onnx:
        report.update(
            onnx_s=round(median["onnx"], 3),
            onnx_over_torch=round(median["onnx"] / median["ours"], 3),
            onnx_max_abs_diff=float(np.abs(results["onnx"] - results["ours"]).max()),
            **extra,
        )
    report.update({f"{key}_runs_s": [round(t, 3) for t in values] for key, values in times.items()})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median reported)")
    parser.add_argument("--quick", action="store_true", help="1024^2 2D image and 128^3 3D volume")
    parser.add_argument("--cases", default="2d,3d", help="comma-separated subset of 2d,3d")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX runtime (needs the 'share' extra)")
    args = parser.parse_args()
    import monai

    onnx = not args.no_onnx
    cases = []
    wanted = set(args.cases.split(","))
    load_before = os.getloadavg()[0]
    if "2d" in wanted:
        size = 1024 if args.quick else 2048
        arch = default_architecture("2d").model_dump()
        cases.append(run_case("2d_default_unet", arch, (size, size), (256, 256), args.repeats, onnx))
    if "3d" in wanted:
        size = 128 if args.quick else 192
        arch = default_architecture("3d", preset="small_unet").model_dump()
        cases.append(run_case("3d_small_unet", arch, (size,) * 3, (96, 96, 96), args.repeats, onnx))
    report = {
        "benchmark": "predict_image vs monai.inferers.sliding_window_inference"
        + (" and predict_image on onnxruntime" if onnx else ""),
        "quick": args.quick,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "onnxruntime": _version("onnxruntime") if onnx else None,
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
