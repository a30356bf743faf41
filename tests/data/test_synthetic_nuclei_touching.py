"""Generated touching nuclei (issue 14): clusters that connected components merge, other images unchanged."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_training_assistant.data.synthetic_nuclei import make_nuclei
from napari_training_assistant.demo import TOUCHING_NUCLEI


def test_touching_nuclei_form_clusters_that_connected_components_merge():
    for seed in (1, 2, 3):
        image, labels = make_nuclei(seed=seed, **TOUCHING_NUCLEI)
        objects = int(labels.max())
        blobs = ndimage.label(labels > 0)[1]
        assert objects == TOUCHING_NUCLEI["n_nuclei"] and blobs <= 0.8 * objects, (seed, objects, blobs)
        assert sorted(np.unique(labels)) == list(range(objects + 1))
        sizes = np.bincount(labels.ravel())[1:]
        assert sizes.min() > 20  # a nucleus is never eaten by its neighbour


def test_without_touching_the_nuclei_keep_a_gap():
    _, labels = make_nuclei(seed=4)
    assert ndimage.label(labels > 0)[1] == labels.max()
