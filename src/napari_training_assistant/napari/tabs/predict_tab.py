"""Predict tab: segment an image layer with a project checkpoint in a child process; the prediction is
saved into the project's `predictions/` (by `predict_array`, in the child), read back in the worker
thread and shown as a Labels layer (the GUI thread only adds the layer)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QPushButton, QSpinBox

from ..child_tasks import predict_into_project
from ..layer_choice import image_data, image_layers, refill_image_combo
from ..workers import ChildTask, TaskFailed, child_worker
from .base import ProjectTab

LATEST = "latest"
LAYER_KEY = "predict_image"


def spatial_transform(layer, channel_axis: int | None, ndim: int) -> dict[str, Any]:
    """The source layer's scale/translate for a prediction with `ndim` spatial axes (channel axis dropped)."""
    scale, translate = list(layer.scale), list(layer.translate)
    if channel_axis is not None and not getattr(layer, "rgb", False) and len(scale) == ndim + 1:
        del scale[channel_axis], translate[channel_axis]
    return {"scale": scale, "translate": translate} if len(scale) == ndim else {}


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
        self.predict_button = QPushButton("Predict")
        self.predict_button.clicked.connect(self.predict)
        form = QFormLayout()
        form.addRow("Image layer", self.image_combo)
        form.addRow("Checkpoint", self.checkpoint_combo)
        form.addRow("Channel axis", self.channel_axis)
        form.addRow("Tile size", self.tile_size)
        form.addRow("Tile overlap", self.overlap)
        self.layout().addLayout(form)
        self.layout().addWidget(self.predict_button)
        self._worker = None
        self._running = False
        self.last_task: ChildTask | None = None
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
        if not self._running:
            self.predict_button.setText("Predict")

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
        task = ChildTask(
            predict_into_project,
            str(project.root),
            image_data(layer),
            label="prediction",
            source=f"napari layer {name}",
            checkpoint_id=checkpoint,
            channel_axis=channel_axis,
            tile_size=self.tile_size.value() or None,
            overlap=self.overlap.value(),
            device=default_device(),
        )
        self._context = {"layer": layer, "name": name, "channel_axis": channel_axis}
        self._running = True
        self.predict_button.setText("Predicting…")
        self._update_button()
        self.session.set_busy(True)
        self.show_message(f"Predicting {name} with {self.checkpoint_combo.currentText()}…")
        self.last_task = task
        self._worker = child_worker(task, then=partial(_read_back, project))
        self._worker.returned.connect(self._finished)
        self._worker.start()

    def _finished(self, result) -> None:
        self._running = False
        self._worker = None
        self.session.set_busy(False)
        self._update_button()
        if isinstance(result, TaskFailed):
            self.show_message(f"Prediction failed: {result.message}", error=True)
            return
        self.add_prediction_layer(*result, **self._context)
        self.session.updated()

    def add_prediction_layer(self, record, labels: np.ndarray, *, layer, name: str, channel_axis: int | None) -> list:
        """Show a saved prediction as a Labels layer over its image (one layer per output channel for a
        multilabel checkpoint)."""
        project = self.session.project
        title = f"{name} prediction ({record.checkpoint_id})"
        if record.parameters.get("output_mode") == "multilabel":
            names = project.config.class_names
            channels = [
                (labels[i], f"{title} {names[i] if i < len(names) else f'channel_{i}'}") for i in range(labels.shape[0])
            ]
        else:
            channels = [(labels, title)]
        added = [
            self.viewer.add_labels(data, name=label_name, **spatial_transform(layer, channel_axis, data.ndim))
            for data, label_name in channels
        ]
        duration = f" in {record.duration_s:.1f} s" if record.duration_s is not None else ""
        self.show_message(f"Saved {record.path} ({record.prediction_id}) from {record.checkpoint_id}{duration}.")
        return added


def _read_back(project, record) -> tuple[Any, np.ndarray]:
    """(record, labels): the prediction TIFF the child saved, read in the worker thread."""
    from ...project.image_io import read_tiff

    return record, read_tiff(project.layout.absolute(record.path))
