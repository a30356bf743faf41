"""SAM3 tab: choose an image and a prompt mode; the prompt layer is created or reused, SAM3 previews run in a
worker, 3D propagation streams frames into a Labels layer, and an accepted preview becomes a dataset pair.

The tab holds no SAM3 logic: model folders are checked by `annotate.model_folder`, previews run through
`annotate.annotator.Annotator`, prompts come from `annotate.from_layers`, and accepting calls
`annotate.accept.accept_preview` (the Dataset tab's mask preparation)."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QWidget,
)

from ...annotate.accept import AcceptForm
from ...annotate.annotator import Annotator
from ...annotate.errors import Sam3Error
from ...annotate.from_layers import frame_prompts, prompts_for_mode
from ...annotate.model_folder import (
    SAM3_DEVICES,
    ModelFolder,
    choose_propagation_folder,
    validate_model_folder,
)
from ...annotate.prompts import FramePrompts, Prompts
from ...cancel import CancelToken
from ...project.errors import ProjectError
from ...project.schemas.sam3 import DEFAULT_LAYER_NAMES, PromptMode
from .. import sam3_layers
from ..frame_writer import FrameWriter
from ..layer_choice import chosen_image, image_data, refill_image_combo
from ..workers import TaskFailed, task_worker
from .base import ProjectTab, probability_spin
from .sam3_plane import PlanePanel

MODE_LABELS = {  # shown text of each prompt mode (`Sam3Config.prompt_mode`)
    "2d_box": "2D box",
    "2d_points": "2D points",
    "live_points": "Live points",
    "2d_exemplar": "2D exemplar (find similar)",
    "2d_text": "2D text (find all)",
    "3d_multiplex": "3D propagation",  # the key is stored in project configs
}
FORM_LABELS = {"slice": "slice pair (2D)", "slices": "one pair per labelled slice", "stack": "stack pair (3D)"}  # of `AcceptForm`
LIVE_DEBOUNCE_MS = 150
CROP_MARGIN = 64  # pixels of context kept around the labelled region of a large image
LAYER_KEY = "sam3_image"


class Sam3Tab(ProjectTab):
    title = "SAM3"
    needs_project = False  # previews work without a project; accepting needs one

    # ------------------------------------------------------------------ build
    def build(self) -> None:
        self.annotator = Annotator()
        self.worker = None
        self.writer: FrameWriter | None = None
        self.cancel: CancelToken | None = None
        self.last_preview = None
        self._prompts: list[dict[str, Any]] = []
        self._preview_slice: int | None = None
        self._pending_live = False
        self._live_layer = None
        self._loading_config = False

        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image layer to annotate (2D, RGB or a 3D stack)")
        self.image_folder, image_row = self._folder_edit(
            "SAM3.0 image model folder: model.safetensors + config.json (also 3D propagation with the SAM3.0 "
            "tracker, CPU or CUDA), or sam3.pt")
        self.multiplex_folder, multiplex_row = self._folder_edit(
            "SAM3.1 model folder with sam3.1_multiplex.pt: 3D propagation on CUDA; when it is empty or cannot run "
            "here, 3D propagation uses the image model folder's SAM3.0 tracker")
        self.device = QComboBox()
        self.device.addItems(SAM3_DEVICES)
        self.device.setToolTip("auto: CUDA when present; on CPU, 3D propagation runs the SAM3.0 tracker of a Hugging Face folder")
        self.threshold = probability_spin("Mask probability threshold (box, point and exemplar modes: also the detection score)",
                                          low=0.05, high=0.95)
        self.mode = QComboBox()
        for key in get_args(PromptMode):
            self.mode.addItem(MODE_LABELS[key], key)
        self.mode.setToolTip("Which prompt layer to draw in; it is created (or reused) over the image")
        self.layer_button = QPushButton("Prompt layer")
        self.layer_button.setToolTip("Create (or select) the current mode's prompt layer over the image and start drawing")
        self.layer_button.clicked.connect(self._mode_changed)
        mode_row = QWidget()
        row = QHBoxLayout(mode_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.mode, 1)
        row.addWidget(self.layer_button)
        self.positive = QRadioButton("positive")
        self.negative = QRadioButton("negative")
        self.positive.setChecked(True)
        polarity = QWidget()
        row = QHBoxLayout(polarity)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.positive)
        row.addWidget(self.negative)
        self.preview_button = QPushButton("Run preview")
        self.preview_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.form_combo = QComboBox()
        for key in get_args(AcceptForm):
            self.form_combo.addItem(FORM_LABELS[key], key)
        self.form_combo.setToolTip("How an accepted preview enters the dataset (a 2D preview on a stack is always a slice pair)")
        self.mask_mode = QComboBox()
        self.mask_mode.setToolTip(
            "binary: every object is foreground; target-class: every object becomes the chosen class; "
            "instance (instance projects): every object keeps its own id"
        )
        self.target_class = QComboBox()
        self.accept_button = QPushButton("Accept preview to Dataset")
        self.accept_button.clicked.connect(self.accept)
        self.plane = PlanePanel(self)

        form = QFormLayout()
        form.addRow("Image layer", self.image_combo)
        form.addRow("Image model", image_row)
        form.addRow("SAM3.1 model", multiplex_row)
        form.addRow("Device", self.device)
        form.addRow("Threshold", self.threshold)
        form.addRow("Prompt mode", mode_row)
        form.addRow("New prompts", polarity)
        for label, widget in self.plane.rows():
            form.addRow(label, widget)
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button, 1)
        buttons.addWidget(self.stop_button)
        accept = QFormLayout()
        accept.addRow("Accept as", self.form_combo)
        accept.addRow("Mask mode", self.mask_mode)
        accept.addRow("Target class", self.target_class)
        self.layout().addLayout(form)
        self.layout().addLayout(buttons)
        self.layout().addLayout(accept)
        self.layout().addWidget(self.accept_button)

        self.live_timer = QTimer(self)
        self.live_timer.setSingleShot(True)
        self.live_timer.setInterval(LIVE_DEBOUNCE_MS)
        self.live_timer.timeout.connect(self._live_preview)
        for signal in (self.device.currentTextChanged, self.threshold.valueChanged, self.image_folder.editingFinished,
                       self.multiplex_folder.editingFinished, self.plane.text.editingFinished, self.plane.tile.valueChanged):
            signal.connect(self._save_config)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.positive.toggled.connect(self._polarity_changed)
        self.image_combo.currentTextChanged.connect(self._image_chosen)
        self.mask_mode.currentTextChanged.connect(lambda text: self.target_class.setEnabled(text == "target-class"))
        self._watch_layers()
        self._fill_images()
        self._fill_mask_modes()
        self._update_buttons()

    def _folder_edit(self, tooltip: str) -> tuple[QLineEdit, QWidget]:
        edit = QLineEdit()
        edit.setToolTip(tooltip)
        edit.setPlaceholderText("choose a folder…")
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(lambda: self._browse(edit))
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        row.addWidget(browse)
        return edit, holder

    def _browse(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "SAM3 model folder", edit.text())
        if folder:
            edit.setText(folder)
            self._save_config()

    # ------------------------------------------------------------------ layers
    def _watch_layers(self) -> None:
        layers = self.viewer.layers
        emitters = (layers.events.inserted, layers.events.removed)
        for emitter in emitters:
            emitter.connect(self._fill_images)
        self.viewer.dims.events.current_step.connect(self._stepped)

        def disconnect(*_) -> None:  # the viewer may outlive this widget
            for emitter in emitters:
                emitter.disconnect(self._fill_images)
            self.viewer.dims.events.current_step.disconnect(self._stepped)

        self.destroyed.connect(disconnect)

    def image_layer(self):
        return chosen_image(self.image_combo, self.viewer)

    def _fill_images(self, event=None) -> None:
        refill_image_combo(self.image_combo, self.viewer, self.session, LAYER_KEY)
        self._update_buttons()

    def _image_chosen(self, name: str) -> None:
        if name:
            self.session.remember(layers={LAYER_KEY: name})
        self._update_buttons()

    def layer_names(self) -> dict[str, str]:
        project = self.session.project
        return {**DEFAULT_LAYER_NAMES, **(project.sam3.layer_names if project is not None else {})}

    def current_mode(self) -> str:
        return self.mode.currentData()

    def prompt_layer(self, create: bool = True):
        """The prompt layer of the current mode (created over the image when missing and `create`)."""
        mode, name = self.current_mode(), self.layer_names()[self.current_mode()]
        if not create:
            return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401 (LayerList has no get)
        return sam3_layers.ensure_prompt_layer(self.viewer, mode, name, self.image_layer(), self.positive.isChecked())

    def _mode_changed(self) -> None:
        mode = self.current_mode()
        if "ff6b6b" in self.message.styleSheet():  # an error about the previous mode no longer applies
            self.show_message("")
        self.preview_button.setText("Propagate" if mode == "3d_multiplex" else "Run preview")
        self.form_combo.setCurrentIndex(self.form_combo.findData("stack" if mode == "3d_multiplex" else "slice"))
        self.positive.setChecked(True)  # a new prompt starts positive
        if self.image_layer() is not None:
            try:
                layer = self.prompt_layer()
            except ValueError as exc:
                self.show_message(str(exc), error=True)
                return
            self._follow_live(layer if mode == "live_points" else None)
        self._save_config()
        self._update_buttons()

    def _polarity_changed(self) -> None:
        layer = self.prompt_layer(create=False)
        if layer is not None:
            sam3_layers.set_polarity(layer, self.positive.isChecked())

    def _follow_live(self, layer) -> None:
        """Live points: every change of the layer's points schedules a debounced preview."""
        if self._live_layer is not None:
            self._live_layer.events.data.disconnect(self._live_changed)
        self._live_layer = layer
        if layer is not None:
            layer.events.data.connect(self._live_changed)

    def _live_changed(self, event=None) -> None:
        if getattr(event, "action", "added") in ("added", "removed", "changed"):
            self.live_timer.start()

    def _live_preview(self) -> None:
        if self.worker is not None:
            self._pending_live = True  # run again with the newest points when this one is done
            return
        if self._live_layer is not None and len(self._live_layer.data):
            self.run()

    def viewer_slice(self) -> int | None:
        """The current z index of a stack image layer (None for 2D images)."""
        layer = self.image_layer()
        if layer is None or self._spatial_ndim(layer) != 3:
            return None
        point = list(self.viewer.dims.point)[-layer.ndim :]
        depth = np.shape(image_data(layer))[0]
        return int(min(max(round(float(layer.world_to_data(point)[0])), 0), depth - 1))

    @staticmethod
    def _spatial_ndim(layer) -> int:
        return layer.ndim  # napari's ndim leaves out the RGB axis

    def _stepped(self, event=None) -> None:
        self._update_buttons()

    # ------------------------------------------------------------------ config
    def refresh(self) -> None:
        project = self.session.project
        if project is None:
            return
        config = project.sam3
        self._loading_config = True
        try:
            self.image_folder.setText(config.image_model_folder or "")
            self.multiplex_folder.setText(config.multiplex_model_folder or "")
            self.device.setCurrentText(config.device)
            self.threshold.setValue(config.threshold)
            self.mode.setCurrentIndex(self.mode.findData(config.prompt_mode))
            self.plane.text.setText(config.text)
            self.plane.score.setValue(config.score_threshold)
            self.plane.tile.setValue(config.tile_size)
        finally:
            self._loading_config = False
        self._fill_images()
        self._fill_mask_modes()

    def _fill_mask_modes(self) -> None:
        project = self.session.project
        output_mode = project.architecture.output_mode if project is not None else "binary"
        multiclass = output_mode == "multiclass"
        self.mask_mode.clear()
        # instance: each SAM3 object keeps its own id (touching objects stay apart); binary merges them into foreground
        self.mask_mode.addItems({"multiclass": ["target-class"], "instance": ["instance"]}.get(output_mode, ["binary"]))
        self.target_class.clear()
        if project is not None:
            self.target_class.addItems(project.config.class_names[1:])
        self.target_class.setEnabled(multiclass)

    def _save_config(self, *_) -> None:
        project = self.session.project
        if project is None or self._loading_config:
            return

        def change(config) -> None:
            config.image_model_folder = self.image_folder.text().strip() or None
            config.multiplex_model_folder = self.multiplex_folder.text().strip() or None
            config.device = self.device.currentText()
            config.threshold = round(self.threshold.value(), 4)
            config.prompt_mode = self.current_mode()
            config.text = self.plane.text.text().strip()[:200]
            config.score_threshold = round(self.plane.score.value(), 4)
            config.tile_size = self.plane.tile.value()

        try:
            project.update_sam3(change)
        except ProjectError as exc:
            self.show_message(str(exc), error=True)

    # ------------------------------------------------------------------ previews
    def _update_buttons(self) -> None:
        idle = self.worker is None
        has_image = self.image_layer() is not None
        self.preview_button.setEnabled(idle and has_image)
        self.layer_button.setEnabled(has_image)
        self.stop_button.setEnabled(not idle and self.cancel is not None)
        self.accept_button.setEnabled(idle and self.session.project is not None)
        self.plane.set_enabled(idle, has_image, self.current_mode())

    def run(self) -> bool:
        """Run the current mode: a 2D preview, or 3D propagation. False (red message) when refused."""
        if self.current_mode() == "3d_multiplex":
            return self._refusing(self._start_propagation)
        return self.run_2d()

    def run_2d(self, *, in_view: bool = False, scan: bool = False) -> bool:
        """A 2D run (`PlanePanel.start`): the plane, a window on a large image, the tiles in view, or a scan."""

        def start() -> bool:
            layer = self.image_layer()
            if layer is None:
                raise Sam3Error("choose an image layer to annotate first")
            self._save_config()  # the text, score and tile size used are the ones restored on reopen
            self.plane.start(self._folder("2d"), layer, self.current_mode(), in_view=in_view, scan=scan)
            return True

        return self._refusing(start)

    def _refusing(self, start) -> bool:
        try:
            return start()
        except (Sam3Error, ValueError) as exc:
            self.show_message(str(exc), error=True)
            return False

    def _folder(self, spatial: str) -> ModelFolder:
        """2D: the image model folder; 3D: the SAM3.1 folder when it is set and valid for the device, else the
        image model folder's SAM3.0 tracker (`choose_propagation_folder`)."""
        image, device = self.image_folder.text().strip() or None, self.device.currentText()
        if spatial == "2d":
            return validate_model_folder(image, "2d", device)
        return choose_propagation_folder(self.multiplex_folder.text().strip() or None, image, device)

    def read_prompts(self, mode: str, spatial: int, z: int | None, plane_shape, text: str | None = None) -> Prompts:
        """The current mode's prompts on the plane shown; in text mode the exemplar boxes are optional."""
        layer = self.prompt_layer(create=False)
        if layer is None or len(layer.data) == 0:
            if mode == "2d_text":
                return Prompts(text=text or "")
            raise Sam3Error(f"the layer {self.layer_names()[mode]!r} has no prompt yet: draw in it, then run the preview")
        return prompts_for_mode(mode, layer.data, positive=sam3_layers.polarity(layer), spatial_ndim=spatial,
                                slice_index=z, plane_shape=plane_shape, text=text)

    def _start_propagation(self) -> bool:
        layer = self.image_layer()
        if layer is None:
            raise Sam3Error("choose an image stack to propagate through first")
        if self._spatial_ndim(layer) != 3:
            raise Sam3Error(f"3D propagation needs a 3D stack, {layer.name!r} is 2D: use a 2D prompt mode")
        folder = self._folder("3d")
        prompt_layer = self.prompt_layer(create=False)
        frames = self.read_frame_prompts(prompt_layer)
        volume = np.asarray(image_data(layer))
        target = sam3_layers.ensure_labels_layer(self.viewer, self.layer_names()["propagated"], volume.shape[:3], layer)
        target.data[...] = 0
        target.refresh()
        self.writer = FrameWriter(target, parent=self)
        self.cancel = CancelToken()
        writer, cancel, threshold = self.writer, self.cancel, self.threshold.value()
        self._prompts = [r for z, p in frames.frames.items() for r in p.as_records("3d_multiplex", frame=z)]
        self._preview_slice = None

        def work() -> None:
            backend = self.annotator.propagation_backend(folder)
            for index, labels in backend.propagate(volume, frames, threshold, cancel):
                writer.put(index, labels)

        self.writer.start()
        self.show_message(f"Propagating with the {folder.describe()} from slice(s) {', '.join(map(str, sorted(frames.frames)))}…")
        self._start(work, lambda _: self._propagated(folder))
        return True

    def read_frame_prompts(self, layer) -> FramePrompts:
        if layer is None or len(layer.data) == 0 or np.shape(layer.data)[-1] < 3:
            raise Sam3Error(f"click objects in {self.layer_names()['3d_multiplex']!r} on one or more slices of the stack first")
        return frame_prompts(np.asarray(layer.data), positive=sam3_layers.polarity(layer))

    def _propagated(self, folder: ModelFolder) -> None:
        writer, self.writer = self.writer, None
        writer.finish()
        stopped = self.cancel is not None and self.cancel.cancelled
        self.show_message(f"{'Stopped after' if stopped else 'Propagated through'} {writer.count} slice(s) with the {folder.describe()}.")

    def stop(self) -> None:
        if self.cancel is not None:
            self.cancel.cancel()

    def _start(self, work, done) -> None:
        self.worker = task_worker(work)
        self.worker.returned.connect(lambda result: self._finished(result, done))
        self._update_buttons()
        self.worker.start()

    def _finished(self, result, done) -> None:
        self.worker = None
        try:
            if isinstance(result, TaskFailed):
                if self.writer is not None:
                    self.writer.finish()
                    self.writer = None
                self.show_message(f"SAM3 failed: {result.message}", error=True)
            else:
                done(result)
        finally:
            self.cancel = None
            self._update_buttons()
        if self._pending_live:
            self._pending_live = False
            self.live_timer.start()

    def wait(self, timeout_s: float = 60) -> None:
        """Process events until the running preview or propagation has been handled (tests, closing)."""
        from qtpy.QtCore import QCoreApplication, QElapsedTimer, QThread

        clock = QElapsedTimer()
        clock.start()
        while (self.worker is not None or self.live_timer.isActive()) and clock.elapsed() < timeout_s * 1000:
            QCoreApplication.processEvents()
            QThread.msleep(5)  # let the worker have the CPU (and the GIL) instead of spinning

    # ------------------------------------------------------------------ accept
    def accept(self):
        """Add the (possibly hand-corrected) preview as dataset pair(s); returns the records or None."""
        from ...annotate.accept import accept_preview

        project, layer = self.session.project, self.image_layer()
        if project is None:
            self.show_message("Open or create a Training Project Folder to accept previews into.", error=True)
            return None
        if layer is None:
            self.show_message("Choose the image layer the preview belongs to.", error=True)
            return None
        three_d = self.current_mode() == "3d_multiplex"
        name = self.layer_names()["propagated" if three_d else "preview"]
        if name not in self.viewer.layers:
            self.show_message(f"No {name!r} layer yet: {'propagate' if three_d else 'run a preview'} first.", error=True)
            return None
        labels = np.asarray(self.viewer.layers[name].data)
        form = self.form_combo.currentData()
        z = self._preview_slice if not three_d else self.viewer_slice()
        if not three_d and z is not None:
            labels, form = labels[z], "slice"  # a 2D preview of one slice: always a slice pair
        options: dict[str, Any] = {"mask_mode": self.mask_mode.currentText()}
        if options["mask_mode"] == "target-class":
            options["target_class"] = self.target_class.currentText()
        image = image_data(layer) if self.plane.large and z is None else np.asarray(image_data(layer))
        if self.plane.large and z is None:
            options["crop_margin"] = CROP_MARGIN  # a large image: only the labelled region becomes the pair
        records = self.run_action(
            accept_preview, project, image, labels, prompts=self._prompts, form=form,
            slice_index=z, rgb=bool(getattr(layer, "rgb", False)), image_layer=layer.name, mask_layer=name, **options,
        )
        if records:
            ids = ", ".join(r.pair_id for r in records)
            self.show_message(f"Accepted into the dataset as {ids} ({', '.join(sorted({r.split for r in records}))}).")
        return records
