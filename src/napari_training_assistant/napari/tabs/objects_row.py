"""The Predict tab's instance-model pieces: the Objects row (the seeded watershed's settings, showing the chosen
checkpoint's tuned values) and the one-line description of an instance prediction."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSpinBox, QWidget

from .base import probability_spin


def instance_details(parameters: dict[str, Any]) -> str:
    """'12 objects (seeded watershed: ...)' for an instance prediction's parameters, else ''."""
    if parameters.get("output_mode") != "instance" and "instance_min_size" not in parameters:
        return ""
    settings = (
        ("foreground >", "instance_foreground_threshold"),
        ("boundary <", "instance_boundary_threshold"),
        ("min size", "instance_min_size"),
        ("split", "instance_split_depth"),
        ("min seed size", "instance_min_seed_size"),
    )
    told = ", ".join(f"{label} {parameters[key]}" for label, key in settings if key in parameters)
    return f"{parameters.get('objects', '?')} objects (seeded watershed: {told})"


class ObjectsRow(QWidget):
    """An instance model's post-processing (`predict.instances.InstanceSettings`), as plain numbers."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.min_size = QSpinBox()
        self.min_size.setRange(0, 10_000_000)
        self.min_size.setSpecialValueText("auto")
        self.min_size.setToolTip("Objects smaller than this many pixels/voxels are removed (auto: 12 in 2D, 40 in 3D)")
        self.foreground_threshold = probability_spin("Foreground probability above which a pixel is inside an object")
        self.boundary_threshold = probability_spin("Boundary probability below which a foreground pixel seeds an object")
        self.split_depth = QDoubleSpinBox()
        self.split_depth.setRange(-1, 100)
        self.split_depth.setSingleStep(0.5)
        self.split_depth.setValue(-1)
        self.split_depth.setSpecialValueText("auto")
        self.split_depth.setToolTip(
            "Split an object core where its distance map dips deeper than this many pixels: touching objects the "
            "boundary missed (auto: 2 in 2D, off in 3D; 0: never)"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        rows = (("min size", self.min_size), ("fg >", self.foreground_threshold), ("boundary <", self.boundary_threshold), ("split", self.split_depth))
        for label, spin in rows:
            layout.addWidget(QLabel(label))
            layout.addWidget(spin, 1)

    def show_checkpoint(self, tuning: dict[str, Any] | None) -> None:
        """Show a checkpoint's post-processing: tuned on its validation pairs (`tuning`, its record), else the
        defaults (auto)."""
        tuned = (tuning or {}).get("settings") if (tuning or {}).get("tuned") else None
        tuned = tuned if isinstance(tuned, dict) else {}
        self.min_size.setValue(int(_number(tuned.get("min_size"), 0)))
        self.foreground_threshold.setValue(_number(tuned.get("foreground_threshold"), 0.5))
        self.boundary_threshold.setValue(_number(tuned.get("boundary_threshold"), 0.5))
        self.split_depth.setValue(_number(tuned.get("split_depth"), -1))

    def settings(self) -> dict[str, Any]:
        """`InstanceSettings` keyword arguments (min_size None: the default for the image's dimensionality)."""
        return {
            "min_size": self.min_size.value() or None,
            "foreground_threshold": round(self.foreground_threshold.value(), 2),
            "boundary_threshold": round(self.boundary_threshold.value(), 2),
            "split_depth": None if self.split_depth.value() < 0 else round(self.split_depth.value(), 2),
        }


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def tuning_note(tuning: dict[str, Any] | None) -> str:
    """The Objects row's tooltip line about where its values come from."""
    if not tuning:
        return "defaults (this checkpoint was not tuned)"
    if not tuning.get("tuned"):
        return f"defaults: {tuning.get('note') or 'not tuned'}"
    return (
        f"tuned on {tuning.get('val_images')} validation image(s), {tuning.get('val_objects')} objects: accuracy at IoU 0.5 "
        f"{_number(tuning.get('default_val_accuracy_50'), float('nan')):.3f} with the defaults, {_number(tuning.get('val_accuracy_50'), float('nan')):.3f} tuned"
    )


