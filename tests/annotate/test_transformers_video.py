"""3D propagation with transformers' SAM3.0 tracker on a tiny random-weight folder: the folder choice loads it,
every slice is yielded once (before the first prompted slice and after the last too), prompts reach the
session in model pixels, Stop, and refusals. Random weights make arbitrary masks: only shapes, label ranges and
what reaches the model are checked. `tiny_sam3_folder` comes from tests/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from napari_training_assistant.annotate import transformers_video as tv  # noqa: E402
from napari_training_assistant.annotate.errors import Sam3Error  # noqa: E402
from napari_training_assistant.annotate.loading import load_propagation_backend  # noqa: E402
from napari_training_assistant.annotate.model_folder import validate_model_folder  # noqa: E402
from napari_training_assistant.annotate.prompts import Box, FramePrompts, Point, Prompts  # noqa: E402


@pytest.fixture(scope="module")
def video_backend(tiny_sam3_folder):
    return tv.TransformersVideoBackend(tiny_sam3_folder, "cpu")


def _noise(shape, dtype=np.uint16):
    return np.random.default_rng(0).integers(0, 4000, shape).astype(dtype)


def _point(z: int) -> FramePrompts:
    return FramePrompts({z: Prompts(points=(Point(20, 20),))})


class CancelAfter:
    def __init__(self, frames: int):
        self.frames, self.seen = frames, 0

    @property
    def cancelled(self) -> bool:
        return self.seen >= self.frames


def test_a_hugging_face_folder_in_3d_loads_the_tracker_on_cpu(tiny_sam3_folder):
    folder = validate_model_folder(tiny_sam3_folder, "3d", "cpu")
    assert (folder.kind, folder.spatial, folder.describe()) == ("tracker_video", "3d", "SAM3.0 tracker (transformers) on cpu")
    backend = load_propagation_backend(folder)
    assert isinstance(backend, tv.TransformersVideoBackend) and backend.device == "cpu"


@pytest.mark.parametrize("first, depth, order", [
    (2, 5, [2, 3, 4, 1, 0]),
    (0, 3, [0, 1, 2]),
    (4, 5, [4, 3, 2, 1, 0]),
])
def test_tracking_runs_forward_from_the_first_prompted_slice_then_backward(first, depth, order):
    steps = tv.TransformersVideoBackend._order(first, depth)
    assert [z for z, _ in steps] == order
    assert all(reverse == (z < first) for z, reverse in steps)


def test_propagation_yields_every_slice_once(video_backend):
    volume = _noise((5, 64, 80)).astype(np.float32)
    frames = list(video_backend.propagate(volume, FramePrompts({2: Prompts(boxes=(Box(10, 10, 40, 30),))})))
    assert [z for z, _ in frames] == [2, 3, 4, 1, 0]
    for _, labels in frames:
        assert labels.shape == (64, 80) and labels.dtype == np.uint16 and labels.max() <= 1


def test_several_prompted_slices_cover_the_stack_and_run_the_tracker_once_per_slice(video_backend, monkeypatch):
    """Prompts on slices 1 and 3 of 6: slice 0 (before) and 4, 5 (after) are tracked too; the tracker runs once
    per prompted slice to condition on it, then once per slice."""
    calls = []
    forward = video_backend.model.forward
    monkeypatch.setattr(video_backend.model, "forward", lambda session, **kw: calls.append(kw["frame_idx"]) or forward(session, **kw))
    prompts = FramePrompts({3: Prompts(boxes=(Box(5, 5, 20, 20), Box(40, 30, 60, 50))), 1: Prompts(points=(Point(10, 10),))})
    frames = list(video_backend.propagate(_noise((6, 32, 48, 3), np.uint8), prompts, threshold=0.3))
    assert [z for z, _ in frames] == [1, 2, 3, 4, 5, 0]
    assert calls == [1, 3, 1, 2, 3, 4, 5, 0]
    assert all(labels.max() <= 2 for _, labels in frames)


def test_prompt_pixels_reach_the_video_session(video_backend, monkeypatch):
    from transformers import Sam3TrackerVideoInferenceSession

    added = []
    original = Sam3TrackerVideoInferenceSession.add_point_inputs
    monkeypatch.setattr(Sam3TrackerVideoInferenceSession, "add_point_inputs",
                        lambda self, obj_idx, frame_idx, inputs: added.append(inputs) or original(self, obj_idx, frame_idx, inputs))
    prompts = FramePrompts({0: Prompts(boxes=(Box(50, 60, 10, 20),), points=(Point(30, 40, positive=False),))})
    list(video_backend.propagate(_noise((2, 100, 200)), prompts))
    np.testing.assert_allclose(added[0]["point_coords"].numpy(), [[[[11.2, 44.8], [56.0, 134.4], [33.6, 89.6]]]], rtol=1e-6)
    assert added[0]["point_labels"].tolist() == [[[2, 3, 0]]]


def test_cancel_stops_propagation(video_backend):
    cancel = CancelAfter(1)
    seen = []
    for z, _ in video_backend.propagate(_noise((5, 64, 80)), _point(2), cancel=cancel):
        seen.append(z)
        cancel.seen += 1
    assert seen == [2]


@pytest.mark.parametrize("volume, prompts, match", [
    (_noise((3, 16, 16)), FramePrompts(), "no prompt on any slice"),
    (_noise((3, 16, 16)), _point(5), "slices 0 to 2"),
    (_noise((3, 16, 16)), FramePrompts({0: Prompts(exemplars=(Box(1, 1, 5, 5),))}), "2D prompt"),
    (_noise((16, 16)), _point(0), "stack"),
])
def test_unusable_propagation_requests_are_refused(video_backend, volume, prompts, match):
    with pytest.raises(Sam3Error, match=match):
        list(video_backend.propagate(volume, prompts))
