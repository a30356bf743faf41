"""`nta demo` / `make demo`: the main job on generated sample data."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from .data.synthetic_nuclei import nuclei_dataset
from .project import TrainingProject
from .project.errors import ProjectError
from .project.status import project_status

DEMO_NAME = "nta-demo"
DEMO_PAIRS = 6


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


def run_demo(folder: Path, *, pairs: int = DEMO_PAIRS, echo=print) -> dict[str, Any]:
    """Create a demo project from generated nuclei images, add pairs, report its status."""
    start = time.perf_counter()
    folder = Path(folder)
    _replace_old_demo(folder)
    project = TrainingProject.create(folder, DEMO_NAME, class_names=["background", "nucleus"])
    echo(f"created demo project at {project.root}")
    for index, (image, labels) in enumerate(nuclei_dataset(pairs, seed=100)):
        record = project.dataset.add(
            image, labels, mask_mode="binary", image_layer=f"nuclei_{index}", mask_layer=f"nuclei_{index}_labels", source="imported"
        )
        echo(f"  {record.pair_id} [{record.split:9}] {len(record.source_labels) - 1} nuclei, {record.label_transform}")
    status = project_status(project)
    elapsed = time.perf_counter() - start
    counts = status["split_counts"]
    echo("")
    echo(f"project   {status['project_name']}  {status['project_path']}")
    echo(f"dataset   {status['dataset_count']} pairs: train {counts['train']}, val {counts['val']}, benchmark {counts['benchmark']}")
    echo(f"state     {status['state']}")
    echo(f"time      {elapsed:.1f} s")
    return {**status, "elapsed_s": round(elapsed, 2)}
