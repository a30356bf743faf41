"""Errors with messages a user can act on: what is wrong, where, and how to fix it."""


class ProjectError(Exception):
    """Any user-facing problem with a Training Project Folder (the CLI prints it as one line, exit 2)."""


class NotAProjectError(ProjectError):
    """The folder has no project_config.json."""


class ProjectFileError(ProjectError):
    """A project file is missing, unreadable, or fails validation."""


class SchemaVersionError(ProjectFileError):
    """A file was written by a newer version of the tool."""


class DatasetError(ProjectError):
    """An image/mask pair cannot be added as asked."""


class CheckpointError(ProjectError):
    """A checkpoint or weights file is missing, incompatible or unsafe."""


class IncompatibleArchitectureError(CheckpointError):
    """Weights were made for another architecture; the message names every differing field."""
