"""What the widget runs in a child process (see `child_process`): the same engine functions as the CLI.

Each task takes picklable arguments (a project folder path, `TrainOptions`, numpy arrays) plus ``listener`` and ``cancel``, and returns a picklable value. The engine (torch, Lightning)
is imported inside the functions, so only the child loads it; this module needs neither Qt nor torch,
and what a task returns is built of classes the GUI process may unpickle (no `predict` classes).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..progress import EventKind, Listener, ProgressEvent
from ..project.run_options import TrainOptions


class RunSummary(SimpleNamespace):
    """A finished run's `TrainResult` fields as attributes (the class itself lives with Lightning)."""


def train_pairs(project_root: str, options: TrainOptions, *, listener, cancel) -> RunSummary | None:
    """`nta train PROJECT`: pair training."""
    from ..project import TrainingProject
    from ..train import train_project

    return _summary(train_project(TrainingProject.open(project_root), options, listener=listener, cancel=cancel))


def train_points_spec(spec_path: str, options: TrainOptions, *, listener, cancel) -> RunSummary | None:
    """`nta train-points SPEC.yaml`: point-windowed training from a spec file."""
    from ..train.point_run import train_points

    return _summary(train_points(spec_path, options, listener=listener, cancel=cancel))


def train_points_layers(folder: str, volumes: dict[str, np.ndarray], synapses, regions, spec: dict, options: TrainOptions, *, listener, cancel) -> RunSummary | None:
    """Write viewer layers as `folder`/spec.yaml (with its volumes and annotations), then train that spec."""
    from .point_data import write_point_data

    path = write_point_data(Path(folder), volumes, synapses, regions, spec)
    return train_points_spec(str(path), options, listener=listener, cancel=cancel)


class AssignSummary(SimpleNamespace):
    """An assignment's outcome: `output` (its folder, holding assignments.csv), `status` (completed |
    cancelled), `synapses`, `outside`, `seconds`, `checkpoint_id`, `evaluation` (summary.json's, or None)
    and `truth` ({row: (pre, post)} ground-truth segments, empty without evaluation)."""


def assign_layers(folder: str, volumes: dict[str, np.ndarray], synapses, regions, spec: dict, *, checkpoint_id: str, evaluate: bool, listener, cancel) -> AssignSummary:
    """Write viewer layers as `folder`/spec.yaml (the writer training uses; with a segmentation), then
    `nta assign-synapses` on it with the checkpoint, in this process, replacing an earlier assignment."""
    from ..assign.run import assign_synapses
    from .point_data import write_point_data

    path = write_point_data(Path(folder), volumes, synapses, regions, spec)
    result = assign_synapses(path, checkpoint_id=checkpoint_id, scheduler="in-process", evaluate=evaluate, overwrite=True, listener=listener, cancel=cancel)
    truth = _ground_truth(path, result) if evaluate and result.status == "completed" else {}
    return AssignSummary(
        output=str(result.output), status=result.status, synapses=result.synapses, outside=result.outside, seconds=result.seconds,
        checkpoint_id=checkpoint_id, evaluation=result.summary.get("evaluation"), truth=truth,
    )


def _ground_truth(spec_path: Path, result) -> dict[int, tuple[int, int]]:
    """{row: (pre, post)} of the synapses with ground truth (lines, label0/label1), as the evaluation finds it."""
    from ..assign.evaluate import ground_truth
    from ..train.point_inputs import open_layers, read_synapses
    from ..train.point_spec import load_spec

    spec, base = load_spec(spec_path)
    layers, location = open_layers(spec, base)
    synapses = read_synapses(location, spec)
    radius = result.summary.get("contact_radius") or [1, 1, 1]
    found: dict[int, tuple[int, int]] = {}
    for row, synapse in enumerate(synapses):
        try:
            truth = ground_truth(synapse, synapse.point(spec.line_point), layers, radius)
        except (ValueError, IndexError):  # a point at the volume's edge: no ground truth
            truth = None
        if truth is not None and truth[0] > 0 and truth[1] > 0:
            found[row] = (int(truth[0]), int(truth[1]))
    return found


def predict_into_project(project_root: str, image, *, listener, cancel, **options: Any):
    """`nta predict`: the image predicted and saved into the project's predictions/; returns the
    `PredictionRecord` (the labels stay on disk: the GUI reads them back off its GUI thread). `instance`: an
    instance model's post-processing as `InstanceSettings` keywords (plain numbers, the GUI imports no `predict`)."""
    from ..predict.project_prediction import predict_array
    from ..project import TrainingProject

    return predict_array(TrainingProject.open(project_root), np.asarray(image), **_instance_settings(options))


def suggest_in_project(project_root: str, folder: str, *, listener, cancel, checkpoint_id: str = "latest", tile: int | None = None) -> list[dict[str, Any]]:
    """`nta suggest PROJECT --images FOLDER`: the folder's images ranked most uncertain first (the ranking is
    recorded in the project); each a dict with `rank`, `path`, `score`, `entropy`, `disagreement` and `region`."""
    from ..predict.suggest import image_files, suggest
    from ..project import TrainingProject

    project = TrainingProject.open(project_root)
    ranked = suggest(project, image_files(Path(folder)), checkpoint_id=checkpoint_id, tile=tile)
    return [{"rank": rank, "region": None, **s.as_dict()} for rank, s in enumerate(ranked, start=1)]


class VolumeSummary(SimpleNamespace):
    """A block-wise prediction's outcome: `record` (None unless completed), `status` (completed |
    cancelled), `output` (its folder), `blocks` (in all) and `seconds`."""


def predict_volume_in_project(project_root: str, source, *, listener, cancel, **options: Any) -> VolumeSummary:
    """`nta predict` block-wise (`predict_volume_into_project`, Dask in this process) into
    `predictions/prediction_NNN.zarr` (an unfinished one of the same file source is resumed). Its STARTED event
    tells the GUI the output folder and the checkpoint (`metrics`), so the labels can be shown while blocks
    complete; Stop keeps the finished blocks. `instance`: as for `predict_into_project`."""
    from ..predict.project_prediction import predict_volume_into_project
    from ..project import TrainingProject

    project = TrainingProject.open(project_root)
    checkpoint_id = project.checkpoints.get(options.get("checkpoint_id", "latest")).checkpoint_id
    told = _telling(listener, {"checkpoint_id": checkpoint_id})
    options = _instance_settings(options)
    record, result = predict_volume_into_project(project, source, scheduler="in-process", listener=told, cancel=cancel, **options)
    return VolumeSummary(record=record, status=result.status, output=str(result.output), blocks=result.blocks, seconds=result.seconds)


def _instance_settings(options: dict[str, Any]) -> dict[str, Any]:
    """`options` with an `instance` dict of numbers made the `InstanceSettings` the engine takes."""
    if not options.get("instance"):
        return {key: value for key, value in options.items() if key != "instance"}
    from ..predict.instances import InstanceSettings

    return {**options, "instance": InstanceSettings(**options["instance"])}


def _telling(listener: Listener, metrics: dict[str, Any]) -> Listener:
    """`listener` with `metrics` added to the STARTED event."""

    def send(event: ProgressEvent) -> None:
        if event.kind == EventKind.STARTED:
            event = replace(event, metrics={**event.metrics, **metrics})
        listener(event)

    return send


def _summary(result) -> RunSummary | None:
    return None if result is None else RunSummary(**result.as_dict())


def export_checkpoint(project_root: str, checkpoint_id: str, *, listener, cancel, **options: Any) -> dict[str, Any]:
    """`nta export`: the checkpoint written as `options['format']` to `options['output']`; returns the result as
    plain values (format, path, checkpoint_id, seconds, details)."""
    from ..project import TrainingProject
    from ..share import export_model

    result = export_model(TrainingProject.open(project_root), checkpoint_id, **options)
    return {"format": result.format, "path": str(result.path), "checkpoint_id": result.checkpoint_id, "seconds": result.seconds, **result.details}
