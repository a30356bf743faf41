"""Concept (text) prompts on the tiny random SAM3: tokenized by the folder's tokenizer, text features computed
once per text, scored instances re-thresholded without the model, one-line refusals. Random weights make
arbitrary masks: these tests check wiring, never mask quality."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("transformers")

from napari_training_assistant.annotate import transformers_backend as tb  # noqa: E402
from napari_training_assistant.annotate.annotator import Annotator  # noqa: E402
from napari_training_assistant.annotate.errors import Sam3Error  # noqa: E402
from napari_training_assistant.annotate.model_folder import validate_model_folder  # noqa: E402
from napari_training_assistant.annotate.prompts import Box, Prompts  # noqa: E402


@pytest.fixture(scope="module")
def backend(tiny_sam3_folder):
    backend = tb.TransformersImageBackend(tiny_sam3_folder, "cpu")
    backend.set_image(np.random.default_rng(0).integers(0, 255, (48, 64), dtype=np.uint8), "image")
    return backend


def test_a_text_prompt_is_tokenized_by_the_folder_and_encoded_once(backend, monkeypatch):
    detector = backend._detector_model()
    seen = []
    original = detector.get_text_features
    monkeypatch.setattr(detector, "get_text_features", lambda **kw: seen.append(kw["input_ids"][0].tolist()) or original(**kw))
    backend.detect(Prompts(text="nucleus"))
    backend.detect(Prompts(text="nucleus"))
    backend.detect(Prompts(text=" nucleus "))  # the same text once stripped
    assert len(seen) == 1
    ids = seen[0]
    assert ids[0] == 49406 and ids[8] == 49407 and len(ids) == tb.TEXT_LENGTH  # start, 7 letters ("n","u",...,"s</w>"), end
    backend.detect(Prompts(text="cell"))
    assert len(seen) == 2


def test_instances_come_scored_and_the_score_threshold_needs_no_model_run(backend):
    found = backend.detect(Prompts(text="nucleus"), threshold=0.5)
    scores = [item.score for item in found.instances]
    assert scores == sorted(scores, reverse=True) and all(0.05 <= s <= 1 for s in scores)
    counts = [len(np.unique(found.labels(t))) - 1 for t in (0.05, 0.3, 0.6, 0.99)]
    assert counts == sorted(counts, reverse=True)
    assert found.labels(0.05).shape == (48, 64)


def test_text_and_exemplars_reach_the_detector_together(backend, monkeypatch):
    detector = backend._detector_model()
    calls = []
    original = detector.forward
    monkeypatch.setattr(detector, "forward", lambda *a, **kw: calls.append(kw) or original(*a, **kw))
    backend.segment(Prompts(text="nucleus", exemplars=(Box(4, 4, 20, 20), Box(30, 30, 40, 40, positive=False))))
    assert calls[-1]["input_boxes"].shape == (1, 2, 4) and calls[-1]["input_boxes_labels"].tolist() == [[1, 0]]


def test_a_folder_without_a_tokenizer_says_what_is_missing_and_exemplars_still_work(tiny_sam3_folder, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_sam3_folder / name, tmp_path)
    backend = tb.TransformersImageBackend(tmp_path, "cpu")
    backend.set_image(np.zeros((32, 32), np.uint8), "image")
    with pytest.raises(Sam3Error, match="no text tokenizer") as info:
        backend.detect(Prompts(text="nucleus"))
    assert "tokenizer.json" in str(info.value) and "\n" not in str(info.value)
    backend.detect(Prompts(exemplars=(Box(4, 4, 20, 20),)))


@pytest.mark.parametrize("prompts, match", [
    (Prompts(text="   "), "text prompt is empty"),
    (Prompts(exemplars=(Box(1, 1, 9, 9, positive=False),)), "all negative"),
])
def test_bad_concept_prompts_are_refused_in_one_line(backend, prompts, match):
    with pytest.raises(Sam3Error, match=match):
        backend.detect(prompts)


def test_the_annotator_keeps_the_detections_of_a_concept_preview(tiny_sam3_folder):
    folder = validate_model_folder(tiny_sam3_folder, "2d", "cpu")
    preview = Annotator().preview(folder, np.zeros((40, 40), np.uint8), "image", Prompts(text="nucleus"), score_threshold=0.05)
    assert preview.detections is not None
    assert np.array_equal(preview.labels, preview.detections.labels(0.05))
    records = Prompts(text="nucleus").as_records("2d_text", frame=3)
    assert records == [{"type": "text", "text": "nucleus", "mode": "2d_text", "frame": 3}]


def test_a_folder_without_the_text_encoder_says_so(tiny_sam3_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    state = {k: v for k, v in load_file(tiny_sam3_folder / "model.safetensors").items() if ".text_encoder." not in k}
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(tiny_sam3_folder / "config.json", tmp_path)
    backend = tb.TransformersImageBackend(tmp_path, "cpu")  # boxes and points need no detector
    backend.set_image(np.zeros((32, 32), np.uint8), "image")
    with pytest.raises(Sam3Error, match="lacks the text encoder") as info:
        backend.detect(Prompts(text="nucleus"))
    assert "\n" not in str(info.value) and "facebook/sam3" in str(info.value)
