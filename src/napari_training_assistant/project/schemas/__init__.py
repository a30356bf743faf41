"""One pydantic model per project JSON file."""

from .architecture import (
    COMPATIBILITY_FIELDS,
    PRESETS,
    ArchitectureConfig,
    architecture_differences,
    default_architecture,
)
from .base import VersionedModel
from .manifest import DatasetManifest, PairRecord, RemovedPair, Split
from .project_config import AutoConfigDecision, ProjectConfig, TrainingSettings, UiState
from .registry import (
    CheckpointRecord,
    CheckpointRegistry,
    ImportedModel,
    ModelRegistry,
    PredictionRecord,
    PredictionRegistry,
    RunHeartbeat,
    StartingWeightsConfig,
    TrainingRun,
    TrainingRunHistory,
)
from .sam3 import DEFAULT_LAYER_NAMES, Sam3Config

__all__ = [
    "COMPATIBILITY_FIELDS",
    "DEFAULT_LAYER_NAMES",
    "PRESETS",
    "ArchitectureConfig",
    "AutoConfigDecision",
    "CheckpointRecord",
    "CheckpointRegistry",
    "DatasetManifest",
    "ImportedModel",
    "ModelRegistry",
    "PairRecord",
    "PredictionRecord",
    "PredictionRegistry",
    "ProjectConfig",
    "RemovedPair",
    "RunHeartbeat",
    "Sam3Config",
    "Split",
    "StartingWeightsConfig",
    "TrainingRun",
    "TrainingRunHistory",
    "TrainingSettings",
    "UiState",
    "VersionedModel",
    "architecture_differences",
    "default_architecture",
]
