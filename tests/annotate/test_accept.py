"""Accepting a SAM3 preview goes through the Dataset's mask preparation, records its source and prompts,
never pairs a stack with a 2D mask, and the pair trains."""

from __future__ import annotations

import numpy as np
import pytest

from napari_training_assistant.annotate.accept import accept_preview
from napari_training_assistant.annotate.errors import Sam3Error

PROMPTS = [{"type": "box", "xyxy": [4, 4, 20, 20], "positive": True, "mode": "2d_box"}]


def blob_labels(shape):
    labels = np.zeros(shape, dtype=np.uint16)
    labels[..., 8:20, 10:24] = 1
    labels[..., 30:40, 30:44] = 2
    return labels


def test_a_2d_preview_becomes_a_binary_pair_with_source_and_prompts(make_project):
    project = make_project(splits=())
    image = np.random.default_rng(0).integers(0, 4000, (48, 48)).astype(np.uint16)
    [record] = accept_preview(project, image, blob_labels((48, 48)), prompts=PROMPTS, image_layer="cells", mask_layer="SAM3 preview labels")
    assert record.source == "sam3_preview" and record.prompts == PROMPTS
    assert record.saved_labels == [0, 1] and record.source_labels == [0, 1, 2]
    assert (record.image_layer, record.mask_layer) == ("cells", "SAM3 preview labels")
    image_back, mask_back = project.dataset.load(record.pair_id)
    assert np.array_equal(image_back, image) and mask_back.max() == 1


def test_a_2d_preview_on_a_stack_becomes_a_slice_pair(make_project):
    project = make_project(splits=())
    stack = np.random.default_rng(1).random((5, 48, 48)).astype(np.float32)
    [record] = accept_preview(project, stack, blob_labels((48, 48)), prompts=PROMPTS, slice_index=3)
    assert record.spatial_dims == "2d" and record.slice_index == 3 and record.image_shape == [48, 48]
    assert np.array_equal(project.dataset.load(record.pair_id)[0], stack[3])
    with pytest.raises(Sam3Error, match="one slice"):
        accept_preview(project, stack, blob_labels((48, 48)), prompts=PROMPTS, form="stack", slice_index=3)
    with pytest.raises(Sam3Error, match="which slice"):
        accept_preview(project, stack, blob_labels((48, 48)), prompts=PROMPTS)


def test_propagated_labels_become_a_stack_pair_or_slice_pairs(make_project):
    stack = np.random.default_rng(2).random((4, 32, 32)).astype(np.float32)
    labels = np.zeros((4, 32, 32), dtype=np.uint16)
    labels[1, 5:15, 5:15] = 1
    labels[2, 6:16, 6:16] = 1
    project_3d = make_project("p3", spatial_dims="3d", splits=())
    [record] = accept_preview(project_3d, stack, labels, prompts=PROMPTS, form="stack")
    assert record.spatial_dims == "3d" and record.mask_shape == [4, 32, 32]
    project_2d = make_project("p2", splits=())
    records = accept_preview(project_2d, stack, labels, prompts=PROMPTS, form="slices")
    assert [r.slice_index for r in records] == [1, 2] and all(r.source == "sam3_preview" for r in records)


def test_an_empty_preview_is_refused_and_nothing_is_added(make_project):
    project = make_project(splits=())
    with pytest.raises(Sam3Error, match="empty"):
        accept_preview(project, np.zeros((48, 48)), np.zeros((48, 48)), prompts=PROMPTS)
    with pytest.raises(Sam3Error, match="does not match"):
        accept_preview(project, np.zeros((48, 48)), blob_labels((40, 48)), prompts=PROMPTS)
    assert len(project.dataset) == 0


def test_multiclass_projects_take_the_preview_as_the_chosen_class(make_project):
    project = make_project(output_mode="multiclass", num_classes=3, splits=())
    [record] = accept_preview(project, np.zeros((48, 48)), blob_labels((48, 48)), prompts=PROMPTS, mask_mode="target-class", target_class=2)
    assert record.saved_labels == [0, 2]


def test_accepted_previews_train(make_project, fast_options):
    from napari_training_assistant.train import train_project

    project = make_project(splits=())
    rng = np.random.default_rng(3)
    for _ in range(3):
        labels = blob_labels((48, 48))
        image = (labels > 0) * 2000 + rng.integers(0, 500, (48, 48))
        accept_preview(project, image.astype(np.uint16), labels, prompts=PROMPTS)
    project.dataset.set_split("pair_0003", "val")
    result = train_project(project, fast_options())
    assert result.status == "completed"
    assert project.manifest.get("pair_0001").used_by_checkpoints == [result.checkpoint_id]
