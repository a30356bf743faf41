"""What the widget runs in a child process (see `child_process`): the same engine functions as the CLI.

Each task takes picklable arguments (a project folder path, `TrainOptions`, numpy arrays) plus ``listener`` and ``cancel``, and returns a picklable value. The engine (torch, Lightning)
is imported inside the functions, so only the child loads it; this module needs neither Qt nor torch.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

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


def predict_into_project(project_root: str, image, *, listener, cancel, **options: Any):
    """`nta predict`: the image predicted and saved into the project's predictions/; returns the
    `PredictionRecord` (the labels stay on disk: the GUI reads them back off its GUI thread)."""
    from ..predict.project_prediction import predict_array
    from ..project import TrainingProject

    return predict_array(TrainingProject.open(project_root), np.asarray(image), **options)


def _summary(result) -> RunSummary | None:
    return None if result is None else RunSummary(**result.as_dict())
