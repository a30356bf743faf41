"""Point-windowed training inputs of the Train tab: a YAML spec file, or layers of the viewer.

Layers are never trained on in memory: the chosen layers are written into `<project>/point_data/`
(zarr volumes, synapses.csv, regions.json and spec.yaml, replaced on every start; see `point_data`) and
that spec is trained with `train.point_run.train_points`, exactly as `nta train-points
<project>/point_data/spec.yaml` would. The layers are converted and checked in the GUI thread (fast,
errors shown at once); the volumes are written and the spec validated in the training child process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ...data.annotations import (
    Synapse,
    regions_from_napari_shapes,
    synapses_from_napari_lines,
    synapses_from_napari_points,
)
from ...project.errors import ProjectError
from ...project.run_options import TrainOptions
from ..child_tasks import train_points_layers, train_points_spec
from ..layer_choice import image_data
from ..point_data import DATA_FOLDER, layer_spec, spec_preview
from ..point_layer_roles import LAYER_ROLES, guess

SOURCES = ("Spec file (YAML)", "Layers in the viewer")
OPTIONAL = {"segmentation"}  # roles that may be left out (their combo starts with NONE)
NONE = "(none)"


class PointsPanel(QWidget):
    def __init__(self, viewer, parent: QWidget | None = None, *, session=None):
        super().__init__(parent)
        self.viewer = viewer
        self.session = session
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.source = QComboBox()
        self.source.addItems(SOURCES)
        self.source.currentIndexChanged.connect(self._source_changed)
        self.source.setToolTip(
            f"Layers are written to <project>/{DATA_FOLDER}/ (zarr, synapses.csv, regions.json, spec.yaml) on Start, "
            "then trained like `nta train-points` on that spec"
        )
        form.addRow("Train from", self.source)
        self.spec_path = QLineEdit()
        self.spec_path.setPlaceholderText("spec.yaml of `nta train-points`")
        self.spec_path.editingFinished.connect(self.describe_spec)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.spec_row = row(self.spec_path, browse)
        form.addRow("Spec file", self.spec_row)
        self.spec_info = QLabel("")
        self.spec_info.setWordWrap(True)
        form.addRow(self.spec_info)
        self.combos = {role: QComboBox() for role in LAYER_ROLES}
        names = {"image": "Image", "label0": "label0 (pre)", "label1": "label1 (post)", "segmentation": "Segmentation", "points": "Synapses", "regions": "Regions (split)"}
        self.picked: set[str] = set()  # roles the user chose by hand: never re-guessed
        for role, combo in self.combos.items():
            combo.setToolTip(_tips()[role])
            combo.activated.connect(lambda *_, r=role: self.picked.add(r))
            form.addRow(names[role], combo)
        self.window = [spin(QSpinBox(), 1, 4096, value) for value in (16, 64, 64)]
        self.window_row = row(*self.window)
        form.addRow("Window (z, y, x)", self.window_row)
        self.depth, self.base = spin(QSpinBox(), 1, 6, 3), spin(QSpinBox(), 1, 512, 16)
        self.model_row = row(self.depth, self.base)
        form.addRow("U-Net depth / base", self.model_row)
        self.form = form
        self.assign = None
        if session is not None:
            from .assign_partners import AssignPartners

            self.assign = AssignPartners(viewer, session, self)
            form.addRow(self.assign)
        emitters = (viewer.layers.events.inserted, viewer.layers.events.removed)
        for emitter in emitters:
            emitter.connect(self.refresh_layers)
        self.destroyed.connect(lambda *_: [e.disconnect(self.refresh_layers) for e in emitters])  # the viewer may outlive us
        self.refresh_layers()
        self._source_changed()

    # ---- state
    def uses_spec(self) -> bool:
        return self.source.currentIndex() == 0

    def _source_changed(self, *_: Any) -> None:
        spec = self.uses_spec()
        for widget in (self.spec_row, self.spec_info):
            self.form.setRowVisible(widget, spec)
        for widget in (*self.combos.values(), self.window_row, self.model_row, *([self.assign] if self.assign else [])):
            self.form.setRowVisible(widget, not spec)

    def refresh_layers(self, *_: Any) -> None:
        """Each role lists the layers of its types; a role the user has not picked by hand takes the layer that
        suits it best (`point_layer_roles.guess`: names, shape types, features), label0 and label1 never the same."""
        for role, combo in self.combos.items():
            kinds = LAYER_ROLES[role]
            current = combo.currentText()
            combo.clear()
            combo.addItems([NONE] * (role in OPTIONAL) + [layer.name for layer in self.viewer.layers if type(layer).__name__ in kinds])
            if role not in self.picked:
                taken = [self.combos["label0"].currentText()] if role == "label1" else []
                current = guess(role, self.viewer.layers, taken) or (NONE if role in OPTIONAL else current)
            combo.setCurrentIndex(max(combo.findText(current), 0 if combo.count() else -1))

    def settings(self) -> dict[str, str]:
        values = {"train.points_source": "spec" if self.uses_spec() else "layers", "train.spec": self.spec_path.text().strip()}
        values |= {f"train.{role}": combo.currentText() for role, combo in self.combos.items() if combo.currentText()}
        values["train.window"] = ",".join(str(box.value()) for box in self.window)
        values["train.model"] = f"{self.depth.value()},{self.base.value()}"
        return values

    def restore(self, saved: dict[str, str]) -> None:
        self.source.setCurrentIndex(1 if saved.get("train.points_source") == "layers" else 0)
        self.spec_path.setText(saved.get("train.spec", ""))
        same = saved.get("train.label0") and saved.get("train.label0") == saved.get("train.label1")
        for role, combo in self.combos.items():
            index = combo.findText(saved.get(f"train.{role}", ""))
            if index >= 0 and not (same and role in ("label0", "label1")):  # a saved label0 = label1 is no choice
                combo.setCurrentIndex(index)
                self.picked.add(role)
        for boxes, key in ((self.window, "train.window"), ((self.depth, self.base), "train.model")):
            values = [v for v in saved.get(key, "").split(",") if v.strip().isdigit()]
            for box, value in zip(boxes, values, strict=False):
                box.setValue(int(value))
        self.describe_spec()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Point-windowed training spec", "", "YAML spec (*.yaml *.yml)")
        if path:
            self.spec_path.setText(path)
            self.describe_spec()

    def describe_spec(self) -> None:
        path = self.spec_path.text().strip()
        if not path:
            self.spec_info.setText("Epochs, batch size and learning rate come from the spec.")
            return
        try:
            spec, project = spec_preview(path)
        except ValueError as exc:
            self.spec_info.setText(str(exc))
            return
        training = spec.get("training") if isinstance(spec.get("training"), dict) else {}
        window = spec.get("window_size")
        window = "x".join(map(str, window)) if isinstance(window, list) else "?"
        given = [f"{training[key]} {name}" for key, name in (("epochs", "epochs"), ("batch_size", "batch"), ("lr", "lr")) if key in training]
        self.spec_info.setText(
            f"trains project {project}; window {window}" + "".join(f", {item}" for item in given)
            + " (from the spec; the rest as its defaults; checked on Start)"
        )

    # ---- what Start runs
    def prepare(self, project, options: TrainOptions) -> tuple[tuple, str]:
        """((child task function, its arguments...), a line for the log); ProjectError when the inputs
        are incomplete or wrong."""
        if self.uses_spec():
            path = self.spec_path.text().strip()
            if not path:
                raise ProjectError("choose a spec file (YAML) for point-windowed training, or train from layers")
            try:
                _, spec_project = spec_preview(path)
            except ValueError as exc:
                raise ProjectError(str(exc)) from None
            return (train_points_spec, path, options), f"point-windowed training from {path} (project {spec_project})"
        return self._prepare_layers(project, options)

    def _layer(self, role: str, purpose: str = "point-windowed training"):
        name = self.combos[role].currentText()
        if not name or name not in self.viewer.layers:
            raise ProjectError(f"choose a {self.form.labelForField(self.combos[role]).text()} layer for {purpose}")
        return self.viewer.layers[name]

    def image_layer(self):
        return self._layer("image")

    def _prepare_layers(self, project, options: TrainOptions) -> tuple[tuple, str]:
        inputs = self.layer_inputs(project, options)
        folder, _, synapses, regions, _ = inputs
        line = f"point-windowed training from layers ({len(synapses)} synapses, {len(regions)} regions) via {folder}/spec.yaml"
        return (train_points_layers, *inputs, options), line

    def layer_inputs(self, project, options: TrainOptions, *, segmentation: bool = False) -> tuple:
        """(point_data folder, volumes, synapses, regions, spec): what `write_point_data` writes. The
        segmentation layer is written when chosen; `segmentation=True` requires it (assignment).
        ProjectError when the layers are incomplete or wrong."""
        if project.manifest.pairs:
            raise ProjectError(
                "this project holds image/mask pairs: point-windowed training from layers turns its network into a "
                "3D pre/post model; create a separate project for synapses"
            )
        image = self._layer("image")
        volume = image_data(image)
        if volume.ndim != 3:
            raise ProjectError(f"image layer {image.name!r} has {volume.ndim} axes: point windows need a 3D (z, y, x) volume")
        volumes = {"img": volume}
        if self.combos["label0"].currentText() == self.combos["label1"].currentText():
            raise ProjectError(
                f"label0 (pre) and label1 (post) are the same layer {self.combos['label0'].currentText()!r}: choose the "
                "presynaptic and the postsynaptic labels layers"
            )
        for key in ("label0", "label1"):
            layer = self._layer(key)
            volumes[key] = image_data(layer)
            if volumes[key].shape != volume.shape:
                raise ProjectError(f"labels layer {layer.name!r} has shape {volumes[key].shape}, the image {volume.shape}: they must match")
        if segmentation or self.combos["segmentation"].currentText() not in ("", NONE):
            layer = self._layer("segmentation", "assigning synapses to cells")
            volumes["segmentation"] = image_data(layer)
            if volumes["segmentation"].shape != volume.shape:
                raise ProjectError(f"labels layer {layer.name!r} has shape {volumes['segmentation'].shape}, the image {volume.shape}: they must match")
        synapses = _synapses(self._layer("points"), image)
        regions_layer = self._layer("regions")
        regions = regions_from_napari_shapes(_voxels(regions_layer, image), regions_layer.shape_type, _features(regions_layer))
        folder = project.root / DATA_FOLDER
        spec = layer_spec(
            project.root, image.scale, [b.value() for b in self.window], self.depth.value(), self.base.value(), options,
            segmentation="segmentation" in volumes, lines=all(s.end is not None for s in synapses),
        )  # fmt: skip
        return str(folder), volumes, synapses, regions, spec


# ---- helpers
def _features(layer) -> dict[str, list]:
    features = layer.features
    return {str(column): features[column].tolist() for column in features.columns}


def _voxels(layer, image) -> Any:
    """The layer's coordinates in voxels of the image (scale and translate of both applied)."""
    scale, shift = np.asarray(layer.scale[-3:]), np.asarray(layer.translate[-3:])

    def to_image(vertices) -> np.ndarray:
        world = np.asarray(vertices, dtype=float)[..., -3:] * scale + shift
        return (world - np.asarray(image.translate[-3:])) / np.asarray(image.scale[-3:])

    return to_image(layer.data) if type(layer).__name__ == "Points" else [to_image(v) for v in layer.data]


def _synapses(layer, image) -> list[Synapse]:
    if type(layer).__name__ == "Points":
        found = synapses_from_napari_points(_voxels(layer, image), _features(layer))
    else:
        found = synapses_from_napari_lines(_voxels(layer, image), layer.shape_type, _features(layer))
    if not found:
        raise ProjectError(f"layer {layer.name!r} holds no synapse: add points (or lines) first")
    return found


def row(*widgets: QWidget) -> QWidget:
    """The widgets side by side (labels and buttons at their size, the others stretched)."""
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget, 0 if isinstance(widget, QLabel | QPushButton) else 1)
    return holder


def spin(box, low, high, value, special: str = ""):
    box.setRange(low, high)
    box.setValue(value)
    if special:
        box.setSpecialValueText(special)
    return box


def number(kind: type, text: str | None, default):
    try:
        return kind(text) if text else default
    except ValueError:
        return default


def _tips() -> dict[str, str]:
    return {
        "image": "3D image layer (z, y, x)",
        "label0": "Labels layer of the presynaptic target (channel 0)",
        "label1": "Labels layer of the postsynaptic target (channel 1)",
        "segmentation": "Labels layer of the cells (one id per cell): Assign partners gives each synapse a pre- and a postsynaptic cell",
        "points": "a Points layer (one point per synapse) or a Shapes layer of lines (pre -> post)",
        "regions": "a Shapes layer of rectangles / boxes with a `split` property (train or val); "
        "3D rectangles in one z plane need `z_start` and `z_stop` properties",
    }
