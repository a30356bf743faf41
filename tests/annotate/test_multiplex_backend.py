"""SAM3.1 multiplex propagation: builder discovery, prompts -> requests, label mapping, checkpoint checks and the
propagation loop (order, each slice once, cancel, session closed) against a stand-in for sam3's request API.
The real model runs under `gpu` with NTA_SAM31_FOLDER pointing at a folder with sam3.1_multiplex.pt."""

from __future__ import annotations

import gzip
import importlib
import importlib.machinery
import os
import pathlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_training_assistant.annotate import runtime
from napari_training_assistant.annotate.errors import Sam3Error
from napari_training_assistant.annotate.model_folder import validate_model_folder
from napari_training_assistant.annotate.multiplex_backend import (
    LabelMap,
    MultiplexPropagationBackend,
    exemplar_xywh,
    plan_requests,
    volume_frames,
)
from napari_training_assistant.annotate.prompts import Box, FramePrompts, Point, Prompts
from napari_training_assistant.annotate.runtime import BUILDER_NAME, multiplex_builder_available


# --------------------------------------------------------------------------- is a builder there?
def _fake_sam3(monkeypatch, builder=None, version="0.1.4") -> types.ModuleType:
    package = types.ModuleType("sam3")
    package.__path__ = []
    package.__version__ = version
    module = types.ModuleType("sam3.model_builder")
    module.build_sam3_image_model = lambda **kwargs: None
    if builder is not None:
        setattr(module, BUILDER_NAME, builder)
    monkeypatch.setitem(sys.modules, "sam3", package)
    monkeypatch.setitem(sys.modules, "sam3.model_builder", module)
    return module


def test_without_sam3_the_message_says_to_install_it_from_github(monkeypatch):
    monkeypatch.setitem(sys.modules, "sam3", None)
    monkeypatch.setitem(sys.modules, "sam3.model_builder", None)
    monkeypatch.setitem(sys.modules, "napari_sam3_assistant", None)
    available, message = multiplex_builder_available()
    assert available is False and "\n" not in message
    assert "github.com/facebookresearch/sam3" in message and BUILDER_NAME in message and "PyPI" in message
    assert "napari-sam3-assistant does not bundle it" in message
    plugin = types.ModuleType("napari_sam3_assistant")
    plugin.__spec__ = importlib.machinery.ModuleSpec("napari_sam3_assistant", None)
    monkeypatch.setitem(sys.modules, "napari_sam3_assistant", plugin)
    assert "napari-sam3-assistant is installed but does not bundle it" in multiplex_builder_available()[1]


def test_the_pypi_sam3_has_no_multiplex_builder(monkeypatch):
    _fake_sam3(monkeypatch, builder=None, version="0.1.4")
    available, message = multiplex_builder_available()
    assert available is False and "sam3 0.1.4 lacks" in message and "git+https://github.com/facebookresearch/sam3" in message


def test_a_sam3_that_fails_to_import_is_reported(monkeypatch):
    def broken(name, package=None):
        raise RuntimeError("operator torchvision::nms does not exist\nmore")

    monkeypatch.setattr(importlib, "import_module", broken)
    available, message = multiplex_builder_available()
    assert available is False and "cannot be imported (RuntimeError: operator torchvision::nms does not exist)" in message


def test_a_sam3_with_the_builder_is_picked(monkeypatch, tmp_path):
    _fake_sam3(monkeypatch, builder=lambda **kwargs: None, version="0.2.0.dev")
    assert multiplex_builder_available() == (True, "")
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    (tmp_path / "sam3.1_multiplex.pt").write_bytes(b"")
    assert validate_model_folder(tmp_path, "3d", "cuda").kind == "multiplex"


# --------------------------------------------------------------------------- prompts -> requests
def test_clicks_on_several_slices_refine_one_object_in_normalised_coordinates():
    prompts = FramePrompts({7: Prompts(points=(Point(50, 25), Point(10, 40, False))), 2: Prompts(points=(Point(0, 100),))})
    plan = plan_requests(prompts, num_frames=10, height=100, width=200)
    assert [p.request for p in plan] == [
        {"type": "add_prompt", "frame_index": 2, "obj_id": 1, "points": [[0.0, 1.0]], "point_labels": [1]},
        {"type": "add_prompt", "frame_index": 7, "obj_id": 1, "points": [[0.25, 0.25], [0.05, 0.4]], "point_labels": [1, 0]},
    ]
    assert [p.label for p in plan] == [1, 1]


def test_boxes_are_tracked_as_corner_points_with_their_clicks():
    prompts = FramePrompts({0: Prompts(boxes=(Box(40, 20, 20, 10), Box(60, 60, 80, 90)), points=(Point(30, 15, False),))})
    plan = plan_requests(prompts, num_frames=3, height=100, width=100)
    assert [p.request for p in plan] == [
        {"type": "add_prompt", "frame_index": 0, "obj_id": 1,
         "points": [[0.2, 0.1], [0.4, 0.2], [0.3, 0.15]], "point_labels": [2, 3, 0]},
        {"type": "add_prompt", "frame_index": 0, "obj_id": 2, "points": [[0.6, 0.6], [0.8, 0.9]], "point_labels": [2, 3]},
    ]


def test_exemplars_go_first_and_user_objects_keep_clear_of_detector_ids():
    prompts = FramePrompts({
        1: Prompts(points=(Point(10, 10, False),)),
        4: Prompts(exemplars=(Box(10, 20, 30, 60), Box(0, 0, 5, 5, positive=False)), points=(Point(50, 50),)),
    })
    plan = plan_requests(prompts, num_frames=5, height=100, width=100)
    assert plan[0].request == {
        "type": "add_prompt", "frame_index": 4,
        "bounding_boxes": [[0.1, 0.2, 0.2, 0.4], [0.0, 0.0, 0.05, 0.05]], "bounding_box_labels": [1, 0],
    }
    assert [(p.request["frame_index"], p.request["obj_id"], p.label) for p in plan[1:]] == [(4, 1001, 1), (1, 1001, 1)]
    assert exemplar_xywh(Box(-5, 90, 20, 120), 100, 100) == pytest.approx([0.0, 0.9, 0.2, 0.1])


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ({}, "no prompt on any slice"),
        ({3: Prompts(points=(Point(1, 1),))}, r"slice\(s\) \[3\] lie outside the stack of 3"),
        ({0: Prompts(exemplars=(Box(0, 0, 4, 4),)), 1: Prompts(exemplars=(Box(0, 0, 4, 4),))}, "exemplars on one slice only"),
        ({0: Prompts(exemplars=(Box(0, 0, 4, 4, positive=False),))}, "all negative"),
        ({1: Prompts(points=(Point(1, 1, False),))}, r"object\(s\) \[1\] have only negative clicks"),
    ],
)
def test_prompts_that_cannot_be_propagated_are_refused(frames, message):
    with pytest.raises(Sam3Error, match=message):
        plan_requests(FramePrompts(frames), num_frames=3, height=10, width=10)


def test_model_objects_keep_one_label_on_every_slice():
    labels = LabelMap({1001: 1})
    masks = np.zeros((3, 4, 4), bool)
    masks[0, 0, :] = masks[1, 1, :] = masks[2, 2:, :] = True
    masks[2, 0, 0] = True  # overlaps detector object 0: the lower label keeps the pixel
    first = labels.paint({"out_obj_ids": np.array([0, 1001, 5]), "out_binary_masks": masks}, (4, 4))
    assert first.dtype == np.uint16  # the user's object 1001 keeps label 1, the others follow as first seen
    assert first.tolist() == [[2, 2, 2, 2], [1, 1, 1, 1], [3, 3, 3, 3], [3, 3, 3, 3]]
    second = labels.paint({"out_obj_ids": torch.tensor([5]), "out_binary_masks": torch.tensor(masks[2:])}, (4, 4))
    assert set(np.unique(second)) == {0, 3}
    assert not labels.paint(None, (4, 4)).any()
    assert not labels.paint({"out_obj_ids": np.zeros(0), "out_binary_masks": np.zeros((0, 4, 4), bool)}, (4, 4)).any()


def test_a_stack_is_scaled_with_one_pair_of_percentiles():
    volume = np.stack([np.full((6, 8), 100, np.uint16), np.full((6, 8), 1000, np.uint16)])
    volume[1, 0, 0] = 0
    frames = volume_frames(volume)
    assert [f.size for f in frames] == [(8, 6), (8, 6)] and frames[0].mode == "RGB"
    assert np.asarray(frames[0]).max() < np.asarray(frames[1]).max()  # not stretched slice by slice
    with pytest.raises(Sam3Error, match=r"\(Z, H, W\) stack"):
        volume_frames(np.zeros((4, 4)))


# --------------------------------------------------------------------------- the backend against a stand-in predictor
class FakePredictor:
    """The request API of sam3's Sam3MultiplexVideoPredictor: each object is a 3x3 square at its prompt's
    (mean positive) position on every slice; the detector finds one object per positive exemplar (ids 0..)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.objects: dict[int, tuple[float, float]] = {}
        self.frames: list = []
        self.streamed: list[int] = []

    def handle_request(self, request):
        self.requests.append(request)
        kind = request["type"]
        if kind == "start_session":
            self.frames = request["resource_path"]
            return {"session_id": "s1"}
        if kind == "add_prompt":
            if "bounding_boxes" in request:
                self.objects = {i: (x + w / 2, y + h / 2) for i, ((x, y, w, h), positive)
                                in enumerate(zip(request["bounding_boxes"], request["bounding_box_labels"], strict=True)) if positive}
            else:
                coords = [xy for xy, code in zip(request["points"], request["point_labels"], strict=True) if code in (1, 2, 3)]
                if coords:
                    self.objects[request["obj_id"]] = tuple(np.mean(coords, axis=0))
            return {"frame_index": request["frame_index"], "outputs": self._outputs()}
        if kind == "close_session":
            return {"is_success": True}
        raise AssertionError(kind)

    def handle_stream_request(self, request):
        self.requests.append(request)
        start, count = request["start_frame_index"], len(self.frames)
        for z in [*range(start, count), *range(start - 1, -1, -1)]:
            self.streamed.append(z)
            yield {"frame_index": z, "outputs": self._outputs()}

    def _outputs(self):
        width, height = self.frames[0].size
        ids = sorted(self.objects)
        masks = np.zeros((len(ids), height, width), bool)
        for mask, obj_id in zip(masks, ids, strict=True):
            x, y = self.objects[obj_id]
            cx, cy = int(round(x * width)), int(round(y * height))
            mask[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2] = True
        return {"out_obj_ids": np.array(ids, dtype=np.int64), "out_binary_masks": masks}


class Flag:
    def __init__(self, after: int | None = None) -> None:
        self.after, self.seen = after, 0

    @property
    def cancelled(self) -> bool:
        self.seen += 1
        return self.after is not None and self.seen > self.after


def _checkpoint(path: Path, keys=("detector.backbone.w", "tracker.model.w")) -> None:
    torch.save({"model": {k: torch.zeros(2) for k in keys}}, path)


@pytest.fixture
def multiplex(monkeypatch, tmp_path):
    """A SAM3.1 folder and a stand-in sam3 with the multiplex builder; returns (folder, builder calls)."""
    calls: list[dict] = []

    def build_sam3_multiplex_video_predictor(checkpoint_path=None, bpe_path=None, max_num_objects=16, use_fa3=True,
                                             use_rope_real=True, compile=False, warm_up=False, async_loading_frames=True,
                                             device=None):
        calls.append(dict(checkpoint_path=checkpoint_path, bpe_path=bpe_path, use_fa3=use_fa3, use_rope_real=use_rope_real,
                          compile=compile, warm_up=warm_up, async_loading_frames=async_loading_frames, device=device))
        return FakePredictor()

    _fake_sam3(monkeypatch, builder=build_sam3_multiplex_video_predictor, version="0.2.0")
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    folder = tmp_path / "sam31"
    folder.mkdir()
    (folder / "bpe_simple_vocab_16e6.txt.gz").write_bytes(gzip.compress(b"header\n"))
    _checkpoint(folder / "sam3.1_multiplex.pt")
    return folder, calls


def test_the_builder_gets_the_folders_checkpoint_and_no_flash_attention(multiplex):
    folder, calls = multiplex
    backend = MultiplexPropagationBackend(folder, "cuda")
    assert calls == [{
        "checkpoint_path": str(folder / "sam3.1_multiplex.pt"), "bpe_path": str(folder / "bpe_simple_vocab_16e6.txt.gz"),
        "use_fa3": False, "use_rope_real": True, "compile": False, "warm_up": False, "async_loading_frames": False,
        "device": "cuda",
    }]
    assert backend.device == "cuda" and backend.name == "sam3.1 multiplex"


def test_propagation_yields_prompted_slices_first_then_every_other_slice_once(multiplex):
    backend = MultiplexPropagationBackend(multiplex[0], "cuda")
    volume = np.random.default_rng(0).integers(0, 3000, (8, 20, 30)).astype(np.uint16)
    # slice 3: the box is object 1, the click outside it object 2; slice 5: clicks alone are object 1 again
    prompts = FramePrompts({5: Prompts(points=(Point(23, 15),)), 3: Prompts(boxes=(Box(20, 12, 26, 18),), points=(Point(10, 8),))})
    out = list(backend.propagate(volume, prompts, threshold=0.4))
    order = [z for z, _ in out]
    assert order == [3, 5, 4, 6, 7, 2, 1, 0]
    for _, labels in out:
        assert labels.shape == (20, 30) and labels.dtype == np.uint16
        assert labels[15, 23] == 1 and labels[8, 10] == 2
    predictor = backend._predictor
    kinds = [r["type"] for r in predictor.requests]
    assert kinds == ["start_session", "add_prompt", "add_prompt", "add_prompt", "propagate_in_video", "close_session"]
    start, *prompts_sent = predictor.requests[:4]
    assert len(start["resource_path"]) == 8 and start["offload_video_to_cpu"] is False
    assert all(r["session_id"] == "s1" and r["output_prob_thresh"] == 0.4 for r in prompts_sent)
    assert predictor.requests[4] == {"type": "propagate_in_video", "session_id": "s1", "propagation_direction": "both",
                                          "start_frame_index": 3, "output_prob_thresh": 0.4}


def test_exemplar_objects_get_labels_after_the_users(multiplex):
    backend = MultiplexPropagationBackend(multiplex[0], "cuda")
    volume = np.zeros((3, 20, 20), np.uint8)
    prompts = FramePrompts({1: Prompts(exemplars=(Box(2, 2, 6, 6), Box(12, 12, 16, 16)), points=(Point(10, 4),))})
    out = dict(backend.propagate(volume, prompts))
    assert sorted(out) == [0, 1, 2]
    for labels in out.values():
        assert (labels[4, 10], labels[4, 4], labels[14, 14]) == (1, 2, 3)


def test_cancel_stops_propagation_and_closes_the_session(multiplex):
    backend = MultiplexPropagationBackend(multiplex[0], "cuda")
    volume = np.zeros((10, 8, 8), np.uint8)
    out = list(backend.propagate(volume, FramePrompts({0: Prompts(points=(Point(4, 4),))}), cancel=Flag(after=4)))
    assert len(out) < 10
    predictor = backend._predictor
    assert predictor.requests[-1] == {"type": "close_session", "session_id": "s1"}
    assert len(predictor.streamed) <= len(out) + 1


def test_abandoning_the_generator_closes_the_session(multiplex):
    backend = MultiplexPropagationBackend(multiplex[0], "cuda")
    frames = backend.propagate(np.zeros((4, 8, 8), np.uint8), FramePrompts({2: Prompts(points=(Point(4, 4),))}))
    assert next(frames)[0] == 2
    frames.close()
    assert backend._predictor.requests[-1]["type"] == "close_session"


def test_unsafe_or_foreign_checkpoints_never_reach_the_builder(multiplex):
    folder, calls = multiplex

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (folder / "code-ran",))

    torch.save({"model": {"detector.w": torch.zeros(1)}, "x": Payload()}, folder / "sam3.1_multiplex.pt")
    with pytest.raises(Sam3Error, match="refused"):
        MultiplexPropagationBackend(folder, "cuda")
    _checkpoint(folder / "sam3.1_multiplex.pt", keys=("backbone.w",))
    with pytest.raises(Sam3Error, match="does not look like a SAM3.1 multiplex checkpoint"):
        MultiplexPropagationBackend(folder, "cuda")
    assert calls == [] and not (folder / "code-ran").exists()


def test_cpu_and_missing_builders_are_refused(multiplex, monkeypatch):
    folder, _ = multiplex
    with pytest.raises(Sam3Error, match="needs a CUDA GPU.*SAM3.0 tracker of a Hugging Face folder"):
        MultiplexPropagationBackend(folder, "cpu")
    _fake_sam3(monkeypatch, builder=None, version="0.1.4")
    with pytest.raises(Sam3Error, match="0.1.4 lacks"):
        MultiplexPropagationBackend(folder, "cuda")


# --------------------------------------------------------------------------- the real model (CUDA + weights)
@pytest.mark.gpu
def test_real_propagation_through_a_small_stack():
    folder = Path(os.environ.get("NTA_SAM31_FOLDER", ""))
    if not os.environ.get("NTA_SAM31_FOLDER") or not (folder / "sam3.1_multiplex.pt").is_file():
        pytest.skip("set NTA_SAM31_FOLDER to a folder with sam3.1_multiplex.pt")
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei

    image, truth = make_nuclei((256, 256), n_nuclei=5, radius_range=(14.0, 20.0), seed=4)
    volume = np.stack([(image * (0.7 + 0.05 * z)).astype(np.uint16) for z in range(8)])
    y, x = np.argwhere(truth == 1).mean(axis=0)
    backend = MultiplexPropagationBackend(folder, "cuda")
    out = list(backend.propagate(volume, FramePrompts({3: Prompts(points=(Point(float(x), float(y)),))})))
    assert [z for z, _ in out][0] == 3 and sorted(z for z, _ in out) == list(range(8))
    hits = sum(int(labels[int(y), int(x)] == 1) for _, labels in out)
    assert hits >= 6
