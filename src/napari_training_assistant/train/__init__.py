"""Training engine: Lightning run orchestration over the project's pairs."""

from .events import CancelToken, EventKind, ProgressEvent
from .options import TrainOptions
from .records import TrainingFailed, TrainResult
from .run import train_project

__all__ = ["CancelToken", "EventKind", "ProgressEvent", "TrainOptions", "TrainResult", "TrainingFailed", "train_project"]
