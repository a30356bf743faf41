"""Train tab: pair training or point-windowed training, run in a child process, followed live.

The run is the CLI's (`child_tasks`); a worker thread follows its child process. The GUI thread only
receives `ProgressEvent`s: a STEP sets the progress bar and the ETA text (no file reads, no drawing),
an EPOCH appends one point to the plot and one log line, the project is re-read once the run has
ended. Stop is cooperative (the run ends after the current step and is saved as cancelled); a child
that has not ended `hard_stop_s` later is terminated, and the tab says so.

A run this viewer did not start (kept running when a viewer closed, `nta train` in a terminal) is
followed when its project opens (`run_follower`): the same monitor, and Stop writes a stop request.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from qtpy.QtCore import QEventLoop, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...progress import EventKind, ProgressEvent
from ...project.devices import DEVICE_NAMES
from ...project.errors import ProjectError
from ...project.run_options import TrainOptions
from ...project.schemas import StartingWeightsConfig, TrainingSettings
from ...project.user_input import field_choices
from ..child_process import HARD_STOP_S
from ..child_tasks import train_pairs
from ..plot_widget import RunMonitor
from ..run_follower import DETACHED, follow_run
from ..workers import ChildTask, TaskFailed, child_worker
from .base import ProjectTab
from .train_points_panel import PointsPanel, number, row, spin

MODE_LABELS = {"pairs": "Pair training", "point_windows": "Point-windowed"}  # shown text of each training mode
def start_choices() -> list[str]:
    """The schema's starting-weight choices, with `best` (what TrainOptions.start also takes: the checkpoint
    `best` names when the run starts) after `latest`."""
    choices = list(field_choices(StartingWeightsConfig, "choice"))
    choices.insert(choices.index("latest") + 1, "best")
    return choices


def default_start(project) -> str:
    """The project's starting-weights setting, the one source of truth (`nta start`, this tab, "Continue training
    from this" all set it); never chosen: what an older version of this tab kept, else continuing from the
    latest checkpoint once there is one (scratch before)."""
    configured = project.starting_weights
    if configured.chosen_at is not None or configured.choice != "scratch":
        return configured.describe()
    saved = project.config.ui.train_tab
    if saved.get("train.start_choice"):  # older versions: the user's pick in this tab
        return saved["train.start_choice"]
    if saved.get("train.start", "scratch") != "scratch":  # older still: written by every run
        return saved["train.start"]
    return "latest" if project.checkpoints.latest_id else "scratch"


def describe_start(project, spec: str | None) -> tuple[str, bool]:
    """(what a run with `spec` starts from, in words; whether that is impossible now)."""
    if spec is None:
        return "choose the checkpoint or imported model to start from", True
    kind, _, target = spec.partition(":")
    if kind == "scratch":
        return "Starts from new random weights (scratch).", False
    if kind == "imported":
        return f"Starts from the imported weights {target}.", False
    try:
        record = project.checkpoints.get(target if kind == "checkpoint" else kind)
    except ProjectError as exc:
        return str(exc).splitlines()[0], True
    which = {"latest": "the latest checkpoint ", "best": "the best benchmarked checkpoint "}.get(kind, "checkpoint ")
    return f"Continues from {which}{record.checkpoint_id} (recorded as the run's parent).", False


class TrainTab(ProjectTab):
    title = "Train"
    fills_height = True

    def build(self) -> None:
        self.worker = None
        self.task: ChildTask | None = None
        self.hard_stop_s = HARD_STOP_S  # after Stop, how long the run may take to end before it is terminated
        self.last_result = None
        self.last_task: ChildTask | None = None
        self.followed_run: str | None = None  # a run of another process this tab follows
        self._let_go = threading.Event()  # set: stop following (the followed run goes on)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        self.mode = QComboBox()
        for mode in field_choices(TrainingSettings, "training_mode"):
            self.mode.addItem(MODE_LABELS[mode], mode)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.mode.activated.connect(self._mode_picked)  # the user's choice: the project's training mode
        layout.addWidget(row(QLabel("Training mode"), self.mode))
        self.pages = QStackedWidget()
        self.source_info = QLabel("-")
        self.source_info.setWordWrap(True)
        self.points = PointsPanel(self.viewer, session=self.session)
        self.points.source.currentIndexChanged.connect(self._mode_changed)
        self.pages.addWidget(self.source_info)
        self.pages.addWidget(self.points)
        layout.addWidget(self.pages)
        self.parameters = self._parameters()
        layout.addWidget(self.parameters)
        self.decisions = QTableWidget(0, 4)
        self.decisions.setHorizontalHeaderLabels(["Setting", "Value", "Source", "Reason"])
        self.decisions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.decisions.horizontalHeader().setStretchLastSection(True)
        self.decisions.verticalHeader().setVisible(False)
        self.decisions.setMaximumHeight(150)
        self.decisions.setWordWrap(True)
        group = QGroupBox("Auto-configuration decisions (last run)")
        QVBoxLayout(group).addWidget(self.decisions)
        layout.addWidget(group)
        self.start_button, self.stop_button = QPushButton("Start training"), QPushButton("Stop")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.unfollow_button = QPushButton("Stop following")
        self.unfollow_button.setToolTip("The run goes on in its own process; reopen the project to follow it again")
        self.unfollow_button.clicked.connect(self.let_go)
        self.unfollow_button.setVisible(False)
        self.monitor = RunMonitor()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        # the settings scroll; Start/Stop and the run monitor (progress, ETA, plot, log) stay in view below them
        run = QWidget()
        run_layout = QVBoxLayout(run)
        run_layout.setContentsMargins(0, 0, 0, 0)
        run_layout.addWidget(row(self.start_button, self.stop_button, self.unfollow_button))
        run_layout.addWidget(self.monitor, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(run)
        self.splitter.setChildrenCollapsible(False)
        for index, stretch in enumerate((2, 3)):
            self.splitter.setStretchFactor(index, stretch)
        self.layout().addWidget(self.splitter, 1)
        self.session.busy_changed.connect(self._busy)
        self._mode_changed()

    def _parameters(self) -> QGroupBox:
        group = QGroupBox("Parameters")
        form = QFormLayout(group)
        self.start_choice, self.start_id = QComboBox(), QComboBox()
        self.start_choice.addItems(start_choices())
        self.start_choice.setToolTip(
            "scratch: new weights; latest: continue training the latest checkpoint (default once there is one); "
            "best: the checkpoint with the highest benchmark Dice; checkpoint / imported: the one chosen on the right"
        )
        self.start_choice.currentIndexChanged.connect(self._fill_start_ids)
        self.start_choice.activated.connect(self._start_picked)  # the user's own choice (not set by the tab)
        self.start_id.activated.connect(self._start_picked)
        self.start_id.currentIndexChanged.connect(self._show_start)
        self.start_info = QLabel("")
        self.start_info.setWordWrap(True)
        self.start_info.setObjectName("start_info")
        form.addRow("Starting point", row(self.start_choice, self.start_id))
        form.addRow("", self.start_info)
        self.epochs = spin(QSpinBox(), 1, 100_000, 20)
        self.batch = spin(QSpinBox(), 0, 4096, 0, "auto")
        self.patch = QLineEdit()
        self.patch.setPlaceholderText("auto (e.g. 256,256 or 32,128,128)")
        self.lr = spin(QDoubleSpinBox(), 1e-6, 1.0, 1e-3)
        self.lr.setDecimals(6)
        self.lr.setSingleStep(1e-4)
        self.samples = spin(QSpinBox(), 0, 10_000_000, 0, "auto")
        self.samples.setToolTip("training patches (windows) per epoch; auto: the planner decides")
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(DEVICE_NAMES)
        for label, widget in (("Epochs", self.epochs), ("Batch size", self.batch), ("Patch size", self.patch), ("Learning rate", self.lr), ("Samples per epoch", self.samples), ("Device", self.device)):
            form.addRow(label, widget)
        self.form = form
        return group

    # ---- project state
    def _project_changed(self, project) -> None:
        super()._project_changed(project)
        if project is not None and not self.running:
            self._restore(project)
            live = project.history.live_runs()
            if live:
                self.follow(live[-1])

    def refresh(self) -> None:
        project = self.session.project
        if project is None:
            return
        counts = project.dataset.split_counts()
        self.source_info.setText(
            f"Dataset: {counts['train']} train, {counts['val']} val pairs (validation on the train pairs when there is none); "
            f"{counts['benchmark']} benchmark pairs are never trained on."
        )
        if not self.running and self._start_spec() != default_start(project):
            self._set_start(default_start(project))  # set elsewhere (Checkpoints tab, nta start), or the first checkpoint
        self._fill_start_ids()
        self._fill_decisions(project)

    def _fill_decisions(self, project) -> None:
        """The decisions the project holds: the last run's, or this run's once it has started (the run writes
        them before its first step)."""
        self.decisions.setRowCount(0)
        for decision in project.config.auto_configuration_decisions:
            row = self.decisions.rowCount()
            self.decisions.insertRow(row)
            for column, value in enumerate((decision.setting, decision.value, decision.source, decision.reason)):
                item = QTableWidgetItem(str(value))
                item.setToolTip(str(decision.reason))  # the whole reason, however narrow the dock
                self.decisions.setItem(row, column, item)
        self.decisions.resizeRowsToContents()

    def _fill_start_ids(self, *_: Any) -> None:
        project, choice = self.session.project, self.start_choice.currentText()
        current = self.start_id.currentText()
        self.start_id.clear()
        if project is not None and choice == "checkpoint":
            self.start_id.addItems([c.checkpoint_id for c in project.checkpoints.records if c.status == "completed"])
        elif project is not None and choice == "imported":
            self.start_id.addItems([m.model_id for m in project.imported_models.registry.models])
        self.start_id.setEnabled(choice in ("checkpoint", "imported"))
        self.start_id.setVisible(choice in ("checkpoint", "imported"))
        self.start_id.setCurrentIndex(max(self.start_id.findText(current), 0 if self.start_id.count() else -1))
        self._show_start()

    def _start_picked(self, *_: Any) -> None:
        """The user's pick becomes the project's starting-weights setting (`best`: the checkpoint it is now)."""
        spec, project = self._start_spec(), self.session.project
        if spec is None or project is None or self.running:
            return
        if spec == "best" and project.checkpoints.best_id is None:
            return  # said in red below the choice; nothing to keep
        self.run_action(project.set_starting_weights, spec)

    def _set_start(self, spec: str) -> None:
        kind, _, target = spec.partition(":")
        self.start_choice.setCurrentIndex(max(self.start_choice.findText(kind), 0))
        self._fill_start_ids()
        if target:
            self.start_id.setCurrentIndex(max(self.start_id.findText(target), 0))

    def _show_start(self, *_: Any) -> None:
        """Say what the run will start from (red when it cannot, e.g. best before any benchmark)."""
        project = self.session.project
        if project is None or not hasattr(self, "start_info"):
            return
        if self.point_mode and self.points.uses_spec():  # the run trains the spec's project, not this one
            text, impossible = f"Starting point {self._start_spec()} in the spec file's project.", False
        else:
            text, impossible = describe_start(project, self._start_spec())
        self.start_info.setText(text)
        self.start_info.setStyleSheet("color: #ff6b6b;" if impossible else "")

    def _restore(self, project) -> None:
        config = project.config
        saved = config.ui.train_tab
        training = config.training
        mode = saved.get("train.mode", training.training_mode)
        self.mode.setCurrentIndex(max(self.mode.findData("point_windows" if mode == "points" else mode), 0))  # older files: "points"
        self.epochs.setValue(number(int, saved.get("train.epochs"), training.epochs))
        self.lr.setValue(number(float, saved.get("train.lr"), training.learning_rate))
        self.batch.setValue(number(int, saved.get("train.batch"), training.batch_size or 0))
        self.samples.setValue(number(int, saved.get("train.samples"), 0))
        self.patch.setText(saved.get("train.patch", ",".join(map(str, training.patch_size or []))))
        from ..preferences import default_device

        self.device.setCurrentText(saved.get("train.device", default_device()))
        self._set_start(default_start(project))
        self.points.restore(saved)

    def _settings(self) -> dict[str, str]:
        values = {
            "train.mode": self.mode.currentData(),
            "train.epochs": str(self.epochs.value()),
            "train.lr": repr(self.lr.value()),
            "train.batch": str(self.batch.value()),
            "train.samples": str(self.samples.value()),
            "train.patch": self.patch.text().strip(),
            "train.device": self.device.currentText().strip(),
        }
        return values | self.points.settings()

    # ---- start / stop
    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def point_mode(self) -> bool:
        return self.mode.currentData() == "point_windows"

    def _mode_picked(self, *_: Any) -> None:
        """Remember the mode in the project (its status and the next opening follow it)."""
        project = self.session.project
        if project is not None and not self.running and project.config.training.training_mode != self.mode.currentData():
            self.run_action(project.set_training_mode, self.mode.currentData())

    def _mode_changed(self, *_: Any) -> None:
        self.pages.setCurrentIndex(1 if self.point_mode else 0)
        from_spec = self.point_mode and self.points.uses_spec()
        for widget in (self.epochs, self.batch, self.lr, self.samples):
            widget.setEnabled(not from_spec)
            widget.setToolTip("from the spec file" if from_spec else "")
        self.form.setRowVisible(self.patch, not self.point_mode)
        self._show_start()

    def _start_spec(self) -> str | None:
        choice = self.start_choice.currentText()
        if choice in ("checkpoint", "imported"):
            return f"{choice}:{self.start_id.currentText()}" if self.start_id.currentText() else None
        return choice

    def options(self) -> TrainOptions:
        """The run's options, validated (torch-free: the child process gets them as they are)."""
        device = self.device.currentText().strip() or None
        if self.point_mode and self.points.uses_spec():  # the spec file decides the rest
            return TrainOptions(start=self._start_spec(), device=device)
        patch = [int(v) for v in self.patch.text().replace("x", ",").split(",") if v.strip()]
        return TrainOptions(
            epochs=self.epochs.value(),
            batch_size=self.batch.value() or None,
            patch_size=None if self.point_mode else patch or None,
            learning_rate=self.lr.value(),
            start=self._start_spec(),
            device=device,
            samples_per_epoch=self.samples.value() or None,
        )

    def start(self) -> bool:
        """Validate, then start the run in a child process; False (with a red message) when refused."""
        project = self.session.project
        if self.running:
            return False
        if project is None:
            self.show_message("Open or create a Training Project Folder first.", error=True)
            return False
        if self.session.busy:
            self.show_message("Another task is running: wait for it to finish, then start training.", error=True)
            return False
        try:
            run = self._prepare(project)
        except (ProjectError, ValueError) as exc:
            self.show_message(str(exc).splitlines()[0], error=True)
            return False
        (function, *args), line = run
        self.session.remember(train_tab=self._settings())
        project.set_training_mode(self.mode.currentData())
        self.task = ChildTask(function, *args, label="training", stop_reason="stopped from the Train tab", hard_stop_s=self.hard_stop_s)
        self.worker = child_worker(self.task)
        self.worker.yielded.connect(self._on_item)
        self.worker.returned.connect(self._on_item)
        self.worker.finished.connect(self._worker_done)
        self.monitor.begin(line)
        self._set_running(True)
        self.last_result = None
        self.show_message("Training…")
        self.worker.start()
        return True

    def _prepare(self, project) -> tuple[tuple, str]:
        """((child task function, its arguments...), a line for the log); ProjectError when refused."""
        if self._start_spec() is None:
            raise ProjectError(f"choose the {self.start_choice.currentText()} to start from, or another starting point")
        text, impossible = describe_start(project, self._start_spec())
        if impossible and not (self.point_mode and self.points.uses_spec()):
            raise ProjectError(text)
        options = self.options()
        if self.point_mode:
            return self.points.prepare(project, options)
        if project.dataset.split_counts()["train"] == 0:
            raise ProjectError("no training pairs: add image/mask pairs in the Dataset tab (benchmark pairs are never trained on)")
        return (train_pairs, str(project.root), options), f"pair training of {project.name}; {text[0].lower()}{text[1:]}"

    def follow(self, run) -> None:
        """Follow `run` (a live `TrainingRun` of another process) until it ends or the tab lets it go."""
        from napari.qt.threading import thread_worker

        from ...project.runs import describe_process

        self.followed_run, self._let_go = run.run_id, threading.Event()
        self.worker = thread_worker(follow_run, start_thread=False)(str(self.session.project.root), run.run_id, stop=self._let_go)
        self.worker.yielded.connect(self._on_item)
        self.worker.returned.connect(self._on_item)
        self.worker.finished.connect(self._worker_done)
        where = describe_process(run)
        self.monitor.begin(f"following {run.run_id} ({where}), started {run.started_at:%Y-%m-%d %H:%M}: it runs outside this viewer")
        self._set_running(True)
        self.unfollow_button.setVisible(True)
        self.last_result = None
        self.show_message(f"{run.run_id} is running in the background ({where}): followed here; Stop stops it.")
        self.worker.start()

    def stop(self) -> None:
        if self.task is not None and not self.task.stopping:
            self.task.stop()
        elif self.followed_run is not None and self.stop_button.isEnabled():
            from ...project.run_control import request_stop

            self.run_action(request_stop, self.session.project, self.followed_run, "stopped from the Train tab of a viewer following the run")
        else:
            return
        self.stop_button.setEnabled(False)
        self.monitor.eta.setText("stopping after the current step…")

    def let_go(self) -> None:
        """The run goes on without this tab ("Keep running in the background" at close, "Stop following")."""
        if self.task is not None:
            self.task.detach()
        self._let_go.set()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for widget in (self.mode, self.pages, self.parameters):
            widget.setEnabled(not running)
        self.session.set_busy(running)

    def _busy(self, busy: bool) -> None:
        if not self.running:  # another tab's task (prediction, import): no training meanwhile
            self.start_button.setEnabled(not busy)

    # ---- events, in the GUI thread
    def _on_item(self, item: Any) -> None:
        if isinstance(item, ProgressEvent):
            self.monitor.on_event(item)
            if item.kind == EventKind.STARTED and self.session.project is not None:
                self._fill_decisions(self.session.project)
        elif isinstance(item, TaskFailed) and item.kind == DETACHED:
            self.show_message(item.message)
            self.monitor.note(item.message)
        elif isinstance(item, TaskFailed):
            self.show_message(item.message, error=True)
            self.monitor.note(f"failed: {item.message}")
        elif item is not None:
            self._on_result(item)

    def _on_result(self, result) -> None:
        dice = result.metrics.get("dice")
        score = f", Dice {dice:.3f}" if isinstance(dice, float) else ""
        project = self.session.project
        where = ""
        if result.checkpoint_path and project is not None and project.root.resolve() not in Path(result.checkpoint_path).resolve().parents:
            where = f" in project {Path(result.checkpoint_path).resolve().parent.parent}"
        if result.status == "completed":
            self.show_message(f"{result.run_id} completed: checkpoint {result.checkpoint_id}{where}{score}")
        else:
            kept = f"checkpoint {result.checkpoint_id} kept as {result.status}" if result.checkpoint_id else "no checkpoint"
            self.show_message(f"{result.run_id} {result.status}: {kept}; the latest checkpoint is unchanged")
        self.last_result = result

    def _worker_done(self) -> None:
        completed = self.last_result is not None and self.last_result.status == "completed"
        self.last_task, self.worker, self.task = self.task, None, None  # last_task: pid and exit code
        self.followed_run = None
        self.unfollow_button.setVisible(False)
        self.monitor.end(completed)
        self._set_running(False)
        self.session.updated()  # status bar and tabs re-read the project once

    # ---- closing (the widget asks the user)
    def stop_and_wait(self, timeout_s: float = 600.0) -> bool:
        """Stop the run and wait until it is saved; True when no run is left."""
        self.stop()
        self.wait(timeout_s)
        return not self.running

    def wait(self, timeout_s: float) -> None:
        """Process events until the worker has finished (the run saved), at most `timeout_s`."""
        if self.worker is None:
            return
        loop = QEventLoop()
        self.worker.finished.connect(loop.quit)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        if self.worker is not None:
            loop.exec()
