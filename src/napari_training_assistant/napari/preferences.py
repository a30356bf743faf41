"""Plugin preferences (napari 0.9 `configurations`): default project folder and device."""

from __future__ import annotations

from pathlib import Path

PLUGIN_NAME = "napari-training-assistant"


def _settings():
    try:
        from napari.settings import get_plugin_settings

        return get_plugin_settings(PLUGIN_NAME).general
    except Exception:  # napari without plugin settings, or the manifest not installed
        return None


def default_project_folder() -> str | None:
    """The preferred project folder, only when it already is a project (nothing is created)."""
    from ..project import TrainingProject

    settings = _settings()
    folder = getattr(settings, "default_project_folder", "") if settings is not None else ""
    return folder if folder and TrainingProject.is_project(Path(folder).expanduser()) else None


def default_device() -> str:
    settings = _settings()
    return getattr(settings, "device", "auto") if settings is not None else "auto"
