"""Checkpoints tab: the checkpoint history (lineage, status, benchmark scores), one checkpoint's
details, "continue training from this", "use for prediction", "Export..." (bioimage.io, ONNX, TorchScript, in a
child process) and the benchmark curves over runs (segmentation Dice/IoU and synapse-partner assignment accuracy
beside the dilate_nearest baseline)."""

from __future__ import annotations

import json
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..child_tasks import export_checkpoint
from ..workers import ChildTask, TaskFailed, child_worker
from .base import ProjectTab
from .export_dialog import ExportDialog, ExportRequest

COLUMNS = ("Checkpoint", "Parent", "Status", "Time", "Pairs/regions", "Dice", "IoU", "Mode", "Partners")
ID_ROLE = Qt.ItemDataRole.UserRole
SERIES = (  # plot_points key, legend label, line style
    ("dice", "Dice", {"marker": "o"}),
    ("iou", "IoU", {"marker": "s", "linestyle": "--"}),
    ("objects", "objects (accuracy at IoU 0.5)", {"marker": "D", "linestyle": ":"}),
    ("both", "both-correct", {"marker": "^"}),
    ("baseline", "dilate_nearest baseline", {"marker": "x", "linestyle": "--", "color": "0.5"}),
)


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def benchmark_by_checkpoint(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest benchmark row of each checkpoint (the CSV is append-only, oldest first); works for either
    kind of row (segmentation or assignment)."""
    return {row["checkpoint_id"]: row for row in rows if row.get("checkpoint_id")}


def lineage(record) -> str:
    """Where a checkpoint's training started: its parent checkpoint, an imported model or scratch."""
    if record.parent_id:
        return record.parent_id
    start = record.starting_weights or {}
    if start.get("choice") == "imported" and start.get("source_id"):
        return f"imported:{start['source_id']}"
    return "scratch"


def scope(record) -> str:
    unit = "regions" if record.training_mode == "point_windows" else "pairs"
    return f"{record.image_count} {unit}"


def details_text(
    record, benchmark: dict[str, Any] | None, latest: str | None, partners: dict[str, Any] | None = None
) -> str:
    """What the details view shows for one checkpoint (plain text, read-only); `benchmark` and `partners` are
    its newest segmentation and assignment rows."""
    metrics = {k: v for k, v in record.metrics.items() if v not in (None, [], {})}
    summary = record.architecture_summary.get("text") or json.dumps(record.architecture, indent=1)
    start = record.starting_weights or {}
    lines = [
        f"{record.checkpoint_id}{'  (latest)' if record.checkpoint_id == latest else ''}",
        f"status: {record.status}    mode: {record.training_mode}    run: {record.run_id or '-'}",
        f"created: {record.timestamp.isoformat(timespec='seconds')}",
        f"file: {record.path}",
        f"parent: {lineage(record)}",
        f"starting weights: {_describe_start(start)}",
        f"trained on: {scope(record)}, {record.patch_count} patches",
    ]
    for split, ids in record.split.items():
        if ids:
            lines.append(f"  {split}: {', '.join(ids)}")
    lines += ["", "Benchmark:"]
    if benchmark:
        delta = benchmark.get("delta_dice")
        lines.append(
            f"  Dice {_score(benchmark.get('dice'))}, IoU {_score(benchmark.get('iou'))} on {benchmark.get('n_images')} "
            f"benchmark pair(s)" + (f" (Dice {delta:+.3f} vs parent)" if isinstance(delta, float) else "")
        )
        if benchmark.get("instance_accuracy_50") is not None:
            lines.append(
                f"  objects: accuracy {_score(benchmark['instance_accuracy_50'])}, F1 {_score(benchmark.get('instance_f1_50'))}, "
                f"PQ {_score(benchmark.get('instance_panoptic_quality_50'))} at IoU 0.5; "
                f"accuracy {_score(benchmark.get('instance_accuracy_mean'))} over IoU 0.5:0.95"
            )
    if partners:
        both, pre, post, baseline = (
            partners.get(f"{k}_accuracy") for k in ("both", "pre", "post", "baseline_both")
        )
        lines.append(
            f"  partners: both {_score(both)}, pre {_score(pre)}, post {_score(post)} on "
            f"{partners.get('n_synapses')} synapses ({partners.get('assign_mode') or '-'}"
            + (f"; dilate_nearest baseline {_score(baseline)})" if baseline is not None else ")")
        )
    if not benchmark and not partners:
        lines.append("  not benchmarked (mark a pair as benchmark in the Dataset tab)")
    lines += ["", "Metrics:", json.dumps(metrics, indent=1, default=str)]
    lines += ["", "Architecture:", summary]
    lines += ["", "Settings:", json.dumps(record.settings, indent=1, default=str)]
    return "\n".join(lines)


def _describe_start(start: dict[str, Any]) -> str:
    """The run's recorded start, e.g. `latest -> unet_run_002 (sha256 1a2b3c4d…)`."""
    spec = start.get("spec") or start.get("choice", "scratch")
    source = start.get("source_id")
    text = f"{spec} -> {source}" if source and not spec.endswith(f":{source}") else spec
    return f"{text} (sha256 {start['sha256'][:8]}…)" if start.get("sha256") else text


class CheckpointsTab(ProjectTab):
    title = "Checkpoints"
    fills_height = True  # the table, details and plot share the dock's height (table first)

    def build(self) -> None:
        from matplotlib.figure import Figure

        from ..shown_canvas import ShownCanvas

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setPlaceholderText(
            "Select a checkpoint to see its metrics, starting weights, architecture and settings."
        )
        self.continue_button = QPushButton("Continue training from this")
        self.continue_button.setToolTip(
            "The next training run in the Train tab starts from this checkpoint's weights"
        )
        self.predict_button = QPushButton("Use for prediction")
        self.predict_button.setToolTip("Select this checkpoint in the Predict tab")
        self.export_button = QPushButton("Export...")
        self.export_button.setToolTip(
            "Write this checkpoint as a bioimage.io package (for ilastik, deepImageJ, QuPath, ...), ONNX or "
            "TorchScript, with its lineage"
        )
        self.continue_button.clicked.connect(self.continue_from_selected)
        self.predict_button.clicked.connect(self.use_selected_for_prediction)
        self.export_button.clicked.connect(self.export_selected)
        self.export_task: ChildTask | None = None
        buttons = QHBoxLayout()
        buttons.addWidget(self.continue_button)
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.export_button)
        self.figure = Figure(figsize=(4, 2.4), tight_layout=True)
        self.canvas = ShownCanvas(self.figure)  # redrawn after a run only when the tab is looked at
        self.canvas.setMinimumHeight(180)
        self.axes = self.figure.add_subplot(111)
        self.plot_points: dict[str, list] = {"ids": [], "dice": [], "iou": []}

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.table)
        top_layout.addLayout(buttons)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.details)
        splitter.addWidget(self.canvas)
        for index, stretch in enumerate((5, 2, 3)):  # at a 1000 px window: >= 6 table rows, details and plot readable
            splitter.setStretchFactor(index, stretch)
        splitter.setChildrenCollapsible(False)
        self.table.setMinimumHeight(self.table.verticalHeader().defaultSectionSize() * 4 + self.table.horizontalHeader().sizeHint().height())
        self.splitter = splitter
        self.layout().addWidget(QLabel("Checkpoint history (newest last); select one for its details"))
        self.layout().addWidget(splitter, 1)
        self._update_buttons()

    # ----------------------------------------------------------------- reading the project
    def refresh(self) -> None:
        project = self.session.project
        if project is None:
            return
        selected = self.selected_checkpoint()
        registry = project.checkpoints.registry
        benchmarks = project.history.benchmarks()
        best = benchmark_by_checkpoint(benchmarks)
        partners = benchmark_by_checkpoint(project.history.benchmarks(kind="assignment"))
        best_id = project.checkpoints.best_id
        self._records = {r.checkpoint_id: r for r in registry.checkpoints}
        self._benchmarks, self._partners, self._latest = best, partners, registry.latest
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        for record in registry.checkpoints:
            row = self.table.rowCount()
            self.table.insertRow(row)
            bench = best.get(record.checkpoint_id, {})
            marks = [name for name, which in (("latest", registry.latest), ("best", best_id)) if which == record.checkpoint_id]
            label = f"{record.checkpoint_id} ({', '.join(marks)})" if marks else record.checkpoint_id
            values = (
                label,
                lineage(record),
                record.status,
                record.timestamp.strftime("%Y-%m-%d %H:%M"),
                scope(record),
                _score(bench.get("dice")),
                _score(bench.get("iou")),
                record.training_mode,
                _score(partners.get(record.checkpoint_id, {}).get("both_accuracy")),
            )
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(ID_ROLE, record.checkpoint_id)
                if column == 0 and record.checkpoint_id == registry.latest:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, column, item)
        self.table.blockSignals(False)
        if selected in self._records:
            self.select(selected)
        else:
            self.table.clearSelection()
            self.details.clear()
        self._update_buttons()
        self._plot(registry.checkpoints, best, partners)

    def _plot(self, records, best: dict[str, dict[str, Any]], partners: dict[str, dict[str, Any]]) -> None:
        """A tick per checkpoint with any benchmark row (registry order); each series where it has values."""
        ids = [r.checkpoint_id for r in records if r.checkpoint_id in best or r.checkpoint_id in partners]

        def values(rows: dict[str, dict[str, Any]], key: str) -> list:
            return [rows.get(i, {}).get(key) for i in ids]

        self.plot_points = {
            "ids": ids,
            "dice": values(best, "dice"),
            "iou": values(best, "iou"),
            "objects": values(best, "instance_accuracy_50"),
            "both": values(partners, "both_accuracy"),
            "baseline": values(partners, "baseline_both_accuracy"),
        }
        self.axes.clear()
        for key, label, style in SERIES:
            points = [(x, v) for x, v in enumerate(self.plot_points[key]) if v is not None]
            if points:
                self.axes.plot(*zip(*points, strict=True), label=label, **style)
        if ids:
            self.axes.set_xticks(range(len(ids)), [i.replace("unet_run_", "#") for i in ids], fontsize=7)
            self.axes.set_ylim(0, 1.02)
            self.axes.legend(loc="lower right", fontsize=7)
        else:
            self.axes.text(
                0.5, 0.5, "no benchmark yet", ha="center", va="center", transform=self.axes.transAxes
            )
        self.axes.set_title("Benchmark per checkpoint", fontsize=9)
        self.canvas.draw_idle()

    # ----------------------------------------------------------------- selection
    def selected_checkpoint(self) -> str | None:
        items = self.table.selectedItems() if hasattr(self, "table") else []
        return items[0].data(ID_ROLE) if items else None

    def select(self, checkpoint_id: str) -> bool:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(ID_ROLE) == checkpoint_id:
                self.table.selectRow(row)
                self._selection_changed()
                return True
        return False

    def _selection_changed(self) -> None:
        checkpoint_id = self.selected_checkpoint()
        record = getattr(self, "_records", {}).get(checkpoint_id) if checkpoint_id else None
        if record is None:
            self.details.clear()
        else:
            bench, partners = self._benchmarks.get(checkpoint_id), self._partners.get(checkpoint_id)
            self.details.setPlainText(details_text(record, bench, self._latest, partners))
        self._update_buttons()

    def _update_buttons(self) -> None:
        checkpoint_id = self.selected_checkpoint()
        record = getattr(self, "_records", {}).get(checkpoint_id) if checkpoint_id else None
        self.continue_button.setEnabled(record is not None)
        completed = record is not None and record.status == "completed"
        self.predict_button.setEnabled(completed)
        self.export_button.setEnabled(completed and self.export_task is None)

    # ----------------------------------------------------------------- actions
    def continue_from_selected(self) -> None:
        checkpoint_id = self.selected_checkpoint()
        if checkpoint_id is None or self.session.project is None:
            return
        self.run_action(
            self.session.project.set_starting_weights,
            f"checkpoint:{checkpoint_id}",
            success=f"The next training run starts from {checkpoint_id} (see the Train tab).",
        )

    def use_selected_for_prediction(self) -> None:
        checkpoint_id = self.selected_checkpoint()
        if checkpoint_id is None:
            return
        self.session.select_checkpoint(checkpoint_id)
        self.show_message(f"{checkpoint_id} selected for prediction (see the Predict tab).")

    def export_selected(self) -> None:
        """Ask how to export the selected checkpoint, then export it in a child process."""
        checkpoint_id, project = self.selected_checkpoint(), self.session.project
        if checkpoint_id is None or project is None:
            return
        request = self.ask_export(checkpoint_id, project.root.parent)
        if request is not None:
            self.start_export(checkpoint_id, request)

    def ask_export(self, checkpoint_id: str, folder) -> ExportRequest | None:
        dialog = ExportDialog(checkpoint_id, folder, self)
        return dialog.request() if dialog.exec() else None

    def start_export(self, checkpoint_id: str, request: ExportRequest) -> None:
        if not request.output:
            self.show_message("Choose an output file to export to.", error=True)
            return
        self.export_task = ChildTask(
            export_checkpoint,
            str(self.session.project.root),
            checkpoint_id,
            label="export",
            format=request.format,
            output=request.output,
            overwrite=request.overwrite,
            authors=request.authors,
        )
        self.export_button.setText("Exporting...")
        self._update_buttons()
        self.show_message(f"Exporting {checkpoint_id} as {request.format} to {request.output} (in the background)...")
        self._export_worker = child_worker(self.export_task)
        self._export_worker.returned.connect(self._exported)
        self._export_worker.start()

    def _exported(self, result) -> None:
        self.export_task = None
        self.export_button.setText("Export...")
        self._update_buttons()
        if isinstance(result, TaskFailed):
            self.show_message(f"Export failed: {result.message}", error=True)
            return
        self.show_message(f"Exported {result['checkpoint_id']} as {result['format']} to {result['path']} ({result['seconds']:.1f} s).")
