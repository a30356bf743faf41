"""The Training Project Folder: schemas, atomic and locked IO, dataset, registries, history.

This layer imports neither torch nor Qt: a project opens, validates and reports anywhere.
"""

from .errors import (
    CheckpointError,
    DatasetError,
    IncompatibleArchitectureError,
    NotAProjectError,
    ProjectError,
    ProjectFileError,
    SchemaVersionError,
)
from .layout import ProjectLayout
from .training_project import TrainingProject

__all__ = [
    "CheckpointError",
    "DatasetError",
    "IncompatibleArchitectureError",
    "NotAProjectError",
    "ProjectError",
    "ProjectFileError",
    "ProjectLayout",
    "SchemaVersionError",
    "TrainingProject",
]
