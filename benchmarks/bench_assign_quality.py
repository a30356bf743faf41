"""Synapse partner assignment quality on volumes the model never saw. Prints one JSON object.

A training volume is generated (seed 0) and a point model is trained on it with the generated spec's
defaults (targets, window, augmentation, epochs chosen for the time budget). Fresh volumes are generated with
other seeds (different membranes, cells, contrast, noise: `synthetic_em.Style`) and, on each:

* window Dice per channel: every synapse's window (as training cuts it: centre marker, normalisation) is
  predicted and compared with its targets, Dice over all windows at the model's threshold;
* assignment accuracy (pre, post, both-correct) of `max`, `threshold` and the `dilate_nearest` baseline.

    python benchmarks/bench_assign_quality.py                         # 32x256x256 training volume, seeds 2027 4242
    python benchmarks/bench_assign_quality.py --seeds 11 12 13 --budget-minutes 5
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

TRAIN_SHAPE = (32, 256, 256)
FRESH_SHAPE = (32, 128, 128)


def _write(folder: Path, shape, seed: int, project: Path | None = None, budget: float | None = None) -> Path:
    from napari_training_assistant.data.synthetic_em import write_synapse_dataset

    paths = write_synapse_dataset(folder, shape=shape, seed=seed)
    spec = yaml.safe_load(paths["spec"].read_text())
    if project is not None:
        spec["project"] = str(project)
    if budget is not None:
        spec["training"]["time_budget_minutes"] = budget
    paths["spec"].write_text(yaml.safe_dump(spec, sort_keys=False))
    return paths["spec"]


def window_dice(checkpoint: Path, spec_path: Path, loss_crop_pad=None) -> dict[str, float]:
    """Dice per output channel over every synapse window of the spec's regions (train and val tags), on the
    part of each window the loss saw (`loss_crop_pad`, as validation measures it)."""
    import torch

    from napari_training_assistant.data.point_windows import PointWindowDataset
    from napari_training_assistant.model.checkpoint_info import read_checkpoint_info
    from napari_training_assistant.model.checkpoint_io import load_model
    from napari_training_assistant.train.point_inputs import load_point_inputs
    from napari_training_assistant.train.point_spec import load_spec

    spec, base = load_spec(spec_path)
    info = read_checkpoint_info(checkpoint)
    spec = spec.model_copy(update={"targets": info.targets or spec.targets})
    inputs = load_point_inputs(spec, base, spec_path)
    dataset = PointWindowDataset(
        inputs.train_regions + inputs.val_regions,
        target_form=spec.targets,
        label_keys=spec.label_keys() if spec.targets == "labels" else ("label0", "label1"),
        centre_marker=bool(info.centre_marker),
        loss_crop_pad=loss_crop_pad,
    )
    model = load_model(checkpoint)
    threshold = float(info.architecture.get("threshold") or 0.5)
    overlap = torch.zeros(2, dtype=torch.float64)
    total = torch.zeros(2, dtype=torch.float64)
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    with torch.no_grad():
        for batch in loader:
            predicted = (torch.sigmoid(model(batch["image"])) > threshold).double() * batch["valid"]
            target = batch["target"].double() * batch["valid"]
            dims = (0, *range(2, target.ndim))
            overlap += (predicted * target).sum(dims)
            total += predicted.sum(dims) + target.sum(dims)
    dice = (2 * overlap / total.clamp(min=1)).tolist()
    return {"pre": round(dice[0], 4), "post": round(dice[1], 4), "windows": len(dataset)}


def _assign(spec: Path, output: Path, mode: str) -> dict[str, Any]:
    from napari_training_assistant.assign.run import assign_synapses

    result = assign_synapses(spec, mode=mode, scheduler="in-process", evaluate=True, output=output, overwrite=True)
    overall = result.summary["evaluation"]["overall"]
    return {part: overall[part]["accuracy"] for part in ("pre", "post", "both")} | {"n": overall["n"]}


def run(seeds: list[int], budget: float, keep: Path | None = None) -> dict[str, Any]:
    import torch

    from napari_training_assistant.train import TrainOptions
    from napari_training_assistant.train.point_run import train_points

    out: dict[str, Any] = {
        "benchmark": "assignment quality on fresh generated volumes (window Dice, accuracy vs dilate_nearest)",
        "train_volume": {"shape": list(TRAIN_SHAPE), "seed": 0},
        "budget_minutes": budget,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(keep or tmp)
        train_spec = _write(root / "train", TRAIN_SHAPE, 0, budget=budget)
        started = time.perf_counter()
        result = train_points(train_spec, TrainOptions(device="cpu"))
        out["train"] = {
            "status": result.status,
            "seconds": round(time.perf_counter() - started, 1),
            "epochs": next((d["value"] for d in result.decisions if d["setting"] == "epochs"), None),
            "val_dice": {k: round(v["dice"], 4) for k, v in (result.metrics.get("per_channel") or {}).items()},
        }
        checkpoint = Path(result.checkpoint_path)
        project = (train_spec.parent / yaml.safe_load(train_spec.read_text())["project"]).resolve()
        out["fresh"] = {}
        for seed in seeds:
            spec = _write(root / f"fresh_{seed}", FRESH_SHAPE, seed, project=project)
            crop = yaml.safe_load(train_spec.read_text())["training"]["loss_crop_pad"]
            case: dict[str, Any] = {"window_dice": window_dice(checkpoint, spec, crop), "whole_window_dice": window_dice(checkpoint, spec)}
            for mode in ("max", "threshold", "dilate_nearest"):
                case[mode] = _assign(spec, root / f"out_{seed}_{mode}", mode)
            out["fresh"][str(seed)] = case
        cases = list(out["fresh"].values())
        out["mean"] = {
            "window_dice_pre": round(sum(c["window_dice"]["pre"] for c in cases) / len(cases), 4),
            "window_dice_post": round(sum(c["window_dice"]["post"] for c in cases) / len(cases), 4),
            **{
                f"{mode}_both": round(sum(c[mode]["both"] * c[mode]["n"] for c in cases) / sum(c[mode]["n"] for c in cases), 4)
                for mode in ("max", "threshold", "dilate_nearest")
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2027, 4242], help="fresh volumes (never used to tune)")
    parser.add_argument("--budget-minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--keep", type=Path, help="write into this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    print(json.dumps(run(args.seeds, args.budget_minutes, args.keep)))


if __name__ == "__main__":
    main()
