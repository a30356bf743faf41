"""Seeded watershed: cores the model's boundary failed to cut are split at the neck of their distance map."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.predict.instances import InstanceSettings, instance_labels


def _probabilities(*shapes: np.ndarray) -> np.ndarray:
    """Foreground 0.95 inside the union of `shapes`, boundary 0.05 everywhere: no boundary between them."""
    inside = np.logical_or.reduce(shapes)
    probabilities = np.full((2, *inside.shape), 0.05, np.float32)
    probabilities[0][inside] = 0.95
    return probabilities


def _disc(centre: tuple[int, int], radius: float, shape=(48, 64)) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_two_nuclei_merged_in_the_foreground_are_split_at_their_neck():
    probabilities = _probabilities(_disc((24, 22), 10), _disc((24, 38), 10))
    found = instance_labels(probabilities)
    assert found.max() == 2
    assert found[24, 20] != found[24, 40]
    assert instance_labels(probabilities, InstanceSettings(split_depth=0)).max() == 1  # the watershed alone merges them


def test_single_round_and_elongated_objects_are_not_split():
    yy, xx = np.indices((48, 64))
    ellipse = ((yy - 24) / 6.0) ** 2 + ((xx - 32) / 15.0) ** 2 <= 1
    assert instance_labels(_probabilities(_disc((24, 32), 12))).max() == 1
    assert instance_labels(_probabilities(ellipse)).max() == 1


def test_split_depth_is_recorded_per_dimensionality_and_checked():
    assert InstanceSettings().record(2)["instance_split_depth"] == 2.0
    assert InstanceSettings().record(3)["instance_split_depth"] == 0.0  # off in 3D (anisotropic voxels)
    assert InstanceSettings(split_depth=3).record(3)["instance_split_depth"] == 3.0
    for bad in (-1.0, float("inf"), True):
        with pytest.raises(ValueError, match="split_depth"):
            InstanceSettings(split_depth=bad)
