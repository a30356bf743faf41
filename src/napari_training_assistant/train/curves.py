"""Loss and Dice curves of a run, drawn from its metrics CSV (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path


def read_metrics(csv_path: Path) -> dict[str, list[tuple[int, float]]]:
    """Column -> [(epoch, value)] from Lightning's CSVLogger file (rows with empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = {}
    if not csv_path.exists():
        return series
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            epoch = row.get("epoch")
            if epoch in (None, ""):
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                series.setdefault(key, []).append((int(float(epoch)) + 1, float(value)))
    return series


def write_curves(csv_path: Path, png_path: Path, title: str) -> Path | None:
    """Two panels: train/val loss, val Dice/IoU per epoch. Returns the PNG path (None without data)."""
    series = read_metrics(csv_path)
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.2), dpi=100)
    loss_ax, score_ax = figure.subplots(1, 2)
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        if key in series:
            epochs, values = zip(*series[key], strict=True)
            loss_ax.plot(epochs, values, marker="o", markersize=3, label=label)
    for key, label in (("val_dice", "val Dice"), ("val_iou", "val IoU")):
        if key in series:
            epochs, values = zip(*series[key], strict=True)
            score_ax.plot(epochs, values, marker="o", markersize=3, label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    score_ax.set(xlabel="epoch", ylim=(0, 1), title="validation")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, score_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path)
    return png_path


def write_curves_off_thread(csv_path: Path, png_path: Path, title: str) -> Path | None:
    """`write_curves`, drawn in a child process when called from a worker thread.

    Matplotlib's renderer holds the GIL for long stretches (200-400 ms for this figure); a run in a
    worker thread of a GUI process (e.g. `train_project` called from a notebook's or an application's
    thread) would freeze that GUI, while waiting on a child process releases the GIL. From the main
    thread (the CLI, the napari widget's training process) it draws in-process.
    """
    import subprocess
    import sys
    import threading

    if threading.current_thread() is threading.main_thread():
        return write_curves(csv_path, png_path, title)
    code = "import sys; from pathlib import Path; from napari_training_assistant.train.curves import write_curves as w; w(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])"
    done = subprocess.run([sys.executable, "-c", code, str(csv_path), str(png_path), title], capture_output=True, timeout=300)
    if done.returncode != 0 or not png_path.exists():  # no usable child interpreter: draw here
        return write_curves(csv_path, png_path, title)
    return png_path
