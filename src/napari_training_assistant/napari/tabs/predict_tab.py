"""Predict tab: segment an image layer with a project checkpoint in a child process, into the project's
`predictions/`.

A small in-memory layer is predicted whole (`predict_array`); the saved TIFF is read back in the worker
thread and shown as a Labels layer. A layer of any size (dask- or zarr-backed, multiscale, or more than
`IN_MEMORY_VOXELS` values) is predicted block-wise into OME-Zarr (`predict_volume_into_project`): its
output is shown at once as a lazily read (dask, uncached) multiscale Labels layer, refreshed as blocks
complete (at most every `REFRESH_S`), with blocks done and ETA in the progress bar; Stop keeps the
finished blocks. The GUI thread only sets widgets and redraws.

An instance checkpoint's prediction is a Labels layer of object ids, post-processed with the "Objects" row's
settings (shown only for an instance checkpoint); the message says how many objects and the watershed
settings. The "What to label next" box is `suggest_panel.SuggestPanel`; this tab runs its ranking as it
runs a prediction: one child task at a time (`start_child`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
)

from ...progress import EventKind, ProgressEvent, duration
from ...project.errors import ProjectError
from ...project.run_options import IN_MEMORY_VOXELS
from ..child_tasks import VolumeSummary, predict_into_project, predict_volume_in_project
from ..layer_choice import image_data, image_layers, inserted_layer, refill_image_combo
from ..layer_insertion import warm_labels_layer
from ..prediction_layers import (
    LayerData,
    add_labels,
    has_channel_axis,
    labels_layers,
    ome_zarr_levels,
    probability_layer,
)
from ..progress_bar import ProgressBar
from ..workers import ChildTask, TaskFailed, child_worker
from . import prediction_correction
from .base import ProjectTab
from .objects_row import ObjectsRow, instance_details, tuning_note
from .prediction_correction import EDITED_KEY, PREDICTION_KEY
from .suggest_panel import LATEST, SOURCE_KEY, SuggestPanel

BEST = "best"  # the highest benchmark Dice on the current benchmark pairs
LAYER_KEY = "predict_image"
REFRESH_S = 0.5  # while blocks complete, the output layer is redrawn at most this often


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
        self.objects = ObjectsRow()
        self.objects.setToolTip("How an instance model's foreground and boundary become objects (seeded watershed)")
        self.objects_label = QLabel("Objects")
        self._objects_of: str | None = None  # the checkpoint whose post-processing the Objects row shows
        self.checkpoint_combo.currentIndexChanged.connect(self._show_objects)
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
        self.probabilities = QCheckBox("also show probabilities")
        self.probabilities.setToolTip(
            "Save the network's probabilities next to the labels and show them as an Image layer per output channel "
            "(float32 TIFF in memory, uint8 x255 block-wise)"
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
        self.progress = ProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.eta = QLabel("")
        form = QFormLayout()
        form.addRow("Image layer", self.image_combo)
        form.addRow("Checkpoint", self.checkpoint_combo)
        form.addRow(self.objects_label, self.objects)
        form.addRow("Channel axis", self.channel_axis)
        form.addRow("Tile size", self.tile_size)
        form.addRow("Tile overlap", self.overlap)
        form.addRow("Block size", self.block_size)
        form.addRow("Probabilities", self.probabilities)
        self.layout().addLayout(form)
        buttons, progress = QHBoxLayout(), QHBoxLayout()
        buttons.addWidget(self.predict_button, 1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.accept_button)
        progress.addWidget(self.progress, 1)
        progress.addWidget(self.eta)
        self.layout().addLayout(buttons)
        self.layout().addLayout(progress)
        self._running = False
        self.suggest_panel = SuggestPanel(self)
        self.layout().addWidget(self.suggest_panel)
        panel = self.suggest_panel  # its parts, reachable from the tab as before the split
        self.suggest_folder, self.suggest_button, self.suggestions = panel.suggest_folder, panel.suggest_button, panel.suggestions
        self.suggest, self.show_suggestions, self.open_suggestion = panel.suggest, panel.show_suggestions, panel.open_suggestion
        self._worker = None
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
        self._show_objects()

    # ----------------------------------------------------------------- combos
    def _layers_changed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if getattr(event, "type", None) == "inserted" and layer is not None:
            layer.events.name.connect(self._layers_changed)
        added = inserted_layer(event, "Image")
        self._fill_images(added.name if added is not None and not self._running else None)

    def _fill_images(self, prefer: str | None = None) -> None:
        """The image choice: a layer just added (the user's newest image), else the current or remembered one."""
        refill_image_combo(self.image_combo, self.viewer, self.session, LAYER_KEY, prefer)
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
        self._show_objects()
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

    def checkpoint(self) -> tuple[str | None, str]:
        """The chosen checkpoint: (its id or `latest`/`best`, or None without one; its text)."""
        return self.checkpoint_combo.currentData(), self.checkpoint_combo.currentText()

    def _chosen_record(self):
        project, checkpoint = self.session.project, self.checkpoint_combo.currentData()
        if project is None or checkpoint is None:
            return None
        try:
            return project.checkpoints.get(checkpoint)
        except ProjectError:
            return None

    def _instance_checkpoint(self) -> bool:
        record = self._chosen_record()
        return record is not None and record.architecture.get("output_mode") == "instance"

    def _show_objects(self, *_) -> None:
        """The Objects row only for an instance checkpoint, showing its post-processing (tuned after training)."""
        instance = self._instance_checkpoint()
        self.objects_label.setVisible(instance)
        self.objects.setVisible(instance)
        record = self._chosen_record()
        if instance and record.checkpoint_id != self._objects_of:  # the user's edits stay until another checkpoint
            self._objects_of = record.checkpoint_id
            tuning = record.metrics.get("instance_postprocessing")
            tuning = tuning if isinstance(tuning, dict) else None
            self.objects.show_checkpoint(tuning)
            self.objects_label.setText("Objects (tuned)" if tuning and tuning.get("tuned") else "Objects")
            self.objects_label.setToolTip(tuning_note(tuning))

    def _update_button(self) -> None:
        ready = self.image_combo.count() > 0 and self.checkpoint_combo.count() > 0 and not self._running
        self.predict_button.setEnabled(ready)
        if not self._running:
            self.predict_button.setText("Predict")
        self.suggest_panel.update_buttons(self._running)

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
        if self._instance_checkpoint():  # plain numbers: the child builds the InstanceSettings
            options["instance"] = self.objects.settings()
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
                probabilities="uint8" if self.probabilities.isChecked() else None,
                **options,
            )
            then = None
        else:
            self.task = ChildTask(predict_into_project, str(project.root), image_data(layer), label="prediction", source=source,
                                  save_probabilities=self.probabilities.isChecked(), **options)
            then = partial(_read_back, project)
        how = " block by block" if blocks else ""
        self.start_child(
            self.task, self._finished, busy=self.predict_button, busy_text="Predicting…", stoppable=blocks, then=then,
            on_event=self._on_event, message=f"Predicting {name}{how} with {self.checkpoint_combo.currentText()}…",
        )  # fmt: skip

    @property
    def running(self) -> bool:
        """Whether a child task (a prediction or a ranking) runs: one at a time."""
        return self._running

    def start_child(
        self,
        task: ChildTask,
        returned: Callable[[Any], None],
        *,
        busy: QPushButton,
        busy_text: str,
        message: str,
        stoppable: bool = False,
        then: Callable[[Any], Any] | None = None,
        on_event: Callable[[ProgressEvent], None] | None = None,
    ) -> None:
        """Run `task` in its child process: the tab is busy (`busy` says `busy_text`) until it returns, then
        `returned` gets its value or `TaskFailed`."""
        self.task = task
        self._set_running(True, stoppable=stoppable, busy=busy, busy_text=busy_text)
        self.show_message(message)
        self.last_task = task
        self._worker = child_worker(task, then=then)
        if on_event is not None:
            self._worker.yielded.connect(on_event)
        self._worker.returned.connect(partial(self._returned, returned))
        self._worker.start()

    def _returned(self, returned: Callable[[Any], None], result) -> None:
        self._set_running(False)
        returned(result)

    def predict_opened(self, layer, note: str) -> None:
        """An image layer just opened (a suggestion): choose it and predict it, else (no checkpoint, busy) say `note`."""
        self.viewer.layers.selection.active = layer
        self.image_combo.setCurrentText(layer.name)
        if self.checkpoint_combo.count() and not self._running:
            self.predict()
        else:
            self.show_message(note)

    def stop(self) -> None:
        """Stop a block-wise prediction after its current block; the blocks done stay in its output."""
        if self.task is not None and not self.task.stopping:
            self.task.stop()
            self.stop_button.setEnabled(False)
            self.eta.setText("stopping after the current block…")

    def _set_running(self, running: bool, stoppable: bool = False, busy: QPushButton | None = None, busy_text: str = "") -> None:
        self._running = running
        self.stop_button.setEnabled(running and stoppable)
        if running:
            self.live_layers, self._blocks_done = [], 0
            if busy is not None:
                busy.setText(busy_text)
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
        layers = self._labels_data(ome_zarr_levels(image), title, has_channel_axis(image), cache=False)
        if (output / "probabilities").is_dir():
            layers += self._probability_data(ome_zarr_levels(output / "probabilities"), title, cache=False)
        self.live_layers = add_labels(self.viewer, layers)
        self._refreshed_at = time.monotonic()

    def _refresh_live(self) -> None:
        """Redraw the output layers (napari reads the blocks in view again)."""
        for layer in self.live_layers:
            if layer in self.viewer.layers:
                layer.refresh()
        self._refreshed_at = time.monotonic()

    def _finished(self, result) -> None:
        if isinstance(result, TaskFailed):
            self.show_message(f"Prediction failed: {result.message}", error=True)
            return
        if isinstance(result, VolumeSummary):
            self._volume_finished(result)
        else:
            self.add_prediction_layer(*result, **self._context)
        if getattr(result, "status", "completed") == "completed":
            self.progress.setValue(self.progress.maximum())
        # no session.updated(): no other tab shows predictions, and re-reading the project in every tab would hold
        # the GUI thread as long again as drawing the labels

    def _volume_finished(self, result: VolumeSummary) -> None:
        self._refresh_live()
        if result.record is None:
            where = self.session.project.layout.relative(Path(result.output))
            self.show_message(f"Stopped: {self._blocks_done} of {result.blocks} blocks kept in {where} (not recorded).")
        else:
            details = instance_details(result.record.parameters)
            self._saved(result.record, f"{result.blocks} blocks" + (f"; {details}" if details else ""))

    def add_prediction_layer(self, record, labels: np.ndarray, probabilities: np.ndarray | None = None, *, layer, name: str,
                             channel_axis: int | None) -> list:
        """Show a saved prediction as a Labels layer over its image (one layer per output channel for a
        multilabel checkpoint), and its probabilities, when saved, as Image layers below it."""
        multilabel = record.parameters.get("output_mode") == "multilabel"
        title = f"{name} prediction ({record.checkpoint_id})"
        below = self._probability_data(probabilities, title) if probabilities is not None else []
        reused = None if multilabel else prediction_correction.unedited_prediction(self.viewer, name, np.shape(labels))
        if reused is not None:  # new data for the image's unedited prediction layer: no new layer for napari to build
            add_labels(self.viewer, below)
            reused.data, reused.name = labels, title
            added = [reused]
        else:  # one insertion in steps for all the layers: one layer built per step
            added = add_labels(self.viewer, below + self._labels_data(labels, title, multilabel))[len(below):]
        if not multilabel:  # one labels layer (instance: object ids): the user may correct it and accept it as a training pair
            added[0].metadata[PREDICTION_KEY] = {"prediction_id": record.prediction_id, "image_layer": name, "channel_axis": channel_axis}
            added[0].metadata[EDITED_KEY] = False
            if reused is None:
                added[0].events.paint.connect(partial(prediction_correction.mark_edited, added[0]))
            self.accept_button.setEnabled(True)
        self._saved(record, instance_details(record.parameters))
        return added

    def accept_correction(self):
        """Image + the (corrected) prediction layer -> a training pair (`prediction_correction.accept`)."""
        return prediction_correction.accept(self)

    def _labels_data(self, data: Any, title: str, multilabel: bool, **meta: Any) -> list[LayerData]:
        """Labels layer data of `data` (an array or a list of levels) with the source layer's scale and translate."""
        level0 = data[0] if isinstance(data, list) else data
        ndim = np.ndim(level0) - (1 if multilabel else 0)
        return labels_layers(data, title, multilabel, self.session.project.config.class_names, **meta, **self._placement(ndim))

    def _probability_data(self, data: Any, title: str, **meta: Any) -> list[LayerData]:
        """Image layer data of (C, *spatial) probabilities (an array or a list of levels) over the source image."""
        level0 = data[0] if isinstance(data, list) else data
        return [probability_layer(data, f"{title} probability", self.session.project.config.class_names, **meta,
                                  **self._placement(np.ndim(level0) - 1))]

    def _placement(self, ndim: int) -> dict[str, Any]:
        return spatial_transform(self._context["layer"], self._context["channel_axis"], ndim)

    def _saved(self, record, what: str = "") -> None:  # what: blocks done, or an instance prediction's objects
        duration_s = f" in {record.duration_s:.1f} s" if record.duration_s is not None else ""
        count = f" ({what})" if what else ""
        self.show_message(f"Saved {record.path} ({record.prediction_id}) from {record.checkpoint_id}{duration_s}{count}.")


def _read_back(project, record) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """(record, labels, probabilities or None): what the child saved, read in the worker thread (which also
    warms napari's first Labels layer)."""
    from ...project.image_io import read_tiff

    warm_labels_layer()
    path = record.probabilities_path
    return record, read_tiff(project.layout.absolute(record.path)), read_tiff(project.layout.absolute(path)) if path else None
