"""Object scores in the benchmark of binary models: which objects the truth holds, and the recorded row."""

from __future__ import annotations

import numpy as np

from napari_training_assistant.train.benchmark import benchmark_checkpoint, instances_of
from napari_training_assistant.train.instance_metrics import connected_components, match_dataset, summary


def test_a_mask_with_several_ids_keeps_them_a_binary_mask_is_split_into_components():
    touching = np.zeros((6, 10), np.uint8)
    touching[1:5, 1:5], touching[1:5, 5:9] = 3, 8  # two objects that touch
    np.testing.assert_array_equal(instances_of(touching), touching)
    binary = (touching > 0).astype(np.uint8) * 255
    assert instances_of(binary).max() == 1  # touching objects are one component
    apart = binary.copy()
    apart[:, 5] = 0
    assert instances_of(apart).max() == 2


def test_benchmark_row_holds_the_object_scores_of_the_predictions(make_project, fast_options):
    from napari_training_assistant.model import load_model, read_checkpoint_info
    from napari_training_assistant.predict import predict_image
    from napari_training_assistant.preprocess import normalize, with_channel_axis
    from napari_training_assistant.train import train_project

    project = make_project()
    result = train_project(project, fast_options(run_benchmark=False))
    row = benchmark_checkpoint(project, result.checkpoint_id)
    path = project.checkpoints.path_of(result.checkpoint_id)
    model, mode = load_model(path), read_checkpoint_info(path).normalization
    pairs = []
    for pair in project.dataset.pairs:
        if pair.split == "benchmark":
            image, mask = project.dataset.load(pair.pair_id)
            probabilities = predict_image(model, normalize(with_channel_axis(image, None), mode, channel_axis_first=True))
            pairs.append((instances_of(mask), connected_components(probabilities[0] > 0.5)))
    expected = summary(match_dataset(pairs))
    for name, value in expected.items():
        assert abs(row[f"instance_{name}"] - value) < 1e-6, name
    assert project.history.benchmarks()[-1]["instance_accuracy_50"] == row["instance_accuracy_50"]
