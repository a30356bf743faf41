"""Training-loop efficiency: samples/s of the full loop (sampling, augmentation, step, logging, events)
divided by samples/s of a bare forward+backward+optimizer loop on pre-made tensors, same process.

Default 2D U-Net (depth 4, base 32), 256x256 patches, batch 8, CPU. Prints one JSON object.
Per-step times come from the engine's own STEP events (first step skipped as warm-up); the ratio
uses medians. Goal: ratio >= 0.90.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from napari_training_assistant import TrainingProject
from napari_training_assistant.data.synthetic_nuclei import nuclei_dataset
from napari_training_assistant.model import build_model
from napari_training_assistant.project.schemas import ArchitectureConfig
from napari_training_assistant.train import EventKind, TrainOptions, train_project
from napari_training_assistant.train.losses import make_loss


def full_loop_step_times(root: Path, steps: int, batch: int, patch: int) -> list[float]:
    project = TrainingProject.create(root / "bench", "bench")
    for image, labels in nuclei_dataset(6, shape=(512, 512), seed=7):
        project.dataset.add(image, labels)
    stamps: list[float] = []

    def listen(event) -> None:
        if event.kind == EventKind.STEP:
            stamps.append(time.perf_counter())

    options = TrainOptions(
        epochs=1,
        patch_size=[patch, patch],
        batch_size=batch,
        samples_per_epoch=steps * batch,
        device="cpu",
        keep_architecture=True,
        run_benchmark=False,
    )
    train_project(project, options, listener=listen)
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def bare_loop_step_times(steps: int, batch: int, patch: int) -> list[float]:
    architecture = ArchitectureConfig().model_dump()
    torch.manual_seed(0)
    model = build_model(architecture).train()
    loss_fn = make_loss(architecture)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    images = torch.rand(batch, 1, patch, patch)
    targets = (torch.rand(batch, 1, patch, patch) > 0.7).float()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), targets)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=7, help="steps per loop (the first is warm-up)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # bare loop before and after the full loop, so drifting machine load affects both sides alike
        bare = bare_loop_step_times(args.steps, args.batch, args.patch)
        full = full_loop_step_times(Path(tmp), args.steps, args.batch, args.patch)
        bare += bare_loop_step_times(args.steps, args.batch, args.patch)
    bare_median, full_median = statistics.median(bare), statistics.median(full)
    print(
        json.dumps(
            {
                "benchmark": "training_loop_efficiency",
                "model": "default 2D U-Net (depth 4, base 32)",
                "patch": [args.patch, args.patch],
                "batch": args.batch,
                "torch_threads": torch.get_num_threads(),
                "bare_step_s_median": round(bare_median, 3),
                "full_step_s_median": round(full_median, 3),
                "bare_samples_per_s": round(args.batch / bare_median, 3),
                "full_samples_per_s": round(args.batch / full_median, 3),
                "ratio": round(bare_median / full_median, 3),
                "goal": ">= 0.90",
                "bare_step_s": [round(t, 3) for t in bare],
                "full_step_s": [round(t, 3) for t in full],
            }
        )
    )


if __name__ == "__main__":
    main()
