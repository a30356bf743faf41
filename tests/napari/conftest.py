"""Shared set-up of the napari tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def add_synapse_layers():
    """add_synapse_layers(viewer, em, cells=False): a generated EM volume's image, pre/post labels, synapse points
    and region rectangles (with split and z range features) as viewer layers; `cells` adds the segmentation."""

    def _add(viewer, em, cells: bool = False) -> None:
        viewer.add_image(em.image, name="em", scale=em.resolution)
        if cells:
            viewer.add_labels(em.segmentation, name="cells", scale=em.resolution)
        viewer.add_labels(em.label0, name="pre", scale=em.resolution)
        viewer.add_labels(em.label1, name="post", scale=em.resolution)
        viewer.add_points(em.points, name="synapses", scale=em.resolution)
        rectangles, features = [], {"split": [], "z_start": [], "z_stop": []}
        for region in em.regions:
            (z0, y0, x0), (z1, y1, x1) = region["start"], region["stop"]
            rectangles.append(np.array([[z0, y0, x0], [z0, y0, x1], [z0, y1, x1], [z0, y1, x0]], dtype=float))
            features["split"].append(region["tags"][0])
            features["z_start"].append(z0)
            features["z_stop"].append(z1)
        viewer.add_shapes(rectangles, shape_type="rectangle", name="regions", features=features, scale=em.resolution)

    return _add
