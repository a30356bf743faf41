"""Training engine: Lightning run orchestration over the project's pairs."""

from .events import CancelToken, EventKind, ProgressEvent
from .options import TrainOptions
from .run import TrainingFailed, TrainResult, train_project

__all__ = ["CancelToken", "EventKind", "ProgressEvent", "TrainOptions", "TrainResult", "TrainingFailed", "train_project"]
