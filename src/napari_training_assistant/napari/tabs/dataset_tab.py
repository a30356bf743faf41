"""Dataset tab: turn an Image layer and a Labels layer into a pair (`project.dataset.add`, as
`nta add-pair`), list, re-split and remove pairs, and import a folder of images/ + masks/."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ...project.dataset import SPLITS
from ...project.errors import DatasetError, ProjectError
from ...project.folder_import import find_folder_pairs
from ...project.label_maps import parse_label_map
from ...project.masks import MASK_MODES, MaskWarning
from ...project.user_input import DuplicatePairError
from ..layer_choice import image_data, inserted_layer, pairs_with
from ..pair_thumbnails import THUMBNAIL_PX, PairThumbnails
from ..workers import TaskFailed, task_worker
from .base import ProjectTab

# (shown text, axis): declared by the user, never inferred from sizes
AXIS_CHOICES: tuple[tuple[str, int | None], ...] = (
    ("none", None),
    ("0 (first)", 0),
    ("1", 1),
    ("2", 2),
    ("3", 3),
    ("last", -1),
)
IMAGE_ROLE, MASK_ROLE = "dataset.image", "dataset.mask"
COLUMNS = ("pair", "split", "shape", "layers", "source", "used by")
WARNING_STYLE = "color: #e0a030;"  # a pair added with a warning (amber: not an error, worth reading)


def pair_layers(pair) -> str:
    """Where a pair came from: its napari layer names, else its files' names, else '-'."""
    from pathlib import PurePath

    files = pair.source_files or {}
    image = pair.image_layer or (PurePath(files["image"]).name if files.get("image") else None)
    mask = pair.mask_layer or (PurePath(files["mask"]).name if files.get("mask") else None)
    return " / ".join(n for n in (image, mask) if n) or "-"


def with_mask_warnings(function: Callable[[], Any]) -> tuple[Any, list[str]]:
    """(function(), the texts of the `MaskWarning`s it emitted): e.g. an instance mask that looks semantic."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MaskWarning)
        result = function()
    return result, [str(w.message) for w in caught if issubclass(w.category, MaskWarning)]


def _axis_combo(tooltip: str) -> QComboBox:
    combo = QComboBox()
    for text, axis in AXIS_CHOICES:
        combo.addItem(text, axis)
    combo.setToolTip(tooltip)
    return combo


def _set_axis(combo: QComboBox, axis: int | None) -> None:
    combo.setCurrentIndex(max(combo.findData(axis), 0))


class DatasetTab(ProjectTab):
    title = "Dataset"

    # ------------------------------------------------------------------ build
    def build(self) -> None:
        self._pending_layers: dict[str, str] = {}
        self._import_worker = None
        form = QFormLayout()
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("napari Image layer: the raw image of the pair")
        self.mask_combo = QComboBox()
        self.mask_combo.setToolTip("napari Labels layer: the mask of the pair (0 = background)")
        self.channel_axis = _axis_combo(
            "Channel axis of the image layer (none: single channel). RGB layers default to the last axis; "
            "set it yourself for other multi-channel images."
        )
        self.slice_check = QCheckBox("one slice")
        self.slice_check.setToolTip("Save one Z slice of a 3D stack as a 2D pair (for a 2D mask)")
        self.slice_spin = QSpinBox()
        self.slice_spin.setToolTip("Z slice to take (follows the viewer's current slice until you tick 'one slice')")
        slice_row = QWidget()
        row = QHBoxLayout(slice_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slice_check)
        row.addWidget(self.slice_spin, 1)
        self.mask_mode = QComboBox()
        self.mask_mode.addItems(MASK_MODES)
        self.mask_mode.setToolTip(
            "binary: nonzero -> 1; target-class: nonzero -> the chosen class; multiclass: labels kept; "
            "label-map: source:target pairs; multilabel: one binary channel per class; "
            "instance: one id per object, kept (binary becomes instance in an instance project)"
        )
        self.target_class = QComboBox()
        self.label_map = QLineEdit()
        self.label_map.setPlaceholderText("1:1,2:1")
        self.mask_channel_axis = _axis_combo("Channel (class) axis of a multilabel mask layer")
        self.split_combo = QComboBox()
        self.split_combo.addItems(["auto", *SPLITS])
        self.split_combo.setToolTip("auto: one pair in N goes to benchmark, a share of the rest to val")
        self.add_button = QPushButton("Add pair")
        self.import_button = QPushButton("Import folder…")
        self.import_button.setToolTip("A folder with images/ and masks/ subfolders of same-named files (or NAME_mask)")
        form.addRow("Image layer", self.image_combo)
        form.addRow("Mask layer", self.mask_combo)
        form.addRow("Channel axis", self.channel_axis)
        form.addRow("Slice", slice_row)
        form.addRow("Mask mode", self.mask_mode)
        form.addRow("Target class", self.target_class)
        form.addRow("Label map", self.label_map)
        form.addRow("Mask channel axis", self.mask_channel_axis)
        form.addRow("Split", self.split_combo)
        self.form = form
        self.shape_hint = QLabel("")
        self.shape_hint.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.import_button)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.thumbnails = PairThumbnails()
        self.table.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.remove_button = QPushButton("Remove selected")
        self.split_target = QComboBox()
        self.split_target.addItems(SPLITS)
        self.split_button = QPushButton("Set split")
        table_row = QHBoxLayout()
        table_row.addWidget(self.remove_button)
        table_row.addStretch(1)
        table_row.addWidget(QLabel("Move selected to"))
        table_row.addWidget(self.split_target)
        table_row.addWidget(self.split_button)

        layout = self.layout()
        layout.addLayout(form)
        layout.addWidget(self.shape_hint)
        layout.addLayout(buttons)
        self.count_label = QLabel("")
        layout.addWidget(self.count_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(table_row)

        self.image_combo.currentIndexChanged.connect(self._image_changed)
        self.mask_combo.currentIndexChanged.connect(lambda _: self._update_slice())
        self.channel_axis.currentIndexChanged.connect(lambda _: self._update_slice())
        self.image_combo.activated.connect(lambda _: self._user_chose(IMAGE_ROLE, self.image_combo))
        self.mask_combo.activated.connect(lambda _: self._user_chose(MASK_ROLE, self.mask_combo))
        self.slice_check.toggled.connect(lambda _: self._update_slice())
        self.mask_mode.currentIndexChanged.connect(lambda _: self._mode_changed())
        self.add_button.clicked.connect(lambda: self.add_pair())
        self.import_button.clicked.connect(self._ask_folder)
        self.remove_button.clicked.connect(lambda: self.remove_selected())
        self.split_button.clicked.connect(lambda: self.set_split_of_selected(self.split_target.currentText()))

        self.viewer.layers.events.inserted.connect(self._layer_inserted)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self.viewer.layers.events.reordered.connect(self._layers_changed)
        self.viewer.dims.events.current_step.connect(self._viewer_stepped)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._layers_changed)
        self._sync_layers()
        self._mode_changed()

    # ------------------------------------------------------------------ layers
    def _layers(self, kind) -> list:
        return [layer for layer in self.viewer.layers if isinstance(layer, kind)]

    def image_layer(self):
        return self._layer_named(self.image_combo.currentText(), "image")

    def mask_layer(self):
        return self._layer_named(self.mask_combo.currentText(), "labels")

    def _layer_named(self, name: str, kind: str):
        from napari.layers import Image, Labels

        cls = Image if kind == "image" else Labels
        return next((layer for layer in self._layers(cls) if layer.name == name), None)

    def _layer_inserted(self, event) -> None:
        """A layer just added becomes the choice of its role; its partner by name (`pairs_with`: `cells` and
        `cells labels`) becomes the other one."""
        with contextlib.suppress(AttributeError):
            event.value.events.name.connect(self._layers_changed)
        from napari.layers import Image, Labels

        image, labels = inserted_layer(event, "Image"), inserted_layer(event, "Labels")
        if image is not None:
            self._pending_layers[IMAGE_ROLE] = image.name
            partner = next((m.name for m in reversed(self._layers(Labels)) if pairs_with(image.name, m.name)), None)
            if partner is not None:
                self._pending_layers[MASK_ROLE] = partner
        elif labels is not None:
            self._pending_layers[MASK_ROLE] = labels.name
            partner = next((i.name for i in reversed(self._layers(Image)) if pairs_with(i.name, labels.name)), None)
            if partner is not None:
                self._pending_layers[IMAGE_ROLE] = partner
        self._layers_changed()

    def _layers_changed(self, event=None) -> None:
        with contextlib.suppress(RuntimeError):  # the tab's Qt objects are gone (viewer closing)
            self._sync_layers()

    def _sync_layers(self) -> None:
        """Refill both combos from the viewer, keeping each selection by name (or a remembered one)."""
        from napari.layers import Image, Labels

        for combo, cls, role in ((self.image_combo, Image, IMAGE_ROLE), (self.mask_combo, Labels, MASK_ROLE)):
            current = combo.currentText()
            names = [layer.name for layer in self._layers(cls)]
            wanted = self._pending_layers.get(role)
            choice = wanted if wanted in names else current if current in names else (names[-1] if names else None)
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentIndex(names.index(choice) if choice is not None else -1)
            combo.blockSignals(False)
            if wanted in names:
                self._pending_layers.pop(role, None)
        self._image_changed()

    def _user_chose(self, role: str, combo: QComboBox) -> None:
        self._pending_layers.pop(role, None)
        if combo.currentText():
            self.session.remember(layers={role: combo.currentText()})

    def _image_changed(self, _index: int | None = None) -> None:
        """A newly chosen image layer: RGB layers declare their channel axis (last), others have none."""
        layer = self.image_layer()
        if getattr(self, "_channel_for", None) != (layer.name if layer is not None else None):
            self._channel_for = layer.name if layer is not None else None
            _set_axis(self.channel_axis, -1 if layer is not None and getattr(layer, "rgb", False) else None)
        self._update_slice()

    # ------------------------------------------------------------------ slice
    def _stack_depth(self) -> int | None:
        """Z size when the image is a 3D stack (with the declared channel axis), else None."""
        layer = self.image_layer()
        if layer is None:
            return None
        shape = tuple(np.shape(image_data(layer)))
        axis = self.channel_axis.currentData()
        if axis is not None:
            if not -len(shape) <= axis < len(shape):
                return None
            axis %= len(shape)
            shape = shape[:axis] + shape[axis + 1 :]
        return shape[0] if len(shape) == 3 else None

    def _viewer_slice(self) -> int:
        """The viewer's current Z index in the image layer's data coordinates."""
        layer = self.image_layer()
        if layer is None:
            return 0
        z_axis = 1 if self.channel_axis.currentData() == 0 and not getattr(layer, "rgb", False) else 0
        try:
            point = list(self.viewer.dims.point)[-layer.ndim :]
            return round(float(layer.world_to_data(point)[z_axis]))
        except Exception:  # a layer with unusual transforms: the user sets the slice
            return 0

    def _viewer_stepped(self, event=None) -> None:
        with contextlib.suppress(RuntimeError):
            if not self.slice_check.isChecked():
                self._update_slice()

    def _update_slice(self) -> None:
        depth = self._stack_depth()
        self.slice_check.setEnabled(depth is not None)
        self.slice_spin.setEnabled(depth is not None and self.slice_check.isChecked())
        if depth is None:
            self.slice_spin.setRange(0, 0)
            self.shape_hint.setText("")
            return
        self.slice_spin.setRange(0, depth - 1)
        if not self.slice_check.isChecked():
            self.slice_spin.setValue(min(max(self._viewer_slice(), 0), depth - 1))
        mask = self.mask_layer()
        mask_2d = mask is not None and np.ndim(image_data(mask)) == 2
        self.shape_hint.setText(
            f"The image is a {depth}-slice stack and the mask is 2D: tick 'one slice' to save slice "
            f"{self.slice_spin.value()} as a 2D pair."
            if mask_2d and not self.slice_check.isChecked()
            else ""
        )

    # ------------------------------------------------------------------ mask mode
    def _mode_changed(self) -> None:
        mode = self.mask_mode.currentText()
        for widget, shown in (
            (self.target_class, mode == "target-class"),
            (self.label_map, mode == "label-map"),
            (self.mask_channel_axis, mode == "multilabel"),
        ):
            widget.setVisible(shown)
            label = self.form.labelForField(widget)
            if label is not None:
                label.setVisible(shown)

    def _options(self) -> dict[str, Any]:
        """`Dataset.add` keyword arguments from the controls (what `nta add-pair` takes as flags)."""
        mode = self.mask_mode.currentText()
        split = self.split_combo.currentText()
        options: dict[str, Any] = {
            "mask_mode": mode,
            "channel_axis": self.channel_axis.currentData(),
            "split": None if split == "auto" else split,
        }
        if mode == "target-class":
            if not self.target_class.currentText():
                raise DatasetError("mask mode target-class needs a target class: the project has no foreground class names")
            options["target_class"] = self.target_class.currentText()
        elif mode == "label-map":
            options["label_map"] = parse_label_map(self.label_map.text())
        elif mode == "multilabel":
            options["mask_channel_axis"] = self.mask_channel_axis.currentData()
        return options

    # ------------------------------------------------------------------ actions
    def add_pair(self):
        """Add the chosen layers as a pair; returns the `PairRecord` or None (message shown)."""
        project = self.session.project
        image, mask = self.image_layer(), self.mask_layer()
        if project is None:
            return None
        if image is None or mask is None:
            self.show_message("Choose an Image layer and a Labels (mask) layer first.", error=True)
            return None
        try:
            options = self._options()
        except ProjectError as exc:
            self.show_message(str(exc), error=True)
            return None
        if self.slice_check.isChecked() and self.slice_check.isEnabled():
            options["slice_index"] = self.slice_spin.value()
        mask_data = image_data(mask)
        if not np.any(mask_data) and not self.confirm(
            f"The labels layer '{mask.name}' is empty (no labelled pixel). Add it as an all-background pair?"
        ):
            self.show_message(f"Not added: the labels layer '{mask.name}' is empty.")
            return None
        add = partial(
            project.dataset.add, image_data(image), mask_data, **options, image_layer=image.name, mask_layer=mask.name, source="manual"
        )
        try:
            record, mask_warnings = with_mask_warnings(add)
        except DuplicatePairError as exc:
            if not self.confirm(f"{str(exc).split(';')[0].capitalize()}. A second copy counts twice in training: add it anyway?"):
                self.show_message(f"Not added: {str(exc).split(';')[0]}.")
                return None
            record, mask_warnings = with_mask_warnings(partial(self.run_action, add, allow_duplicate=True))
        except ProjectError as exc:
            self.show_message(str(exc), error=True)
            record, mask_warnings = None, []
        else:
            self.session.updated()
        if record is None:
            if self.shape_hint.text():  # the project's message names slice_index: point at the control
                self.show_message(f"{self.message.text()} (tick 'one slice' above)", error=True)
            return None
        self.session.remember(layers={IMAGE_ROLE: image.name, MASK_ROLE: mask.name})
        where = f", slice {record.slice_index}" if record.slice_index is not None else ""
        self.show_message(
            f"Added {record.pair_id} ({record.split}{where}): labels {record.source_labels} -> "
            f"{record.saved_labels} [{record.label_transform}]"
        )
        self._warn(mask_warnings)
        return record

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question before an unusual add (an empty mask, a duplicate); tests replace it."""
        answer = QMessageBox.question(self, "Add pair", question, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _warn(self, texts: list[str]) -> None:
        """Add mask warnings to the status line (amber: the pairs were added) and as a napari notification."""
        if not texts:
            return
        more = f" (and {len(texts) - 1} more)" if len(texts) > 1 else ""
        self.show_message(f"{self.message.text()} Warning: {texts[0]}{more}")
        self.message.setStyleSheet(WARNING_STYLE)
        from napari.utils.notifications import show_warning

        show_warning(texts[0] + more)

    def selected_pair_ids(self) -> list[str]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.table.item(row, 0).text() for row in rows]

    def select_pairs(self, pair_ids) -> None:
        wanted = set(pair_ids)
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() in wanted:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def remove_selected(self, confirm: bool = True) -> list[str]:
        """Remove the selected pairs (files and manifest entry; a tombstone keeps history readable)."""
        project = self.session.project
        ids = self.selected_pair_ids()
        if project is None or not ids:
            self.show_message("Select the pairs to remove in the table first.", error=True)
            return []
        if confirm:
            used = sorted({c for p in project.dataset.pairs if p.pair_id in ids for c in p.used_by_checkpoints})
            text = f"Remove {len(ids)} pair(s) ({', '.join(ids)}) and delete their files from the project?"
            if used:
                text += f"\nThey were used by {', '.join(used)}; the checkpoint history keeps their record."
            answer = QMessageBox.question(self, "Remove pairs", text)
            if answer != QMessageBox.StandardButton.Yes:
                return []
        done = self.run_action(lambda: [project.dataset.remove(pair_id).pair_id for pair_id in ids])
        if done:
            self.show_message(f"Removed {', '.join(done)}.")
        return done or []

    def set_split_of_selected(self, split: str) -> list[str]:
        project = self.session.project
        ids = self.selected_pair_ids()
        if project is None or not ids:
            self.show_message("Select the pairs to move in the table first.", error=True)
            return []
        done = self.run_action(lambda: [project.dataset.set_split(pair_id, split).pair_id for pair_id in ids])
        if done:
            self.show_message(f"{', '.join(done)} now in {split}.")
            self.select_pairs(done)
        return done or []

    def _context_menu(self, position) -> None:
        if not self.selected_pair_ids():
            return
        menu = QMenu(self.table)
        for split in SPLITS:
            menu.addAction(f"Move to {split}", lambda s=split: self.set_split_of_selected(s))
        menu.addSeparator()
        menu.addAction("Remove…", lambda: self.remove_selected())
        menu.exec(self.table.viewport().mapToGlobal(position))

    # ------------------------------------------------------------------ folder import
    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder with images/ and masks/ subfolders")
        if folder:
            self.import_folder(folder)

    def import_folder(self, folder: str | Path):
        """`project.dataset.add_folder` (as `nta add-folder --skip-unmatched`) in a worker thread, with the mask
        mode, channel axes and split of the controls; returns the started worker or None (message shown)."""
        project = self.session.project
        if project is None:
            return None
        try:
            found = find_folder_pairs(folder)  # a folder without images/ + masks/ is refused at once
            options = self._options()
        except ProjectError as exc:
            self.show_message(str(exc), error=True)
            return None
        # warnings are caught in the worker thread: nothing else warns meanwhile that matters (catch_warnings is process-wide)
        worker = task_worker(lambda: with_mask_warnings(lambda: project.dataset.add_folder(folder, skip_unmatched=True, **options)))
        worker.returned.connect(self._folder_imported)
        self._import_worker = worker
        self.import_button.setEnabled(False)
        self.show_message(f"Importing {len(found.pairs)} pair(s) from {Path(folder).name}…")
        worker.start()
        return worker

    def _folder_imported(self, result) -> None:
        self._import_worker = None
        self.import_button.setEnabled(True)
        if isinstance(result, TaskFailed):
            self.show_message(f"Folder import failed, nothing was added: {result.message}", error=True)
            return
        result, mask_warnings = result
        self.session.updated()
        added = [record.pair_id for record in result.added]
        text = f"Imported {len(added)} pair(s)" + (f" ({added[0]}..{added[-1]})" if added else "")
        if result.duplicates:
            image, holder = result.duplicates[0]
            text += f"; {len(result.duplicates)} already in the dataset skipped ({image} = {holder}{', ...' if len(result.duplicates) > 1 else ''})"
        if result.unmatched:
            names = [name.partition("/")[2] for name in result.unmatched]
            text += f"; {len(names)} file(s) without a partner skipped ({', '.join(names[:3])})"
        self.show_message(text + ".", error=not added)
        if added:
            self._warn(mask_warnings)

    # ------------------------------------------------------------------ project
    def _project_changed(self, project) -> None:
        if project is not None:
            self._pending_layers = dict(project.config.ui.selected_layers)
            self._pending_layers = {k: v for k, v in self._pending_layers.items() if k in (IMAGE_ROLE, MASK_ROLE)}
            self._sync_layers()
        else:
            self._pending_layers = {}
        super()._project_changed(project)

    def refresh(self) -> None:
        project = self.session.project
        if project is None:
            self.table.setRowCount(0)
            return
        names = project.config.class_names[1:]
        current = self.target_class.currentText()
        self.target_class.clear()
        self.target_class.addItems(names)
        if current in names:
            self.target_class.setCurrentText(current)
        self._fill_table(project)

    def _fill_table(self, project) -> None:
        selected = set(self.selected_pair_ids())
        pairs = project.dataset.pairs
        self.table.setRowCount(len(pairs))
        for row, pair in enumerate(pairs):
            shape = "x".join(str(s) for s in pair.image_shape)
            values = (pair.pair_id, pair.split, shape, pair_layers(pair), pair.source, ", ".join(pair.used_by_checkpoints) or "-")
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column == 0 and (icon := self.thumbnails.icon(project, pair)) is not None:
                    item.setIcon(icon)
                if column == 2:
                    item.setToolTip(f"image {pair.image_shape} ({pair.image_dtype}), mask {pair.mask_shape}, {pair.mask_mode}")
                self.table.setItem(row, column, item)
        counts = project.dataset.split_counts()
        self.count_label.setText(f"{len(pairs)} pairs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if selected:
            self.select_pairs(selected)
