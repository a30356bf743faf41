"""`nta demo` / `make demo`: the main job on generated sample data, start to finish."""

from __future__ import annotations

import json
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


DEMO_MARKER = ".nta-demo"


def _replace_old_demo(folder: Path) -> None:
    """Remove a previous demo project, only when it is exactly what `nta demo` left there: its marker
    file, the dataset it generated (same pairs and contents), no other files, no links. Any other folder
    (even a project that happens to be named like the demo) is refused, never deleted."""
    if not folder.exists() or (folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir())):
        return
    why = _not_an_untouched_demo(folder)
    if why:
        raise ProjectError(f"{folder} exists and {why}: choose another --dir (the demo replaces only its own untouched folder)")
    shutil.rmtree(folder)


def _not_an_untouched_demo(folder: Path) -> str:
    marker = folder / DEMO_MARKER
    if folder.is_symlink() or not folder.is_dir() or not TrainingProject.is_project(folder) or not marker.is_file():
        return "is not a demo project"
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("dataset_sha256")
        project = TrainingProject.open(folder)
        if project.name != DEMO_NAME or recorded != project.dataset.content_sha256():
            return "is a demo project whose dataset was changed"
    except (ValueError, AttributeError, OSError, ProjectError):
        return "is not a readable demo project"
    known = {p.relative_to(folder).parts[0] for p in (*project.layout.folders(), *project.layout.json_files())}
    known |= {"project_config.json.bak", ".nta.lock", DEMO_MARKER}
    extra = sorted(p.name for p in folder.iterdir() if p.name not in known)
    if extra:
        return f"holds files the demo did not write ({', '.join(extra[:3])})"
    if any(p.is_symlink() for p in folder.rglob("*")):
        return "holds symbolic links"
    return ""


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
    (project.root / DEMO_MARKER).write_text(json.dumps({"dataset_sha256": project.dataset.content_sha256()}) + "\n", encoding="utf-8")
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
        "benchmark_object_accuracy_50": bench.get("instance_accuracy_50"),  # connected components at IoU 0.5
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
