"""`nta demo` / `make demo`: the main job on generated sample data, start to finish."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data.synthetic_nuclei import make_nuclei, nuclei_dataset
from .project import TrainingProject
from .project.errors import ProjectError

DEMO_NAME = "nta-demo"
DEMO_PAIRS = 10
DEMO_EPOCHS = 10
UNSEEN_SEED = 999


def _replace_old_demo(folder: Path) -> None:
    """Remove a previous demo project; refuse to touch any other folder."""
    if not folder.exists():
        return
    if TrainingProject.is_project(folder) and TrainingProject.open(folder).name == DEMO_NAME:
        shutil.rmtree(folder)
        return
    if folder.is_dir() and not any(folder.iterdir()):
        return
    raise ProjectError(f"{folder} exists and is not a demo project: choose another --dir")


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    p, t = prediction > 0, truth > 0
    return float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1))


def run_demo(folder: Path, *, pairs: int = DEMO_PAIRS, epochs: int = DEMO_EPOCHS, echo=print) -> dict[str, Any]:
    """Create a project from generated nuclei images, train, benchmark, predict an unseen image."""
    from .predict.project_prediction import predict_array
    from .project.image_io import read_tiff
    from .train import TrainOptions, train_project

    start = time.perf_counter()
    folder = Path(folder)
    _replace_old_demo(folder)
    project = TrainingProject.create(folder, DEMO_NAME, class_names=["background", "nucleus"])
    echo(f"created demo project at {project.root}")
    for index, (image, labels) in enumerate(nuclei_dataset(pairs, seed=100)):
        project.dataset.add(image, labels, mask_mode="binary", image_layer=f"nuclei_{index}", mask_layer=f"nuclei_{index}_labels", source="imported")
    counts = project.dataset.split_counts()
    echo(f"added {pairs} image/mask pairs: train {counts['train']}, val {counts['val']}, benchmark {counts['benchmark']}")
    result = train_project(project, TrainOptions(epochs=epochs), listener=_epoch_printer(echo))
    image, truth = make_nuclei(seed=UNSEEN_SEED)
    prediction = predict_array(project, image, source=f"generated nuclei image (seed {UNSEEN_SEED})", checkpoint_id=result.checkpoint_id)
    prediction_path = project.layout.absolute(prediction.path).resolve()
    unseen_dice = _dice(read_tiff(prediction_path), truth)
    elapsed = time.perf_counter() - start
    bench = result.benchmark or {}
    summary = {
        "project": str(project.root.resolve()),
        "checkpoint_id": result.checkpoint_id,
        "benchmark_dice": bench.get("dice"),
        "benchmark_iou": bench.get("iou"),
        "benchmark_pairs": bench.get("n_images"),
        "val_dice": result.metrics.get("dice"),
        "unseen_image_dice": round(unseen_dice, 4),
        "train_time_s": result.duration_s,
        "total_time_s": round(elapsed, 1),
        "curves_png": result.curves_path,
        "prediction_path": str(prediction_path),
    }
    echo("")
    width = max(map(len, summary))
    for key, value in summary.items():
        echo(f"{key.ljust(width)}  {value:.3f}" if isinstance(value, float) else f"{key.ljust(width)}  {value}")
    return summary


def _epoch_printer(echo):
    from .train.events import EventKind

    def show(event) -> None:
        if event.kind == EventKind.STARTED:
            echo(event.message)
        elif event.kind == EventKind.EPOCH:
            m = event.metrics
            echo(
                f"  epoch {event.epoch}/{event.epochs}  loss {m.get('train_loss', float('nan')):.3f}  "
                f"val Dice {m.get('val_dice', float('nan')):.3f}  ETA {event.eta_s or 0:.0f} s"
            )

    return show
