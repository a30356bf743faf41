"""`nta demo` / `make demo`: the main job on generated sample data, start to finish: train an instance model,
predict, correct, retrain from latest."""

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
DEMO_EPOCHS = 25
DEMO_LR = 0.003  # measured: reaches the object accuracy of 30 epochs at 0.001 in about half the epochs
RETRAIN_EPOCHS = 6  # continuing from latest with the corrected image: a short, gentler run
RETRAIN_LR = 0.001
UNSEEN_SEED = 999
# generated images of the demo and the instance benchmark: clusters of touching nuclei of varied size and brightness
TOUCHING_NUCLEI = {"n_nuclei": 30, "radius_range": (6.0, 13.0), "touching": 0.5, "brightness_range": (0.3, 1.0)}


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


def _object_accuracy(prediction: np.ndarray, truth: np.ndarray) -> float:
    from .train.instance_metrics import match

    return round(match(truth, prediction)[0].accuracy, 4)  # IoU 0.5


def correct_like_a_user(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """What a user's edit of `predicted` would give, with `truth` standing in for their eye: objects that match a
    true one (IoU > 0.5) are kept as predicted, with their ids; the others (merged, split, spurious) are erased
    and every true object left unmatched is painted in with a new id."""
    from .train.instance_metrics import iou_matrix

    iou = iou_matrix(truth, predicted)
    true_ids, pred_ids = np.unique(truth[truth > 0]), np.unique(predicted[predicted > 0])
    good = iou > 0.5  # above 0.5 an object has at most one partner
    corrected = np.where(np.isin(predicted, pred_ids[~good.any(axis=0)]), 0, predicted).astype(np.uint32)
    next_id = int(predicted.max()) + 1
    for true_id in true_ids[~good.any(axis=1)]:
        corrected[truth == true_id] = next_id
        next_id += 1
    return corrected


def _write_marker(project: TrainingProject) -> None:
    (project.root / DEMO_MARKER).write_text(json.dumps({"dataset_sha256": project.dataset.content_sha256()}) + "\n", encoding="utf-8")


def run_demo(folder: Path, *, pairs: int = DEMO_PAIRS, epochs: int = DEMO_EPOCHS, echo=print) -> dict[str, Any]:
    """The loop on generated touching nuclei: create an instance project, train, benchmark, predict an unseen
    image, correct its wrong objects (ground truth standing in for the user's eye), retrain from latest, show the change."""
    from .predict.project_prediction import predict_array
    from .project.corrections import add_corrected_prediction
    from .project.image_io import read_tiff
    from .train import TrainOptions, train_project

    start = time.perf_counter()
    folder = Path(folder)
    _replace_old_demo(folder)
    project = TrainingProject.create(folder, DEMO_NAME, class_names=["background", "nucleus"], output_mode="instance")
    echo(f"created demo project at {project.root} (instance output: touching nuclei are separate objects)")
    for index, (image, labels) in enumerate(nuclei_dataset(pairs, seed=100, **TOUCHING_NUCLEI)):
        project.dataset.add(image, labels, image_layer=f"nuclei_{index}", mask_layer=f"nuclei_{index}_labels", source="imported")
    _write_marker(project)
    counts = project.dataset.split_counts()
    echo(f"added {pairs} image/mask pairs: train {counts['train']}, val {counts['val']}, benchmark {counts['benchmark']}")
    result = train_project(project, TrainOptions(epochs=epochs, learning_rate=DEMO_LR), listener=_epoch_printer(echo))
    bench = result.benchmark or {}
    echo(f"benchmark: Dice {bench.get('dice', 0):.3f}, objects found at IoU 0.5 (accuracy) {bench.get('instance_accuracy_50', 0):.3f}")

    image, truth = make_nuclei(seed=UNSEEN_SEED, **TOUCHING_NUCLEI)
    prediction = predict_array(project, image, source=f"generated nuclei image (seed {UNSEEN_SEED})", checkpoint_id=result.checkpoint_id)
    prediction_path = project.layout.absolute(prediction.path).resolve()
    predicted = read_tiff(prediction_path)
    echo(f"predicted an unseen image: {int(predicted.max())} objects ({int(truth.max())} true)")
    corrected = add_corrected_prediction(project, prediction.prediction_id, correct_like_a_user(predicted, truth), image=image)
    _write_marker(project)
    fix = corrected.correction or {}
    echo(
        f"corrected it (ground truth standing in for you): {fix.get('objects_edited')} of {fix.get('objects_predicted')} objects "
        f"edited, {fix.get('changed_pixels')} pixels; added as {corrected.pair_id} ({corrected.split})"
    )
    again = train_project(project, TrainOptions(epochs=RETRAIN_EPOCHS, learning_rate=RETRAIN_LR, start="latest"), listener=_epoch_printer(echo))
    after = again.benchmark or {}
    elapsed = time.perf_counter() - start
    summary = {
        "project": str(project.root.resolve()),
        "checkpoint_id": result.checkpoint_id,
        "benchmark_dice": bench.get("dice"),
        "benchmark_iou": bench.get("iou"),
        "benchmark_pairs": bench.get("n_images"),
        "benchmark_object_accuracy_50": bench.get("instance_accuracy_50"),  # instances at IoU 0.5
        "val_dice": result.metrics.get("dice"),
        "unseen_image_dice": round(_dice(predicted, truth), 4),
        "unseen_image_object_accuracy_50": _object_accuracy(predicted, truth),
        "corrected_objects": fix.get("objects_edited"),
        "retrained_checkpoint_id": again.checkpoint_id,
        "retrained_benchmark_dice": after.get("dice"),
        "retrained_object_accuracy_50": after.get("instance_accuracy_50"),
        "change_dice": _change(bench.get("dice"), after.get("dice")),
        "change_object_accuracy_50": _change(bench.get("instance_accuracy_50"), after.get("instance_accuracy_50")),
        "train_time_s": result.duration_s,
        "retrain_time_s": again.duration_s,
        "total_time_s": round(elapsed, 1),
        "curves_png": result.curves_path,
        "prediction_path": str(prediction_path),
    }
    echo("")
    width = max(map(len, summary))
    for key, value in summary.items():
        echo(f"{key.ljust(width)}  {value:+.3f}" if key.startswith("change_") and value is not None else f"{key.ljust(width)}  {value:.3f}" if isinstance(value, float) else f"{key.ljust(width)}  {value}")
    return summary


def _change(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 4)


def _epoch_printer(echo):
    from .train.events import EventKind

    def show(event) -> None:
        if event.kind in (EventKind.STARTED, EventKind.MESSAGE):
            echo(event.message)
        elif event.kind == EventKind.EPOCH:
            m = event.metrics
            objects = f"  objects {m['val_instance_accuracy_50']:.3f}" if "val_instance_accuracy_50" in m else ""
            echo(
                f"  epoch {event.epoch}/{event.epochs}  loss {m.get('train_loss', float('nan')):.3f}  "
                f"val Dice {m.get('val_dice', float('nan')):.3f}{objects}  ETA {event.eta_s or 0:.0f} s"
            )

    return show
