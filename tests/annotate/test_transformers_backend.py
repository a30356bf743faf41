"""The transformers SAM3 backend on a tiny random-weight folder: wiring, caching, prompt geometry (3D: test_transformers_video.py).

Random weights make arbitrary masks, so these tests check shapes, label ranges, what reaches the model and
what is (not) recomputed, never mask quality. `tiny_sam3_folder` comes from tests/conftest.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("transformers")

from napari_training_assistant.annotate import transformers_backend as tb  # noqa: E402
from napari_training_assistant.annotate import transformers_video as tv  # noqa: E402
from napari_training_assistant.annotate.errors import Sam3Error  # noqa: E402
from napari_training_assistant.annotate.image_prep import to_rgb_uint8  # noqa: E402
from napari_training_assistant.annotate.loading import load_image_backend  # noqa: E402
from napari_training_assistant.annotate.model_folder import validate_model_folder  # noqa: E402
from napari_training_assistant.annotate.prompts import Box, Point, Prompts  # noqa: E402


@pytest.fixture(scope="module")
def image_backend(tiny_sam3_folder):
    return tb.TransformersImageBackend(tiny_sam3_folder, "cpu")


def _noise(shape, dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, shape).astype(dtype) if dtype != np.float32 else rng.random(shape, dtype=np.float32)


class CallCounter:
    """Wraps a module's forward and counts the calls (and keeps the keyword arguments of each)."""

    def __init__(self, monkeypatch, module):
        self.calls: list[dict] = []
        original = module.forward

        def forward(*args, **kwargs):
            self.calls.append(kwargs)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, "forward", forward)


# ------------------------------------------------------------------------------------------------ loading
def test_folder_validation_loads_this_backend(tiny_sam3_folder):
    folder = validate_model_folder(tiny_sam3_folder, "2d", "cpu")
    assert folder.kind == "transformers"
    backend = load_image_backend(folder)
    assert isinstance(backend, tb.TransformersImageBackend)
    assert (backend.name, backend.device) == ("transformers", "cpu")


@pytest.mark.parametrize("config, match", [({"model_type": "bert"}, "'bert' model, not SAM3"), ("{not json", "cannot be read")])
def test_a_folder_that_is_not_sam3_is_refused(tmp_path, config, match):
    (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"")
    for backend_class in (tb.TransformersImageBackend, tv.TransformersVideoBackend):
        with pytest.raises(Sam3Error, match=match) as info:
            backend_class(tmp_path, "cpu")
        assert str(tmp_path) in str(info.value) and "sam3_video" in str(info.value)


def test_weights_missing_from_the_folder_are_refused(tiny_sam3_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(tiny_sam3_folder / "model.safetensors")
    del state["tracker_model.mask_decoder.iou_token.weight"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(tiny_sam3_folder / "config.json", tmp_path)
    with pytest.raises(Sam3Error, match="lacks 1 Sam3TrackerModel weights"):
        tb.TransformersImageBackend(tmp_path, "cpu")


def test_a_folder_written_by_save_pretrained_loads_too(tiny_sam3_folder, tmp_path):
    """`save_pretrained` of a built (not loaded) `Sam3VideoModel` stores the tracker as tracker_model.tracker_model.*
    in transformers 5.x: the key mapping the backend passes makes `Sam3TrackerModel` find every weight either way."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import Sam3VideoConfig, Sam3VideoModel

    model = Sam3VideoModel(Sam3VideoConfig.from_pretrained(tiny_sam3_folder))
    model.load_state_dict(load_file(tiny_sam3_folder / "model.safetensors"))
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert any(name.startswith("tracker_model.tracker_model.") for name in names)
    tb.TransformersImageBackend(tmp_path, "cpu")  # raises Sam3Error if any tracker weight were missing


def test_processor_mean_and_std_are_read_from_the_folder(tmp_path):
    assert tb.PixelSettings.for_folder(tmp_path, 224) == tb.PixelSettings(224)
    (tmp_path / "processor_config.json").write_text(json.dumps({"image_processor": {"image_mean": [0.1, 0.2, 0.3], "image_std": [1, 2, 3]}}))
    assert tb.PixelSettings.for_folder(tmp_path, 1008) == tb.PixelSettings(1008, (0.1, 0.2, 0.3), (1, 2, 3))


# ------------------------------------------------------------------------------------------------ features
def test_tracker_embeddings_match_the_video_tracker(image_backend, tiny_sam3_folder):
    """The no-memory embedding goes on the 1x level, as in `Sam3TrackerVideoModel` (not on the neck's 0.5x)."""
    import torch
    from transformers import Sam3TrackerVideoModel

    video = Sam3TrackerVideoModel.from_pretrained(tiny_sam3_folder, local_files_only=True).eval()
    pixels = image_backend.pixels.tensor(to_rgb_uint8(_noise((40, 60))), "cpu")
    with torch.inference_mode():
        ours = image_backend._tracker_embeddings(image_backend.tracker.get_image_features(pixels, return_dict=True).fpn_hidden_states)
        theirs = video.get_image_embeddings(pixels)
    assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in theirs]
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_detector_features_come_from_the_shared_backbone(image_backend, tiny_sam3_folder):
    import torch
    from transformers import Sam3Model

    detector = Sam3Model.from_pretrained(tiny_sam3_folder, local_files_only=True).eval()
    image = _noise((40, 60))
    image_backend.set_image(image, "shared-backbone")
    entry = image_backend._cache["shared-backbone"]
    with torch.inference_mode():
        ours = image_backend._detector_features(entry, image_backend._detector_model())
        theirs = detector.get_vision_features(image_backend.pixels.tensor(to_rgb_uint8(image), "cpu"))
    for a, b in zip(ours.fpn_hidden_states, theirs.fpn_hidden_states, strict=True):
        torch.testing.assert_close(a, b)


def test_roi_align_samples_like_torchvision():
    """On linear ramps bilinear sampling is exact, so each bin is the mean of its sample points: the bin centre
    inside the map, and torchvision's clamping past the last pixel."""
    import torch

    height, width = 12, 16
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    features = torch.stack([xs, ys])[None]
    inside = tb.roi_align(features, [torch.tensor([[2.0, 1.0, 9.0, 8.0]])], 7)
    torch.testing.assert_close(inside[0, 0, 0], 2.5 + torch.arange(7.0))
    torch.testing.assert_close(inside[0, 1, :, 0], 1.5 + torch.arange(7.0))
    edge = tb.roi_align(features, [torch.tensor([[14.0, 0.0, 16.0, 2.0]])], 2, sampling_ratio=1)
    torch.testing.assert_close(edge[0, 0, 0], torch.tensor([14.5, 15.0]))  # x = 15.5 clamps to the last pixel
    assert tb.roi_align(features, [torch.zeros((0, 4))], 7).shape == (0, 2, 7, 7)


# ------------------------------------------------------------------------------------------------ 2D
@pytest.mark.parametrize("image", [
    _noise((150, 97)),  # uint16 grey, not square
    _noise((60, 80, 3), np.uint8),  # RGB
    _noise((60, 80, 4), np.uint8),  # RGBA
    _noise((50, 70, 1), np.float32),  # one channel, float
], ids=["uint16", "rgb", "rgba", "float-1ch"])
def test_boxes_give_labels_in_image_pixels(image_backend, image):
    height, width = image.shape[:2]
    assert image_backend.set_image(image, ("boxes", image.shape, image.dtype.str)) is True
    boxes = (Box(2, 3, width * 0.3, height * 0.3), Box(width * 0.7, height * 0.7, width - 2, height - 2))
    labels = image_backend.segment(Prompts(boxes=boxes), threshold=0.5)
    assert labels.shape == (height, width) and labels.dtype == np.uint16
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_the_embedding_is_computed_once_per_image(image_backend, monkeypatch):
    vision = CallCounter(monkeypatch, image_backend.tracker.vision_encoder)
    image, prompts = _noise((64, 64)), Prompts(points=(Point(30, 30),))
    assert image_backend.set_image(image, "once") is True
    first = image_backend.segment(prompts)
    assert image_backend.set_image(image, "once") is False
    second = image_backend.segment(prompts)
    assert len(vision.calls) == 1
    np.testing.assert_array_equal(first, second)


def test_recent_images_stay_cached(image_backend, monkeypatch):
    vision = CallCounter(monkeypatch, image_backend.tracker.vision_encoder)
    keys = [f"slice-{i}" for i in range(tb.CACHE_SIZE + 1)]
    for key in keys:
        assert image_backend.set_image(_noise((32, 32)), key) is True
    assert image_backend.set_image(_noise((32, 32)), keys[-2]) is False  # stepping back one slice: cached
    assert image_backend.set_image(_noise((32, 32)), keys[0]) is True  # the oldest was dropped
    assert len(vision.calls) == len(keys) + 1


def test_prompt_pixels_are_scaled_into_the_model_frame(image_backend, monkeypatch):
    """A 200 x 100 (W x H) image is squashed to 224 x 224: x scales by 1.12, y by 2.24."""
    tracker = CallCounter(monkeypatch, image_backend.tracker)
    image_backend.set_image(_noise((100, 200)), "geometry")
    image_backend.segment(Prompts(boxes=(Box(50, 60, 10, 20),), points=(Point(30, 40), Point(45, 55, positive=False))))
    call = tracker.calls[-1]
    np.testing.assert_allclose(call["input_boxes"].numpy(), [[[11.2, 44.8, 56.0, 134.4]]], rtol=1e-6)
    np.testing.assert_allclose(call["input_points"].numpy(), [[[[33.6, 89.6], [50.4, 123.2]]]], rtol=1e-6)
    assert call["input_labels"].tolist() == [[[1, 0]]]
    assert call["multimask_output"] is False


def test_points_alone_make_one_object(image_backend, monkeypatch):
    tracker = CallCounter(monkeypatch, image_backend.tracker)
    image_backend.set_image(_noise((90, 120)), "points")
    one = image_backend.segment(Prompts(points=(Point(60, 45),)), threshold=0.3)
    assert tracker.calls[-1]["multimask_output"] is True  # one click: the best of three masks
    two = image_backend.segment(Prompts(points=(Point(60, 45), Point(10, 10, positive=False))))
    assert "input_boxes" not in tracker.calls[-1] and tracker.calls[-1]["input_labels"].tolist() == [[[1, 0]]]
    for labels in (one, two):
        assert labels.shape == (90, 120) and set(np.unique(labels)) <= {0, 1}


def test_far_apart_boxes_are_separate_objects(image_backend, monkeypatch):
    tracker = CallCounter(monkeypatch, image_backend.tracker)
    image_backend.set_image(_noise((128, 128)), "two-boxes")
    labels = image_backend.segment(Prompts(boxes=(Box(5, 5, 30, 30), Box(90, 90, 120, 120))), threshold=0.2)
    assert len(tracker.calls) == 2  # one decoder run per box
    assert len(set(np.unique(labels)) - {0}) <= 2


def test_exemplars_find_instances(image_backend, monkeypatch):
    image_backend.set_image(_noise((80, 100)), "exemplars")
    detector = image_backend._detector_model()
    backbone = CallCounter(monkeypatch, detector.vision_encoder.backbone)
    neck = CallCounter(monkeypatch, detector.vision_encoder.neck)
    calls = CallCounter(monkeypatch, detector)
    prompts = Prompts(exemplars=(Box(10, 20, 50, 60), Box(60, 10, 70, 20, positive=False)))
    labels = image_backend.segment(prompts, threshold=0.05)
    again = image_backend.segment(prompts, threshold=0.05)
    found = int(labels.max())
    assert labels.shape == (80, 100) and labels.dtype == np.uint16
    assert 1 <= found <= detector.config.detr_decoder_config.num_queries
    assert set(np.unique(labels)) - {0} == set(range(1, found + 1))  # instances numbered 1..n without gaps
    np.testing.assert_array_equal(labels, again)
    assert (len(backbone.calls), len(neck.calls)) == (0, 1)  # the ViT output is reused, the neck runs once
    np.testing.assert_allclose(calls.calls[0]["input_boxes"].numpy(), [[[0.3, 0.5, 0.4, 0.5], [0.65, 0.1875, 0.1, 0.125]]])
    assert calls.calls[0]["input_boxes_labels"].tolist() == [[1, 0]]
    assert image_backend.segment(prompts, threshold=0.95).max() <= found


@pytest.mark.parametrize("prompts, match", [
    (Prompts(), "draw a box or click a point"),
    (Prompts(points=(Point(5, 5, positive=False),)), "only negative points"),
    (Prompts(exemplars=(Box(1, 1, 9, 9, positive=False),)), "all negative"),
])
def test_unusable_prompts_are_refused(image_backend, prompts, match):
    image_backend.set_image(_noise((20, 20)), "refusals")
    with pytest.raises(Sam3Error, match=match):
        image_backend.segment(prompts)


def test_segment_before_set_image_is_refused(tiny_sam3_folder):
    with pytest.raises(Sam3Error, match="no image is embedded"):
        tb.TransformersImageBackend(tiny_sam3_folder, "cpu").segment(Prompts(points=(Point(1, 1),)))
