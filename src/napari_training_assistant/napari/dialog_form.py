"""The form the plugin's small dialogs share: labelled rows, a path field with Browse…, OK and Cancel."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qtpy.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)


def path_row(edit: QLineEdit, browse: Callable[[], None]) -> QHBoxLayout:
    """`edit` with a Browse… button calling `browse`."""
    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


def dialog_form(dialog: QDialog, rows: Sequence[tuple[str, QWidget | QHBoxLayout]]) -> QFormLayout:
    """`rows` (label, widget or layout) in a form on `dialog`, then OK (accept) and Cancel (reject)."""
    form = QFormLayout(dialog)
    for label, field in rows:
        form.addRow(label, field)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    return form
