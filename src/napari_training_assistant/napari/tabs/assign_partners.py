"""Assign partners (Train tab, point mode from layers): every synapse of the viewer given a pre- and a
postsynaptic cell of the segmentation by the project's latest checkpoint, shown as lines.

The layers are written as `<project>/point_data/` (the writer training uses, with the segmentation) and
`nta assign-synapses` runs on that spec in a child process (`child_tasks.assign_layers`). Its
assignments.csv is then read here (plain csv) into a Shapes layer of lines pre site -> post site, the rows
as features, coloured by the pre margin (or, with ground truth from label0/label1 or line annotations, green
when right and red when wrong); selecting a line shows its row below the button.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from ...progress import EventKind, ProgressEvent
from ...project.errors import ProjectError
from ...project.run_options import TrainOptions
from ..child_process import TaskFailed
from ..child_tasks import assign_layers
from ..workers import ChildTask, child_worker

LAYER_NAME = "synapse partners"
SITES = (("pre_site_z", "pre_site_y", "pre_site_x"), ("post_site_z", "post_site_y", "post_site_x"))
RIGHT, WRONG, UNKNOWN = (0.2, 0.8, 0.2, 1.0), (0.95, 0.25, 0.25, 1.0), (0.6, 0.6, 0.6, 1.0)


class AssignPartners(QWidget):
    """The Assign partners button and the line that describes the run or the selected synapse."""

    def __init__(self, viewer, session, panel, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer, self.session, self.panel = viewer, session, panel
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.button = QPushButton("Assign partners")
        self.button.setToolTip(
            "Assign every synapse a pre- and a postsynaptic cell of the Segmentation layer with the project's latest "
            "checkpoint (`nta assign-synapses` on <project>/point_data/spec.yaml); the result is a Shapes layer of lines"
        )
        self.button.clicked.connect(self.start)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(self.info.textInteractionFlags() | _selectable())
        layout.addWidget(self.button)
        layout.addWidget(self.info)
        self.task: ChildTask | None = None
        self.worker = None
        self.result = None  # the last AssignSummary
        self.layer = None
        session.busy_changed.connect(self._busy)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _busy(self, busy: bool) -> None:
        if not self.running:
            self.button.setEnabled(not busy)

    def say(self, text: str, error: bool = False) -> None:
        self.info.setStyleSheet("color: #ff6b6b;" if error else "")
        self.info.setText(text)

    # ---- start
    def start(self) -> bool:
        """Write the layers and start the assignment in a child process; False (with a red line) when refused."""
        project = self.session.project
        if self.running:
            return False
        try:
            if project is None:
                raise ProjectError("open the synapse project first")
            if self.session.busy:
                raise ProjectError("another task is running: wait for it to finish")
            checkpoint_id = project.checkpoints.latest_id
            if checkpoint_id is None:
                raise ProjectError("the project has no checkpoint yet: train first")
            inputs = self.panel.layer_inputs(project, TrainOptions(), segmentation=True)
        except (ProjectError, ValueError) as exc:
            self.say(str(exc).splitlines()[0], error=True)
            return False
        _, volumes, synapses, _, _ = inputs
        evaluate = ("label0" in volumes and "label1" in volumes) or any(s.end is not None for s in synapses)
        self.image = self.panel.image_layer()
        self.task = ChildTask(assign_layers, *inputs, label="assignment", stop_reason="stopped from the Train tab", checkpoint_id=checkpoint_id, evaluate=evaluate)
        self.worker = child_worker(self.task)
        self.worker.yielded.connect(self._on_item)
        self.worker.returned.connect(self._on_item)
        self.worker.finished.connect(self._done)
        self.result = None
        self.button.setEnabled(False)
        self.session.set_busy(True)
        self.say(f"assigning {len(synapses)} synapses with checkpoint {checkpoint_id}…")
        self.worker.start()
        return True

    def stop(self) -> None:
        if self.task is not None and not self.task.stopping:
            self.task.stop()

    # ---- events, in the GUI thread
    def _on_item(self, item: Any) -> None:
        if isinstance(item, ProgressEvent):
            if item.kind in (EventKind.STARTED, EventKind.STEP) and item.steps:
                self.say(f"assigning: {item.step} of {item.steps} synapses done")
        elif isinstance(item, TaskFailed):
            self.say(f"assignment failed: {item.message}", error=True)
        elif item is not None:
            self.result = item
            if item.status != "completed":
                self.say(f"assignment {item.status}: {item.output} keeps the finished chunks")
                return
            rows = read_assignments(Path(item.output) / "assignments.csv")
            self.layer = show_assignments(self.viewer, rows, self.image, item.truth)
            self.layer.selected_data.events.items_changed.connect(self._selected)
            self.say(describe_run(item, rows, self.layer))

    def _done(self) -> None:
        self.worker, self.task = None, None
        self.button.setEnabled(True)
        self.session.set_busy(False)

    def _selected(self, *_: Any) -> None:
        layer = self.layer
        if layer is None or not len(layer.selected_data):
            return
        index = max(layer.selected_data)
        self.say(describe_row({str(c): layer.features[c].iloc[index] for c in layer.features.columns}))


# ---- the table as a layer (no Qt)
def read_assignments(path: str | Path) -> list[dict[str, Any]]:
    """assignments.csv as rows of values: numbers as int / float (empty cells NaN), the rest as text."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [{key: _value(text) for key, text in row.items()} for row in csv.DictReader(handle)]


def _value(text: str | None) -> Any:
    if text is None or text == "":
        return math.nan
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def assigned(row: dict[str, Any]) -> bool:
    """Whether the row has both partners (segments and sites)."""
    numbers = [row.get(k) for k in ("pre_segment", "post_segment", *SITES[0], *SITES[1])]
    return all(isinstance(v, int | float) and not math.isnan(v) for v in numbers) and row["pre_segment"] > 0 and row["post_segment"] > 0


def show_assignments(viewer, rows: list[dict[str, Any]], image, truth: dict[int, tuple[int, int]] | None = None):
    """A Shapes layer (replacing an earlier one) of lines pre site -> post site in the image's scale, one
    per assigned row, the rows as features (with `correct` when ground truth is known)."""
    kept = [row for row in rows if assigned(row)]
    lines = [np.array([[row[k] for k in SITES[0]], [row[k] for k in SITES[1]]], dtype=float) for row in kept]
    features: dict[str, list] = {key: [row[key] for row in kept] for key in (rows[0] if rows else {})}
    truth = truth or {}
    if truth:
        features["correct"] = [_correct(row, truth.get(int(row["row"]))) for row in kept]
        colours = [RIGHT if c == "yes" else WRONG if c == "no" else UNKNOWN for c in features["correct"]]
    else:
        colours = margin_colours([row.get("pre_margin", math.nan) for row in kept])
    if LAYER_NAME in viewer.layers:
        viewer.layers.remove(LAYER_NAME)
    return viewer.add_shapes(
        lines, shape_type="line", name=LAYER_NAME, features=features or None, edge_color=np.array(colours).reshape(-1, 4) if colours else "white",
        edge_width=max(float(np.min(image.scale[-2:])), 1.0), scale=image.scale[-3:], translate=image.translate[-3:],
    )


def _correct(row: dict[str, Any], truth: tuple[int, int] | None) -> str:
    if truth is None:
        return "unknown"
    return "yes" if (int(row["pre_segment"]), int(row["post_segment"])) == truth else "no"


def margin_colours(values: list[float]) -> list[tuple[float, ...]]:
    """Viridis colours of `values` normalised to their range (NaN grey)."""
    from napari.utils.colormaps import ensure_colormap

    data = np.array([v if isinstance(v, int | float) else math.nan for v in values], dtype=float)
    finite = np.isfinite(data)
    if not finite.any():
        return [UNKNOWN] * len(data)
    low, high = float(data[finite].min()), float(data[finite].max())
    scaled = np.where(finite, (data - low) / (high - low) if high > low else 1.0, 0.0)
    mapped = ensure_colormap("viridis").map(scaled)
    return [tuple(map(float, c)) if ok else UNKNOWN for c, ok in zip(mapped, finite, strict=True)]


def describe_row(row: dict[str, Any]) -> str:
    def num(key: str) -> str:
        value = row.get(key)
        return f"{value:.3f}" if isinstance(value, float) and not math.isnan(value) else str(value)

    flags = row.get("flags")
    text = (
        f"synapse {row.get('id')} (row {row.get('row')}): pre {row.get('pre_segment')} score {num('pre_score')} margin {num('pre_margin')}, "
        f"post {row.get('post_segment')} score {num('post_score')} margin {num('post_margin')}"
    )
    if isinstance(flags, str) and flags:
        text += f", flags {flags}"
    if "correct" in row:
        text += f", correct: {row['correct']}"
    return text


def describe_run(result, rows: list[dict[str, Any]], layer) -> str:
    text = f"{len(layer.data)} of {len(rows)} synapses assigned (checkpoint {result.checkpoint_id}, {result.seconds:.1f} s)"
    overall = (result.evaluation or {}).get("overall") or {}
    both = overall.get("both") if isinstance(overall, dict) else None
    if isinstance(both, dict) and "accuracy" in both:
        text += f"; both partners right for {both['accuracy']:.0%} of {overall.get('n', '?')}"
    return text + "; select a line to see its row"


def _selectable():
    from qtpy.QtCore import Qt

    return Qt.TextInteractionFlag.TextSelectableByMouse
