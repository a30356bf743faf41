"""Advanced tab: edit the U-Net descriptor with a live `describe()` summary and a compatibility verdict
against the latest checkpoint, save it (`project.set_architecture`), import weights or a bioimage.io package
(`import_pretrained`, as `nta import-weights`) and keep project notes."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...project.compatibility import describe_differences
from ...project.errors import ProjectError
from ...project.schemas.architecture import (
    INSTANCE_CHANNELS,
    PRESETS,
    ArchitectureConfig,
    architecture_differences,
    default_architecture,
)
from ...project.user_input import field_choices
from ..workers import TaskFailed, task_worker
from .base import ProjectTab

ERROR_STYLE = "color: #ff6b6b;"


def _choices(field: str) -> list[str]:
    return list(field_choices(ArchitectureConfig, field))


def parse_levels(text: str) -> list[int]:
    """'0, 1' -> [0, 1]; anything else is a one-line `ProjectError`."""
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ProjectError(f"anisotropic levels {text!r}: write encoder level numbers separated by commas, e.g. 0,1") from None


def _combo(items: list[str], tooltip: str) -> QComboBox:
    combo = QComboBox()
    combo.addItems(items)
    combo.setToolTip(tooltip)
    return combo


def _spin(low: int, high: int, tooltip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setToolTip(tooltip)
    return spin


class AdvancedTab(ProjectTab):
    title = "Advanced"

    # ------------------------------------------------------------------ build
    def build(self) -> None:
        self._loading = False
        self._dirty = False
        self._notes_dirty = False
        self._loaded: dict[str, Any] = ArchitectureConfig().model_dump(mode="json")
        self._latest: tuple[str, dict[str, Any]] | None = None
        self._import_worker = None

        self.spatial_dims = _combo(_choices("spatial_dims"), "2D images or 3D stacks")
        self.preset = _combo(_choices("preset"), "Starting depth and width; 'custom' once you change them")
        self.depth = _spin(1, 6, "Number of down-sampling levels")
        self.base_channels = _spin(1, 512, "Feature channels of the first level (doubled at each level)")
        self.normalization = _combo(_choices("normalization"), "Normalization layer in each conv block")
        self.upsampling = _combo(_choices("upsampling"), "transpose for 2D and 3D, bilinear for 2D, trilinear for 3D")
        self.input_channels = _spin(1, 64, "Channels of the input images (1 for grayscale, 3 for RGB)")
        self.output_mode = _combo(
            _choices("output_mode"),
            "binary: one foreground; multiclass: exclusive classes; multilabel: overlapping channels; "
            "instance: separate objects (foreground + boundary, split by a seeded watershed; masks keep one id per object)",
        )
        self.num_classes = _spin(2, 256, "Classes including background (multiclass)")
        self.output_channels = _spin(1, 256, "Output channels (set for multilabel; derived otherwise)")
        self.anisotropic = QLineEdit()
        self.anisotropic.setPlaceholderText("3D only, e.g. 0,1")
        self.anisotropic.setToolTip("Encoder levels (0-based) that pool in-plane only, for anisotropic voxels")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.01, 0.99)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setToolTip("Probability threshold of binary and multilabel predictions")

        form = QFormLayout()
        form.addRow("Spatial dims", self.spatial_dims)
        form.addRow("Preset", self.preset)
        form.addRow("Depth", self.depth)
        form.addRow("Base channels", self.base_channels)
        form.addRow("Normalization", self.normalization)
        form.addRow("Upsampling", self.upsampling)
        form.addRow("Input channels", self.input_channels)
        form.addRow("Output mode", self.output_mode)
        form.addRow("Classes", self.num_classes)
        form.addRow("Output channels", self.output_channels)
        form.addRow("Anisotropic levels", self.anisotropic)
        form.addRow("Threshold", self.threshold)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setObjectName("architecture_summary")
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.save_button = QPushButton("Save architecture")
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Discard unsaved edits: show the project's saved architecture")
        self.import_button = QPushButton("Import weights…")
        self.import_button.setToolTip(
            "Add a .pt/.pth/.safetensors file or a bioimage.io package (.zip); never unpickled with code execution, "
            "a package's code is never run"
        )
        self.import_folder_button = QPushButton("Package folder…")
        self.import_folder_button.setToolTip("Import an unpacked bioimage.io package: a folder holding rdf.yaml")
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.import_folder_button)
        arch_box = QGroupBox("U-Net architecture")
        arch_layout = QVBoxLayout(arch_box)
        arch_layout.addLayout(form)
        arch_layout.addWidget(self.summary)
        arch_layout.addWidget(self.verdict)
        arch_layout.addLayout(buttons)

        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Notes about this project (saved in project_config.json)")
        self.notes.setMaximumHeight(120)
        self.save_notes_button = QPushButton("Save notes")
        notes_box = QGroupBox("Notes")
        notes_layout = QVBoxLayout(notes_box)
        notes_layout.addWidget(self.notes)
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addStretch(1)
        row_layout.addWidget(self.save_notes_button)
        notes_layout.addWidget(row)
        self.layout().addWidget(arch_box)
        self.layout().addWidget(notes_box)

        for combo in (self.spatial_dims, self.normalization, self.upsampling, self.output_mode):
            combo.currentIndexChanged.connect(lambda _: self._edited())
        for spin in (self.input_channels, self.num_classes, self.output_channels):
            spin.valueChanged.connect(lambda _: self._edited())
        self.threshold.valueChanged.connect(lambda _: self._edited())
        self.anisotropic.textChanged.connect(lambda _: self._edited())
        self.preset.currentIndexChanged.connect(lambda _: self._preset_changed())
        self.depth.valueChanged.connect(lambda _: self._size_changed())
        self.base_channels.valueChanged.connect(lambda _: self._size_changed())
        self.notes.textChanged.connect(self._notes_edited)
        self.save_button.clicked.connect(lambda: self.save_architecture())
        self.revert_button.clicked.connect(self.revert)
        self.import_button.clicked.connect(self._ask_weights)
        self.import_folder_button.clicked.connect(self._ask_package_folder)
        self.save_notes_button.clicked.connect(lambda: self.save_notes())
        self._load(self._loaded)

    # ------------------------------------------------------------------ editing
    def _preset_changed(self) -> None:
        sizes = PRESETS.get(self.preset.currentText())
        if sizes and not self._loading:
            with self._quiet():
                self.depth.setValue(sizes["depth"])
                self.base_channels.setValue(sizes["base_channels"])
        self._edited()

    def _size_changed(self) -> None:
        sizes = PRESETS.get(self.preset.currentText())
        if not self._loading and sizes and (self.depth.value(), self.base_channels.value()) != (sizes["depth"], sizes["base_channels"]):
            with self._quiet():
                self.preset.setCurrentText("custom")
        self._edited()

    @contextlib.contextmanager
    def _quiet(self):
        """Set controls without each change re-validating (one update follows)."""
        loading, self._loading = self._loading, True
        try:
            yield
        finally:
            self._loading = loading

    def _edited(self) -> None:
        if self._loading:
            return
        self._dirty = True
        self._update_controls()
        self.update_summary()

    def _update_controls(self) -> None:
        mode = self.output_mode.currentText()
        self.num_classes.setEnabled(mode == "multiclass")
        self.output_channels.setEnabled(mode == "multilabel")
        self.threshold.setEnabled(mode in ("binary", "multilabel"))  # instance: the watershed's own thresholds

    def _load(self, architecture: dict[str, Any]) -> None:
        arch = ArchitectureConfig.model_validate(architecture)
        with self._quiet():
            self.spatial_dims.setCurrentText(arch.spatial_dims)
            self.preset.setCurrentText(arch.preset)
            self.depth.setValue(arch.depth)
            self.base_channels.setValue(arch.base_channels)
            self.normalization.setCurrentText(arch.normalization)
            self.upsampling.setCurrentText(arch.upsampling)
            self.input_channels.setValue(arch.input_channels)
            self.output_mode.setCurrentText(arch.output_mode)
            self.num_classes.setValue(arch.num_classes)
            self.output_channels.setValue(arch.output_channels)
            self.anisotropic.setText(",".join(str(level) for level in arch.anisotropic_levels))
            self.threshold.setValue(arch.threshold)
        self._loaded = arch.model_dump(mode="json")
        self._dirty = False
        self._update_controls()
        self.update_summary()

    def edited_architecture(self) -> dict[str, Any]:
        """The descriptor the controls describe (not validated). Activation and loss follow the output
        mode as `default_architecture` derives them; the saved loss is kept while the mode is unchanged."""
        mode = self.output_mode.currentText()
        classes = self.num_classes.value()
        data = {
            **self._loaded,
            "spatial_dims": self.spatial_dims.currentText(),
            "preset": self.preset.currentText(),
            "depth": self.depth.value(),
            "base_channels": self.base_channels.value(),
            "normalization": self.normalization.currentText(),
            "upsampling": self.upsampling.currentText(),
            "input_channels": self.input_channels.value(),
            "output_mode": mode,
            "num_classes": classes,
            "threshold": round(self.threshold.value(), 4),
            "anisotropic_levels": parse_levels(self.anisotropic.text()),
        }
        data["output_channels"] = {"binary": 1, "multiclass": classes, "instance": INSTANCE_CHANNELS}.get(mode, self.output_channels.value())
        if mode != self._loaded.get("output_mode"):
            derived = default_architecture(output_mode=mode, num_classes=classes)
            data["activation"], data["loss"] = derived.activation, derived.loss
        return data

    def validated_architecture(self) -> ArchitectureConfig:
        """The edited descriptor, validated; an invalid combination is a one-line `ProjectError`."""
        from ...model.unet import validate_architecture

        return validate_architecture(self.edited_architecture())

    def update_summary(self) -> None:
        """Live: what `describe()` counts in the edited U-Net (built on the meta device) and whether the
        latest checkpoint's weights fit it."""
        try:
            arch = self.validated_architecture()
            from ...model import describe

            text = describe(arch)["text"]
        except ProjectError as exc:
            self.summary.setText(str(exc).splitlines()[0])
            self.summary.setStyleSheet(ERROR_STYLE)
            self.verdict.setText("")
            return
        self.summary.setText(text)
        self.summary.setStyleSheet("")
        self.verdict.setText(self._verdict(arch.model_dump(mode="json")))

    def _verdict(self, architecture: dict[str, Any]) -> str:
        if self._latest is None:
            return "No checkpoint yet: the first training run starts from these settings."
        checkpoint_id, trained = self._latest
        if not architecture_differences(architecture, trained):
            return f"compatible with {checkpoint_id}"
        return f"not compatible with {checkpoint_id} ({describe_differences(architecture, trained)}): training would start from scratch"

    # ------------------------------------------------------------------ actions
    def save_architecture(self) -> ArchitectureConfig | None:
        project = self.session.project
        if project is None:
            return None
        saved = self.run_action(lambda: project.set_architecture(self.validated_architecture()))
        if saved is None:
            return None
        self._load(saved.model_dump(mode="json"))
        self.show_message(f"Saved architecture: {self.summary.text()}; {self.verdict.text()}")
        return saved

    def revert(self) -> None:
        project = self.session.project
        if project is not None:
            self._load(project.architecture.model_dump(mode="json"))
            self.show_message("Showing the saved architecture.")

    def save_notes(self) -> bool:
        project = self.session.project
        if project is None:
            return False
        text = self.notes.toPlainText()
        done = self.run_action(project.update_config, lambda config: setattr(config, "notes", text))
        if done is None:
            return False
        self._notes_dirty = False
        self.show_message("Notes saved.")
        return True

    def _notes_edited(self) -> None:
        if not self._loading:
            self._notes_dirty = True

    def _ask_weights(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self,
            "Import pretrained weights or a bioimage.io package",
            "",
            "Weights or packages (*.pt *.pth *.safetensors *.zip);;bioimage.io packages (*.zip);;All files (*)",
        )
        if file:
            self.import_weights_file(file)

    def _ask_package_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a bioimage.io package folder (holding rdf.yaml)")
        if folder:
            self.import_weights_file(folder)

    def import_weights_file(self, file: str | Path):
        """`import_pretrained` (a weights file, a .zip package or a package folder) in a worker thread: inspects
        without running any code of it; returns the started worker or None."""
        project = self.session.project
        if project is None:
            return None
        from ...share.bioimageio_import import import_pretrained

        worker = task_worker(lambda: import_pretrained(project, file))
        worker.returned.connect(self._weights_imported)
        self._import_worker = worker
        self._set_importing(True)
        self.show_message(f"Checking {Path(file).name}…")
        worker.start()
        return worker

    def _set_importing(self, busy: bool) -> None:
        self.import_button.setEnabled(not busy)
        self.import_folder_button.setEnabled(not busy)

    def _weights_imported(self, result) -> None:
        self._import_worker = None
        self._set_importing(False)
        if isinstance(result, TaskFailed):
            self.show_message(result.message if isinstance(result.exception, ProjectError) else f"Import failed: {result.message}", error=True)
            return
        from ...share.bioimageio_import import describe_import

        self.session.updated()
        project = self.session.project
        if project is None:
            return
        self.show_message(f"Imported {describe_import(project, result)}; choose it as the starting point in the Train tab.")

    # ------------------------------------------------------------------ project
    def _project_changed(self, project) -> None:
        self._dirty = False
        self._notes_dirty = False
        super()._project_changed(project)

    def refresh(self) -> None:
        """Re-read the project; unsaved architecture edits and notes are kept."""
        project = self.session.project
        if project is None:
            return
        latest = project.checkpoints.latest_id
        self._latest = (latest, project.checkpoints.get(latest).architecture) if latest else None
        if not self._notes_dirty:
            with self._quiet():
                self.notes.setPlainText(project.config.notes)
        if self._dirty:
            self.update_summary()
        else:
            self._load(project.architecture.model_dump(mode="json"))
