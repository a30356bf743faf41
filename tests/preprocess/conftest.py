"""Shared fixtures of the preprocess tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def percentile_sizes(monkeypatch) -> list[int]:
    """The sizes of the arrays `np.percentile` is called on inside preprocess.normalization."""
    from napari_training_assistant.preprocess import normalization as norm

    seen: list[int] = []
    original = np.percentile

    def spy(a, q, *args, **kwargs):
        seen.append(np.asarray(a).size)
        return original(a, q, *args, **kwargs)

    monkeypatch.setattr(norm.np, "percentile", spy)
    return seen
