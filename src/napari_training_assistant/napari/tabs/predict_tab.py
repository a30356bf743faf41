"""Predict tab: segment an image layer with a project checkpoint in a child process, into the project's
`predictions/`.

A small in-memory layer is predicted whole (`predict_array`); the saved TIFF is read back in the worker
thread and shown as a Labels layer. A layer of any size (dask- or zarr-backed, multiscale, or more than
`IN_MEMORY_VOXELS` values) is predicted block-wise into OME-Zarr (`predict_volume_into_project`): its
output is shown at once as a lazily read (dask, uncached) multiscale Labels layer, refreshed as blocks
complete (at most every `REFRESH_S`), with blocks done and ETA in the progress bar; Stop keeps the
finished blocks. The GUI thread only sets widgets and redraws.

An instance checkpoint's prediction is a Labels layer of object ids; the message says how many objects and
the watershed settings. "Suggest next images" ranks a folder of unlabeled images by the checkpoint's
uncertainty (`nta suggest`, in a child process); a suggested image opens as an Image layer and is
predicted, so that its corrected prediction, accepted as a training pair, records its rank."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ...progress import EventKind, ProgressEvent
from ...project.errors import ProjectError
from ...project.run_options import IN_MEMORY_VOXELS
from ..child_process import one_line
from ..child_tasks import VolumeSummary, predict_into_project, predict_volume_in_project, suggest_in_project
from ..layer_choice import image_data, image_layers, refill_image_combo
from ..plot_widget import duration
from ..prediction_layers import add_labels, has_channel_axis, labels_layers, ome_zarr_levels
from ..workers import ChildTask, TaskFailed, child_worker
from .base import ProjectTab

LATEST = "latest"
PREDICTION_KEY = "nta_prediction"  # metadata of a prediction layer: prediction id, image layer, channel axis
BEST = "best"  # the highest benchmark Dice on the current benchmark pairs
LAYER_KEY = "predict_image"
REFRESH_S = 0.5  # while blocks complete, the output layer is redrawn at most this often
SOURCE_KEY = "nta_source_file"  # metadata of an image layer opened from a suggestion: the file it was read from


def instance_details(parameters: dict[str, Any]) -> str:
    """'12 objects (seeded watershed: ...)' for an instance prediction's parameters, else ''."""
    if parameters.get("output_mode") != "instance" and "instance_min_size" not in parameters:
        return ""
    settings = (
        ("foreground >", "instance_foreground_threshold"),
        ("boundary <", "instance_boundary_threshold"),
        ("min size", "instance_min_size"),
        ("min seed size", "instance_min_seed_size"),
    )
    told = ", ".join(f"{label} {parameters[key]}" for label, key in settings if key in parameters)
    return f"{parameters.get('objects', '?')} objects (seeded watershed: {told})"


def region_text(region: list[list[int]] | None) -> str:
    return " [" + ", ".join(f"{a}:{b}" for a, b in region) + "]" if region else ""


def spatial_transform(layer, channel_axis: int | None, ndim: int) -> dict[str, Any]:
    """The source layer's scale/translate for a prediction with `ndim` spatial axes (channel axis dropped)."""
    scale, translate = list(layer.scale), list(layer.translate)
    if channel_axis is not None and not getattr(layer, "rgb", False) and len(scale) == ndim + 1:
        del scale[channel_axis], translate[channel_axis]
    return {"scale": scale, "translate": translate} if len(scale) == ndim else {}


def predicts_in_blocks(layer) -> bool:
    """Whether a layer is predicted block-wise: multiscale, not a numpy array (dask, zarr), or too big."""
    data = image_data(layer)
    return bool(getattr(layer, "multiscale", False)) or not isinstance(data, np.ndarray) or data.size > IN_MEMORY_VOXELS


def volume_source(layer) -> Any:
    """What the child reads for a block-wise prediction: the layer's full-resolution array, except for an
    in-memory array read from a file that holds just that array: the file (nothing big is pickled)."""
    data = image_data(layer)
    path = getattr(layer.source, "path", None)
    if isinstance(data, np.ndarray) and path and _file_holds(str(path), data.shape):
        return str(path)
    return data


def _file_holds(path: str, shape: tuple[int, ...]) -> bool:
    """Whether the TIFF or Zarr at `path` stores an array of `shape` (1-3 axes; more are not compared)."""
    from ...data.volumes import open_volume

    if not 1 <= len(shape) <= 3 or not Path(path).exists():
        return False
    try:
        with open_volume(path, axis_order="zyx"[-len(shape) :]) as volume:
            return tuple(volume.shape) == tuple(shape)
    except Exception:  # noqa: BLE001 - any file it cannot open: the array is sent instead
        return False


class PredictTab(ProjectTab):
    title = "Predict"

    def build(self) -> None:
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image layer to segment")
        self.image_combo.currentTextChanged.connect(self._image_chosen)
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.setToolTip("Which checkpoint predicts ('Use for prediction' in the Checkpoints tab selects one)")
        self.channel_axis = QSpinBox()
        self.channel_axis.setRange(-1, 5)
        self.channel_axis.setSpecialValueText("none")
        self.channel_axis.setValue(-1)
        self.channel_axis.setToolTip("Axis of the layer's data that holds channels (none: single channel)")
        self.tile_size = QSpinBox()
        self.tile_size.setRange(0, 4096)
        self.tile_size.setSingleStep(16)
        self.tile_size.setSpecialValueText("auto")
        self.tile_size.setToolTip("Edge of the square/cubic tiles the image is predicted in (auto: from the checkpoint)")
        self.overlap = QDoubleSpinBox()
        self.overlap.setRange(0.0, 0.9)
        self.overlap.setSingleStep(0.05)
        self.overlap.setValue(0.5)
        self.overlap.setToolTip("Fraction by which neighbouring tiles overlap (blended)")
        self.block_size = QSpinBox()
        self.block_size.setRange(0, 65536)
        self.block_size.setSingleStep(256)
        self.block_size.setSpecialValueText("auto")
        self.block_size.setToolTip(
            "Edge of the blocks a large, dask/zarr or multiscale layer is predicted in, into OME-Zarr "
            "(auto: about 4096 in 2D, 384 in 3D)"
        )
        self.predict_button = QPushButton("Predict")
        self.predict_button.clicked.connect(self.predict)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop a block-wise prediction after the current block (finished blocks are kept)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.accept_button = QPushButton("Accept as training pair")
        self.accept_button.setToolTip(
            "Add the image with its prediction layer, as you corrected it, to the dataset: recorded as a corrected "
            "prediction with its checkpoint and how many pixels and objects you changed"
        )
        self.accept_button.setEnabled(False)
        self.accept_button.clicked.connect(self.accept_correction)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel("")
        form = QFormLayout()
        form.addRow("Image layer", self.image_combo)
        form.addRow("Checkpoint", self.checkpoint_combo)
        form.addRow("Channel axis", self.channel_axis)
        form.addRow("Tile size", self.tile_size)
        form.addRow("Tile overlap", self.overlap)
        form.addRow("Block size", self.block_size)
        self.layout().addLayout(form)
        buttons, progress = QHBoxLayout(), QHBoxLayout()
        buttons.addWidget(self.predict_button, 1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.accept_button)
        progress.addWidget(self.progress, 1)
        progress.addWidget(self.eta)
        self.layout().addLayout(buttons)
        self.layout().addLayout(progress)
        self.layout().addWidget(self._suggest_group())
        self._worker = None
        self._running = False
        self.task: ChildTask | None = None
        self.last_task: ChildTask | None = None
        self.live_layers: list = []  # the output of the running block-wise prediction
        self._refreshed_at = 0.0
        self._blocks_done = 0
        layers = self.viewer.layers
        handler = self._layers_changed
        emitters = (layers.events.inserted, layers.events.removed, layers.events.reordered)
        for emitter in emitters:
            emitter.connect(handler)
        for layer in layers:
            layer.events.name.connect(handler)

        def disconnect(*_) -> None:  # the viewer may outlive this widget
            for emitter in (*emitters, *(layer.events.name for layer in layers)):
                emitter.disconnect(handler)

        self.destroyed.connect(disconnect)
        self.session.checkpoint_selected.connect(self._checkpoint_selected)
        self._fill_images()

    def _suggest_group(self) -> QGroupBox:
        group = QGroupBox("What to label next")
        layout = QVBoxLayout(group)
        self.suggest_folder = QLineEdit()
        self.suggest_folder.setPlaceholderText("folder of unlabeled images")
        self.suggest_folder.setToolTip("The images to rank (TIFF, PNG, NPY, Zarr; not recursive)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_suggest_folder)
        self.suggest_button = QPushButton("Suggest next images")
        self.suggest_button.setToolTip(
            "Rank the folder's images by how unsure the checkpoint above is about them (entropy + flip disagreement), "
            "most uncertain first, as nta suggest does; the ranking is recorded, and a suggested image whose prediction "
            "you correct and accept records its rank"
        )
        self.suggest_button.clicked.connect(self.suggest)
        self.suggestions = QTableWidget(0, 3)
        self.suggestions.setHorizontalHeaderLabels(["#", "image", "score"])
        self.suggestions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.suggestions.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.suggestions.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.suggestions.verticalHeader().setVisible(False)
        self.suggestions.horizontalHeader().setStretchLastSection(False)
        self.suggestions.horizontalHeader().setSectionResizeMode(1, self.suggestions.horizontalHeader().ResizeMode.Stretch)
        self.suggestions.setMaximumHeight(180)
        self.suggestions.cellDoubleClicked.connect(lambda row, _column: self.open_suggestion(row))
        self.open_button = QPushButton("Open and predict")
        self.open_button.setToolTip("Open the chosen image as an Image layer and predict it: correct the prediction, then Accept as training pair")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self.open_suggestion(self.suggestions.currentRow()))
        self.ranked: list[dict[str, Any]] = []
        folder = QHBoxLayout()
        folder.addWidget(self.suggest_folder, 1)
        folder.addWidget(browse)
        layout.addLayout(folder)
        layout.addWidget(self.suggest_button)
        layout.addWidget(self.suggestions)
        layout.addWidget(self.open_button)
        return group

    # ----------------------------------------------------------------- combos
    def _layers_changed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if getattr(event, "type", None) == "inserted" and layer is not None:
            layer.events.name.connect(self._layers_changed)
        self._fill_images()

    def _fill_images(self) -> None:
        refill_image_combo(self.image_combo, self.viewer, self.session, LAYER_KEY)
        self._image_chosen(self.image_combo.currentText())
        self._update_button()

    def _image_chosen(self, name: str) -> None:
        layer = self._layer(name)
        if layer is not None and getattr(layer, "rgb", False):
            self.channel_axis.setValue(np.ndim(image_data(layer)) - 1)

    def _layer(self, name: str):
        return next((layer for layer in image_layers(self.viewer) if layer.name == name), None)

    def refresh(self) -> None:
        project = self.session.project
        if project is None:
            return
        registry = project.checkpoints.registry
        wanted = self.checkpoint_combo.currentData() or self.session.selected_checkpoint
        self.checkpoint_combo.blockSignals(True)
        self.checkpoint_combo.clear()
        if registry.latest:
            self.checkpoint_combo.addItem(f"latest ({registry.latest})", LATEST)
        best = project.checkpoints.best_id
        if best:
            self.checkpoint_combo.addItem(f"best ({best})", BEST)
        for record in reversed(registry.checkpoints):
            if record.status == "completed":
                self.checkpoint_combo.addItem(record.checkpoint_id, record.checkpoint_id)
        self.checkpoint_combo.blockSignals(False)
        self._select_checkpoint(wanted)
        if not self.image_combo.currentText():
            self._fill_images()
        self._update_button()

    def _select_checkpoint(self, checkpoint_id: str | None) -> None:
        index = self.checkpoint_combo.findData(checkpoint_id) if checkpoint_id else -1
        self.checkpoint_combo.setCurrentIndex(index if index >= 0 else min(0, self.checkpoint_combo.count() - 1))

    def _checkpoint_selected(self, checkpoint_id: str | None) -> None:
        self._select_checkpoint(checkpoint_id)
        if checkpoint_id and self.checkpoint_combo.currentData() == checkpoint_id:
            self.show_message(f"Predicting with {checkpoint_id}.")

    def _update_button(self) -> None:
        ready = self.image_combo.count() > 0 and self.checkpoint_combo.count() > 0 and not self._running
        self.predict_button.setEnabled(ready)
        self.suggest_button.setEnabled(not self._running)
        self.open_button.setEnabled(bool(self.ranked) and not self._running)
        if not self._running:
            self.predict_button.setText("Predict")
            self.suggest_button.setText("Suggest next images")

    # ----------------------------------------------------------------- predicting
    def predict(self) -> None:
        """Start the prediction in a child process; the GUI stays responsive."""
        project = self.session.project
        name = self.image_combo.currentText()
        layer = self._layer(name)
        checkpoint = self.checkpoint_combo.currentData()
        if project is None or layer is None or checkpoint is None or self._running:
            if project is not None and checkpoint is None:
                self.show_message("No checkpoint to predict with yet: train one in the Train tab.", error=True)
            elif layer is None:
                self.show_message("Choose an image layer to predict.", error=True)
            return
        from ..preferences import default_device

        axis = self.channel_axis.value()
        channel_axis = None if axis < 0 else axis
        self.session.remember(layers={LAYER_KEY: name})
        options = {
            "checkpoint_id": checkpoint,
            "channel_axis": channel_axis,
            "tile_size": self.tile_size.value() or None,
            "overlap": self.overlap.value(),
            "device": default_device(),
        }
        self._context = {"layer": layer, "name": name, "channel_axis": channel_axis}
        source = layer.metadata.get(SOURCE_KEY) or f"napari layer {name}"  # a suggested image: its file (its rank is found)
        blocks = predicts_in_blocks(layer)
        if blocks:
            self.task = ChildTask(
                predict_volume_in_project,
                str(project.root),
                volume_source(layer),
                label="prediction",
                stop_reason="stopped from the Predict tab",
                source_name=f"napari layer {name}",
                block_shape=self.block_size.value() or None,
                **options,
            )
            then = None
        else:
            self.task = ChildTask(predict_into_project, str(project.root), image_data(layer), label="prediction", source=source, **options)
            then = partial(_read_back, project)
        self._set_running(True, stoppable=blocks)
        how = " block by block" if blocks else ""
        self.show_message(f"Predicting {name}{how} with {self.checkpoint_combo.currentText()}…")
        self.last_task = self.task
        self._worker = child_worker(self.task, then=then)
        self._worker.yielded.connect(self._on_event)
        self._worker.returned.connect(self._finished)
        self._worker.start()

    def stop(self) -> None:
        """Stop a block-wise prediction after its current block; the blocks done stay in its output."""
        if self.task is not None and not self.task.stopping:
            self.task.stop()
            self.stop_button.setEnabled(False)
            self.eta.setText("stopping after the current block…")

    def _set_running(self, running: bool, stoppable: bool = False, suggesting: bool = False) -> None:
        self._running = running
        self.stop_button.setEnabled(running and stoppable)
        if running:
            self.live_layers, self._blocks_done = [], 0
            (self.suggest_button if suggesting else self.predict_button).setText("Ranking…" if suggesting else "Predicting…")
            self.progress.setRange(0, 0)  # busy until the first event tells the total
            self.eta.setText("preparing…")
        else:
            self._worker = self.task = None
            self.eta.setText("")
            if self.progress.maximum() == 0:  # no event told the total (in-memory prediction, failure)
                self.progress.setRange(0, 1)
        self._update_button()
        self.session.set_busy(running)

    # ---- events, in the GUI thread
    def _on_event(self, event: ProgressEvent) -> None:
        if event.kind == EventKind.STARTED:
            self.show_message(f"Predicting {self._context['name']}: {event.message}")
            if "output" in event.metrics:
                self._show_live(Path(event.metrics["output"]), event.metrics.get("checkpoint_id", ""))
        if event.steps and event.kind in (EventKind.STARTED, EventKind.STEP, EventKind.FINISHED):
            self.progress.setRange(0, event.steps)
            self.progress.setValue(min(event.step, event.steps))
            self._blocks_done = event.step
            eta = f", ETA {duration(event.eta_s)}" if event.eta_s is not None else ""
            self.eta.setText(f"{event.step}/{event.steps} blocks{eta}")
        due = time.monotonic() - self._refreshed_at >= REFRESH_S
        if event.kind == EventKind.FINISHED or (event.kind == EventKind.STEP and due):
            self._refresh_live()

    def _show_live(self, output: Path, checkpoint_id: str) -> None:
        """The output's labels as lazily read (multiscale) Labels layers over the image, before any block is done."""
        image = output / "labels"
        title = f"{self._context['name']} prediction ({checkpoint_id})"
        self.live_layers = self._add_layers(ome_zarr_levels(image), title, has_channel_axis(image), cache=False)
        self._refreshed_at = time.monotonic()

    def _refresh_live(self) -> None:
        """Redraw the output layers (napari reads the blocks in view again)."""
        for layer in self.live_layers:
            if layer in self.viewer.layers:
                layer.refresh()
        self._refreshed_at = time.monotonic()

    def _finished(self, result) -> None:
        self._set_running(False)
        if isinstance(result, TaskFailed):
            self.show_message(f"Prediction failed: {result.message}", error=True)
            return
        if isinstance(result, VolumeSummary):
            self._volume_finished(result)
        else:
            self.add_prediction_layer(*result, **self._context)
        if getattr(result, "status", "completed") == "completed":
            self.progress.setValue(self.progress.maximum())
        self.session.updated()

    def _volume_finished(self, result: VolumeSummary) -> None:
        self._refresh_live()
        if result.record is None:
            where = self.session.project.layout.relative(Path(result.output))
            self.show_message(f"Stopped: {self._blocks_done} of {result.blocks} blocks kept in {where} (not recorded).")
        else:
            details = instance_details(result.record.parameters)
            self._saved(result.record, f"{result.blocks} blocks" + (f"; {details}" if details else ""))

    def add_prediction_layer(self, record, labels: np.ndarray, *, layer, name: str, channel_axis: int | None) -> list:
        """Show a saved prediction as a Labels layer over its image (one layer per output channel for a
        multilabel checkpoint)."""
        multilabel = record.parameters.get("output_mode") == "multilabel"
        added = self._add_layers(labels, f"{name} prediction ({record.checkpoint_id})", multilabel)
        if not multilabel:  # one labels layer (instance: object ids): the user may correct it and accept it as a training pair
            added[0].metadata[PREDICTION_KEY] = {"prediction_id": record.prediction_id, "image_layer": name, "channel_axis": channel_axis}
            self.accept_button.setEnabled(True)
        self._saved(record, instance_details(record.parameters))
        return added

    def _correction_layer(self):
        """The selected prediction layer, else the newest one still in the viewer."""
        active = self.viewer.layers.selection.active
        if active is not None and PREDICTION_KEY in active.metadata:
            return active
        return next((layer for layer in reversed(self.viewer.layers) if PREDICTION_KEY in layer.metadata), None)

    def accept_correction(self):
        """Image + the (corrected) prediction layer -> a training pair (`add_corrected_prediction`)."""
        from ...project.corrections import add_corrected_prediction

        project = self.session.project
        layer = self._correction_layer()
        if layer is None:
            self.show_message("Predict an image first: its prediction layer, corrected or not, is what is accepted.", error=True)
            return None
        info = layer.metadata[PREDICTION_KEY]
        if info["image_layer"] not in self.viewer.layers:
            self.show_message(f"the image layer {info['image_layer']!r} of {info['prediction_id']} is no longer in the viewer: add it back", error=True)
            return None
        output_mode = project.architecture.output_mode
        mode = output_mode if output_mode in ("multiclass", "instance") else "binary"  # instance: object ids kept
        record = self.run_action(
            add_corrected_prediction, project, info["prediction_id"], np.asarray(layer.data),
            image=image_data(self.viewer.layers[info["image_layer"]]), channel_axis=info["channel_axis"],
            mask_mode=mode, image_layer=info["image_layer"], mask_layer=layer.name,
        )  # fmt: skip
        if record is not None:
            c = record.correction
            ranked = f"; it was suggested #{record.suggestion['rank']} of {record.suggestion['of']}" if record.suggestion else ""
            self.show_message(
                f"Added {record.pair_id} ({record.split}) from {c['prediction_id']}: {c['changed_pixels']} pixels and "
                f"{c['objects_edited']} objects corrected ({c['objects_predicted']} predicted, {c['objects_corrected']} now){ranked}."
            )
        return record

    # ----------------------------------------------------------------- what to label next
    def _browse_suggest_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of unlabeled images", self.suggest_folder.text())
        if folder:
            self.suggest_folder.setText(folder)

    def suggest(self) -> bool:
        """Rank the folder's images with the chosen checkpoint in a child process (`nta suggest`); False
        (with a red line) when refused."""
        project = self.session.project
        if project is None or self._running:
            return False
        folder = self.suggest_folder.text().strip()
        if not folder or not Path(folder).is_dir():
            self.show_message(f"{folder or 'No folder'}: choose a folder of unlabeled images to rank.", error=True)
            return False
        checkpoint = self.checkpoint_combo.currentData()
        if checkpoint is None:  # the project's own words: no checkpoint yet, train first
            try:
                checkpoint = project.checkpoints.get(LATEST).checkpoint_id
            except ProjectError as exc:
                self.show_message(one_line(exc), error=True)
                return False
        self.task = ChildTask(suggest_in_project, str(project.root), folder, label="suggestion", checkpoint_id=checkpoint)
        self._set_running(True, suggesting=True)
        self.show_message(f"Ranking the images of {Path(folder).name} by the uncertainty of {self.checkpoint_combo.currentText() or checkpoint}…")
        self.last_task = self.task
        self._worker = child_worker(self.task)
        self._worker.returned.connect(self._suggested)
        self._worker.start()
        return True

    def _suggested(self, result) -> None:
        self._set_running(False)
        if isinstance(result, TaskFailed):
            self.show_message(f"Suggestion failed: {result.message}", error=True)
            return
        self.show_suggestions(result)
        self.show_message(
            f"{len(result)} image(s) ranked, the most uncertain first (recorded): double-click one to open and predict it, "
            "correct the prediction, then Accept as training pair."
        )
        self.session.updated()

    def show_suggestions(self, ranked: list[dict[str, Any]]) -> None:
        """Fill the table: rank, image name [region], score (entropy and flip disagreement in the tooltip)."""
        self.ranked = list(ranked)
        self.suggestions.setRowCount(0)
        for entry in self.ranked:
            row = self.suggestions.rowCount()
            self.suggestions.insertRow(row)
            cells = (str(entry["rank"]), Path(entry["path"]).name + region_text(entry.get("region")), f"{entry['score']:.3f}")
            tip = f"{entry['path']}: entropy {entry['entropy']:.3f} + flip disagreement {entry['disagreement']:.3f}"
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.suggestions.setItem(row, column, item)
        self.suggestions.resizeColumnToContents(0)
        self.suggestions.resizeColumnToContents(2)
        if self.ranked:
            self.suggestions.selectRow(0)
        self._update_button()

    def open_suggestion(self, row: int):
        """Open the suggested image (its tile, for a tiled ranking) as an Image layer and predict it; returns the layer."""
        from ...project.image_io import read_array

        if not 0 <= row < len(self.ranked):
            self.show_message("Choose a suggested image in the list first.", error=True)
            return None
        entry = self.ranked[row]
        path, region = entry["path"], entry.get("region")
        name = Path(path).stem
        if name in self.viewer.layers and self.viewer.layers[name].metadata.get(SOURCE_KEY) == path and not region:
            layer = self.viewer.layers[name]
        else:
            try:
                data = read_array(path)
            except (ProjectError, OSError, ValueError) as exc:
                self.show_message(one_line(exc), error=True)
                return None
            if region and np.ndim(data) == len(region):  # the suggested tile (channels: the whole image)
                data = data[tuple(slice(a, b) for a, b in region)]
                name += region_text(region)
            layer = self.viewer.add_image(data, name=name, metadata={SOURCE_KEY: path})
        self.viewer.layers.selection.active = layer
        self.image_combo.setCurrentText(layer.name)
        if self.checkpoint_combo.count() and not self._running:
            self.predict()
        else:
            self.show_message(f"Opened {layer.name} (suggested #{entry['rank']}).")
        return layer

    def _add_layers(self, data: Any, title: str, multilabel: bool, **meta: Any) -> list:
        """Labels layers of `data` (an array or a list of levels) with the source layer's scale and translate."""
        layers = labels_layers(data, title, multilabel, self.session.project.config.class_names, **meta)
        level0 = layers[0][0][0] if isinstance(layers[0][0], list) else layers[0][0]
        context = self._context
        return add_labels(self.viewer, layers, **spatial_transform(context["layer"], context["channel_axis"], np.ndim(level0)))

    def _saved(self, record, what: str = "") -> None:  # what: blocks done, or an instance prediction's objects
        duration_s = f" in {record.duration_s:.1f} s" if record.duration_s is not None else ""
        count = f" ({what})" if what else ""
        self.show_message(f"Saved {record.path} ({record.prediction_id}) from {record.checkpoint_id}{duration_s}{count}.")


def _read_back(project, record) -> tuple[Any, np.ndarray]:
    """(record, labels): the prediction TIFF the child saved, read in the worker thread."""
    from ...project.image_io import read_tiff

    return record, read_tiff(project.layout.absolute(record.path))
