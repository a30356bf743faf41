"""Point-window sampling speed: windows sliced from the region cache vs read from the Zarr store, and
vs the windows a training step consumes. Prints one JSON object.

Volume: x=512, y=512, z=128 (zyx shape (128, 512, 512)) uint8 Zarr v3, 64^3 chunks, with two uint8
label layers (pre, post) of the same shape; one region covering the whole volume; 2,000 random
points; windows 16x64x64 (zyx).

* cached: `cache_regions` (each layer read once), then every point's item from `RegionWindows`
  (normalised image, 2-channel targets, loss mask), one by one and through a DataLoader (batch 4);
* direct: per point, `open_volume(...).read(window)` of the image (and of all three layers); only
  `--direct-sample` points are timed and the rate is extrapolated to all points (said in the JSON);
* training: one step (forward, masked loss, backward, AdamW) of the spec's model: 3D U-Net depth 3,
  base 16, anisotropic levels from resolution [40, 4, 4], batch 4, CPU; median over timed steps.

Goals: cached / direct >= 20x; `sampler_vs_training_ratio` (cached windows/s over the windows/s
training consumes) >= 10x.

    python benchmarks/bench_point_windows.py [--points 2000] [--direct-sample 200] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_training_assistant.data.annotations import Region, Synapse
from napari_training_assistant.data.geometry import Box, centred_window
from napari_training_assistant.data.point_windows import LayerSet, cache_regions
from napari_training_assistant.data.point_windows.window_dataset import RegionWindows
from napari_training_assistant.data.synthetic_em import spec_dict
from napari_training_assistant.data.volumes import open_volume
from napari_training_assistant.model import build_model
from napari_training_assistant.train.point_extras import window_loss
from napari_training_assistant.train.point_run import architecture_for
from napari_training_assistant.train.point_spec import PointSpec

SHAPE = (128, 512, 512)  # z, y, x
CHUNKS = (64, 64, 64)
WINDOW = (16, 64, 64)
BATCH = 4
MiB = 2**20


def write_layers(folder: Path, seed: int = 0) -> dict[str, Path]:
    import zarr

    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    texture = (np.sin(y / 7.0) + np.cos(x / 9.0) + np.sin(z / 3.0)).astype(np.float32)  # smooth structure
    image = np.clip(128 + 40 * texture + rng.normal(0, 20, SHAPE).astype(np.float32), 0, 255).astype(np.uint8)
    layers = {"img": image, "pre": (image > 150).astype(np.uint8), "post": (image < 100).astype(np.uint8)}
    paths = {}
    for name, data in layers.items():
        paths[name] = folder / f"{name}.zarr"
        array = zarr.create_array(store=str(paths[name]), shape=SHAPE, chunks=CHUNKS, dtype=np.uint8, zarr_format=3, overwrite=True)
        array[...] = data
    return paths


def open_layers(paths: dict[str, Path]) -> LayerSet:
    return LayerSet(open_volume(paths["img"]), {"label0": open_volume(paths["pre"]), "label1": open_volume(paths["post"])})


def resident_bytes() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def best_time(run, repeats: int) -> float:
    """The fastest of `repeats` runs (the cores are shared: slower runs measure the neighbours)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_cache(paths: dict[str, Path], points: list[tuple[float, ...]], repeats: int) -> dict:
    layers = open_layers(paths)
    region = Region(Box((0, 0, 0), SHAPE), frozenset(["train"]), "whole volume")
    synapses = [Synapse(i, p) for i, p in enumerate(points)]
    rss_before = resident_bytes()
    started = time.perf_counter()
    (cached,), report = cache_regions(layers, [region], synapses, WINDOW)
    build_s = time.perf_counter() - started
    rss_after = resident_bytes()
    dataset = RegionWindows(cached, target_form="labels", loss_crop_pad=(1, 4, 4))

    def items() -> None:
        for i in range(len(dataset)):
            dataset[i]

    def loader() -> None:
        for _ in torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0):
            pass

    def slicing() -> None:  # the bare minimum: indexer + slicing of the three cached arrays
        for i in range(len(cached.indexer)):
            where = cached.indexer(i).slices(cached.box.start)
            for array in cached.arrays.values():
                np.ascontiguousarray(array[where])

    n = len(dataset)
    items_s, loader_s, slicing_s = best_time(items, repeats), best_time(loader, repeats), best_time(slicing, repeats)
    return {
        "points": n,
        "cache_box_zyx": list(cached.box.shape),
        "cache_build_s": round(build_s, 3),
        "cache_bytes": cached.nbytes,
        "cache_mib": round(cached.nbytes / MiB, 1),
        "cache_estimate_bytes": report.estimated_bytes,
        "resident_growth_mib": round((rss_after - rss_before) / MiB, 1) if rss_before and rss_after else None,
        "timing": f"best of {repeats} passes over all points",
        "items_windows_per_s": round(n / items_s, 1),
        "dataloader_windows_per_s": round(n / loader_s, 1),
        "slicing_only_windows_per_s": round(n / slicing_s, 1),
        "items_total_s": round(items_s, 3),
        "build_plus_items_windows_per_s": round(n / (build_s + items_s), 1),
    }


def bench_direct(paths: dict[str, Path], points: list[tuple[float, ...]], sample: int, repeats: int) -> dict:
    chosen = points[:sample]
    image = open_volume(paths["img"])
    layers = open_layers(paths)

    def image_only() -> None:
        for p in chosen:
            image.read(centred_window(p, WINDOW))

    def all_layers() -> None:
        for p in chosen:
            box = centred_window(p, WINDOW)
            for _, source in layers.items():
                source.read(box)

    image_s, all_s = best_time(image_only, repeats), best_time(all_layers, repeats)
    return {
        "timed_windows": len(chosen),
        "extrapolated_to": len(points),
        "note": f"direct reads timed on {len(chosen)} of {len(points)} points (best of {repeats}) and extrapolated linearly",
        "image_only_windows_per_s": round(len(chosen) / image_s, 2),
        "all_layers_windows_per_s": round(len(chosen) / all_s, 2),
        "image_only_extrapolated_total_s": round(image_s * len(points) / len(chosen), 1),
        "all_layers_extrapolated_total_s": round(all_s * len(points) / len(chosen), 1),
    }


def bench_training(steps: int, seed: int = 0) -> dict:
    spec = PointSpec.model_validate({**spec_dict(WINDOW, partners=False), "project": "bench"})
    architecture = architecture_for(spec).model_dump(mode="json")
    torch.manual_seed(seed)
    model = build_model(architecture).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    loss_fn = window_loss(architecture, "default", 0.05)
    g = torch.Generator().manual_seed(seed)
    image = torch.rand((BATCH, 1, *WINDOW), generator=g)
    target = (torch.rand((BATCH, 2, *WINDOW), generator=g) > 0.7).float()
    valid = torch.ones_like(target)
    times = []
    for step in range(steps + 1):  # the first step is a warm-up
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(image), target, valid)
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - started)
    step_s = statistics.median(times)
    return {
        "model": f"3D U-Net depth {architecture['depth']} base {architecture['base_channels']}, "
        f"anisotropic levels {architecture['anisotropic_levels']}",
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": BATCH,
        "timed_steps": len(times),
        "step_s_median": round(step_s, 3),
        "step_s_all": [round(t, 3) for t in times],
        "windows_per_s": round(BATCH / step_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--direct-sample", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="passes per timing; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    points = [tuple(float(v) for v in rng.uniform(0, SHAPE)) for _ in range(args.points)]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = write_layers(Path(tmp), args.seed)
        write_s = time.perf_counter() - started
        cached = bench_cache(paths, points, args.repeats)
        direct = bench_direct(paths, points, args.direct_sample, args.repeats)
    training = bench_training(args.steps, args.seed)
    cached_rate = cached["items_windows_per_s"]
    result = {
        "benchmark": "point_windows",
        "volume_zyx": list(SHAPE),
        "chunks": list(CHUNKS),
        "window_zyx": list(WINDOW),
        "layers": ["img uint8", "pre uint8", "post uint8"],
        "write_s": round(write_s, 2),
        "cached": cached,
        "direct": direct,
        "training": training,
        "cached_vs_direct_ratio": round(cached_rate / direct["all_layers_windows_per_s"], 1),
        "cached_vs_direct_image_only_ratio": round(cached_rate / direct["image_only_windows_per_s"], 1),
        "cached_slicing_vs_direct_ratio": round(cached["slicing_only_windows_per_s"] / direct["all_layers_windows_per_s"], 1),
        "ratios_note": "cached = RegionWindows items (normalised image, targets, loss mask); direct = raw reads "
        "of all three layers (no item building); slicing = indexer + raw slices of the three cached arrays",
        "sampler_vs_training_ratio": round(cached_rate / training["windows_per_s"], 1),
        "sampler_vs_training_ratio_dataloader": round(cached["dataloader_windows_per_s"] / training["windows_per_s"], 1),
        "goals": {"cached_vs_direct_ratio": ">= 20", "sampler_vs_training_ratio": ">= 10"},
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after: shared cores
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
