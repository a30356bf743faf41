"""Command line `napari-training-assistant` (alias `nta`): the project, headless."""

from .main import main

__all__ = ["main"]
