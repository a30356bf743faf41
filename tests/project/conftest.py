"""Fixtures shared by the Training Project Folder tests (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_training_assistant.project import TrainingProject


@pytest.fixture
def project(tmp_path: Path) -> TrainingProject:
    """A fresh default (2D binary) project."""
    return TrainingProject.create(tmp_path / "proj", name="test project")


@pytest.fixture
def add_pair():
    """add_pair(project, seed=0, **options): add a small random 16x16 binary pair."""

    def _add(project: TrainingProject, seed: int = 0, **options):
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        mask = (rng.random((16, 16)) > 0.5).astype(np.uint8)
        return project.dataset.add(image, mask, **options)

    return _add


def listing(root: Path) -> set[str]:
    """Every path under `root` (relative, posix), folders included."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def tree():
    return listing
