"""The sam3-package image backend (sam3.pt): everything but the CUDA model runs here with the real code: image
normalisation, prompts -> sam3 arguments, BPE discovery, weights_only loading and key mapping, the CPU refusal,
and the adapter's calls into a stand-in for the sam3 0.1.4 API. The real model runs under `gpu` with
NTA_SAM3_FOLDER pointing at a folder with sam3.pt."""

from __future__ import annotations

import gzip
import os
import pathlib
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from napari_training_assistant.annotate import runtime
from napari_training_assistant.annotate.detections import MIN_SCORE
from napari_training_assistant.annotate.errors import Sam3Error
from napari_training_assistant.annotate.image_prep import to_rgb_uint8
from napari_training_assistant.annotate.object_plan import exemplar_cxcywh, plan_objects
from napari_training_assistant.annotate.prompts import Box, Point, Prompts
from napari_training_assistant.annotate.sam3_package_backend import (
    BPE_MERGES_NEEDED,
    BPE_NAME,
    Sam3PackageImageBackend,
    find_bpe_path,
    gzip_merges,
    inst_prompt_arrays,
    load_checkpoint_state,
    load_weights,
    sam3_image_state_dict,
)


# --------------------------------------------------------------------------- images
def test_uint8_planes_are_kept_and_grey_becomes_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = to_rgb_uint8(grey)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert all(np.array_equal(rgb[..., c], grey) for c in range(3))
    rgba = np.dstack([grey, grey + 1, grey + 2, np.full_like(grey, 7)])
    assert np.array_equal(to_rgb_uint8(rgba), rgba[..., :3])
    assert np.array_equal(to_rgb_uint8(grey[..., None]), rgb)


def test_other_dtypes_are_stretched_between_the_half_and_99_5_percentiles():
    data = np.linspace(0, 1000, 201 * 201, dtype=np.float64).reshape(201, 201).astype(np.uint16)
    lo, hi = np.percentile(data, (0.5, 99.5))
    out = to_rgb_uint8(data)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    middle = data[100, 100]
    assert out[100, 100, 0] == np.uint8(round((middle - lo) * 255 / (hi - lo)))
    floats = np.array([[np.nan, 0.0], [0.5, 1.0]], dtype=np.float32)
    assert np.array_equal(to_rgb_uint8(floats, limits=(0.0, 1.0))[..., 0], [[0, 0], [128, 255]])
    assert not to_rgb_uint8(np.full((4, 4), 9.0)).any()  # a constant image is black, not a division by zero


def test_a_plane_that_is_not_2d_is_refused():
    with pytest.raises(Sam3Error, match="2D grey or RGB"):
        to_rgb_uint8(np.zeros((2, 3, 4, 5)))


# --------------------------------------------------------------------------- prompts -> sam3 arguments
def test_exemplars_become_normalised_centre_width_height():
    assert exemplar_cxcywh(Box(10, 20, 50, 40), width=100, height=80) == pytest.approx([0.3, 0.375, 0.4, 0.25])
    assert exemplar_cxcywh(Box(50, 40, 10, 20), width=100, height=80) == pytest.approx([0.3, 0.375, 0.4, 0.25])


def test_box_and_point_arguments_are_pixel_arrays():
    args = inst_prompt_arrays(Box(30, 5, 10, 25), (Point(12.5, 7, True), Point(20, 21, False)))
    assert args["box"].dtype == np.float32 and args["box"].tolist() == [10, 5, 30, 25]
    assert args["point_coords"].dtype == np.float32 and args["point_coords"].tolist() == [[12.5, 7], [20, 21]]
    assert args["point_labels"].dtype == np.int32 and args["point_labels"].tolist() == [1, 0]
    assert inst_prompt_arrays(None, (Point(1, 2),))["box"] is None
    assert inst_prompt_arrays(Box(0, 0, 4, 4), ())["point_coords"] is None


def test_points_refine_the_first_box_that_holds_them_and_loose_points_make_one_object():
    a, b = Box(0, 0, 10, 10), Box(5, 5, 20, 20)
    inside_both, inside_b, loose = Point(6, 6), Point(15, 15, False), Point(40, 40)
    objects = plan_objects(Prompts(boxes=(a, Box(0, 0, 3, 3, positive=False), b), points=(inside_both, inside_b, loose)))
    assert objects == [(a, (inside_both,)), (b, (inside_b,)), (None, (loose,))]
    assert plan_objects(Prompts(points=(Point(1, 1), Point(2, 2, False)))) == [(None, (Point(1, 1), Point(2, 2, False)))]
    with pytest.raises(Sam3Error, match="only negative points"):
        plan_objects(Prompts(points=(Point(1, 1, False),)))
    assert plan_objects(Prompts(points=(Point(1, 1, False),)), negative_only=True) == [(None, (Point(1, 1, False),))]


# --------------------------------------------------------------------------- BPE vocabulary
def _merges(count: int = BPE_MERGES_NEEDED) -> list[str]:
    return [f"t{i} e{i}" for i in range(count)]


def _tokenizer_merges(path: Path) -> list[str]:
    """What sam3's SimpleTokenizer reads: the gzip's lines 1 .. 48894."""
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    return lines[1 : 49152 - 256 - 2 + 1]


@pytest.fixture
def no_installed_bpe(monkeypatch, tmp_path):
    """Neither open_clip nor sam3 importable, and the merges cache in tmp_path."""
    monkeypatch.setitem(sys.modules, "open_clip", None)
    monkeypatch.setitem(sys.modules, "sam3", None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def test_the_folder_bpe_file_comes_first(tmp_path, no_installed_bpe):
    (tmp_path / BPE_NAME).write_bytes(gzip.compress(b"header\n"))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    assert find_bpe_path(tmp_path) == tmp_path / BPE_NAME


def test_a_hugging_face_merges_file_is_gzipped_as_the_tokenizer_reads_it(tmp_path, no_installed_bpe):
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_merges()) + "\n")
    path = find_bpe_path(tmp_path)
    assert path.parent == tmp_path / "tmp" / "napari-training-assistant" and path.name.endswith(".txt.gz")
    assert _tokenizer_merges(path) == _merges()
    assert find_bpe_path(tmp_path) == path  # cached, written once
    headless = tmp_path / "headless.txt"
    headless.write_text("\n".join(_merges()))
    assert _tokenizer_merges(gzip_merges(headless, tmp_path / "cache")) == _merges()


def test_a_short_merges_file_is_refused(tmp_path, no_installed_bpe):
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_merges(100)))
    with pytest.raises(Sam3Error, match=f"holds 100 BPE merges.*needs {BPE_MERGES_NEEDED}"):
        find_bpe_path(tmp_path)


def test_an_installed_open_clip_supplies_the_vocabulary(tmp_path, monkeypatch, no_installed_bpe):
    site = tmp_path / "site"
    (site / "open_clip").mkdir(parents=True)
    (site / "open_clip" / "__init__.py").write_text("raise ImportError('never imported')\n")
    (site / "open_clip" / BPE_NAME).write_bytes(gzip.compress(b"header\n"))
    monkeypatch.delitem(sys.modules, "open_clip")
    monkeypatch.syspath_prepend(str(site))
    model = tmp_path / "model"
    model.mkdir()
    assert find_bpe_path(model) == (site / "open_clip" / BPE_NAME).resolve()


def test_without_any_vocabulary_the_error_says_what_to_install(tmp_path, no_installed_bpe):
    with pytest.raises(Sam3Error) as info:
        find_bpe_path(tmp_path)
    assert "open_clip_torch" in str(info.value) and BPE_NAME in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- weights
class TinySam3(nn.Module):
    """The layout `Sam3Image` has where the checkpoint mapping matters: detector modules at the top,
    the tracker under inst_interactive_predictor.model."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 2)
        self.inst_interactive_predictor = nn.Module()
        self.inst_interactive_predictor.model = nn.Linear(2, 1)


def _sam3_checkpoint(path: Path, source: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"detector.backbone.{k}": v for k, v in source.backbone.state_dict().items()}
    state |= {f"tracker.{k}": v for k, v in source.inst_interactive_predictor.model.state_dict().items()}
    torch.save({"model": state, "optimizer": {"step": 3}}, path)
    return state


def test_the_checkpoint_mapping_is_the_sam3_builders():
    checkpoint = {"detector.backbone.w": 1, "detector.transformer.b": 2, "tracker.sam_mask_decoder.w": 3, "other": 4}
    assert sam3_image_state_dict(checkpoint) == {
        "backbone.w": 1, "transformer.b": 2, "inst_interactive_predictor.model.sam_mask_decoder.w": 3,
    }
    assert sam3_image_state_dict(checkpoint, with_tracker=False) == {"backbone.w": 1, "transformer.b": 2}


def test_weights_load_with_weights_only_into_the_mapped_model(tmp_path):
    torch.manual_seed(0)
    source, target = TinySam3(), TinySam3()
    _sam3_checkpoint(tmp_path / "sam3.pt", source)
    state = load_checkpoint_state(tmp_path / "sam3.pt")
    load_weights(target, sam3_image_state_dict(state), tmp_path / "sam3.pt")
    for mine, theirs in zip(target.parameters(), source.parameters(), strict=True):
        assert torch.equal(mine, theirs)


class _Payload:
    """Pickles as a call that creates a marker file when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"model": {"detector.backbone.weight": torch.zeros(2, 3)}, "extra": _Payload(marker)}, tmp_path / "sam3.pt")
    with pytest.raises(Sam3Error) as info:
        load_checkpoint_state(tmp_path / "sam3.pt")
    message = str(info.value)
    assert "refused" in message and "weights_only: Unsupported global" in message and "\n" not in message
    assert not marker.exists()


def test_unreadable_foreign_and_mismatched_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": {"detector.w": torch.zeros(3)}}, good)
    for name, content in (("text.pt", b"not a checkpoint"), ("cut.pt", good.read_bytes()[:200]), ("noise.pt", bytes(range(256)))):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(Sam3Error, match="cannot be read as PyTorch weights") as info:
            load_checkpoint_state(tmp_path / name)
        assert "\n" not in str(info.value)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(Sam3Error, match="holds no state dict"):
        load_checkpoint_state(tmp_path / "tensor.pt")
    torch.save({"model": {"something.else": torch.zeros(1)}}, tmp_path / "other.pt")
    state = sam3_image_state_dict(load_checkpoint_state(tmp_path / "other.pt"))
    with pytest.raises(Sam3Error, match="does not look like a SAM3 image checkpoint: 4 of 4"):
        load_weights(TinySam3(), state, tmp_path / "other.pt")


# --------------------------------------------------------------------------- device
def test_cpu_is_refused_with_what_runs_there(tmp_path):
    with pytest.raises(Sam3Error) as info:
        Sam3PackageImageBackend(tmp_path, "cpu")
    message = str(info.value)
    assert "CUDA" in message and "model.safetensors" in message and "\n" not in message


def test_cuda_without_a_gpu_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    with pytest.raises(Sam3Error, match="none is available"):
        Sam3PackageImageBackend(tmp_path, "cuda")


# --------------------------------------------------------------------------- the adapter against a stand-in sam3 API
class FakeImageModel(TinySam3):
    """Answers `predict_inst` as sam3 0.1.4 does: (C, H, W) logits, (C,) IoU scores, low-res logits; a box
    gives its rectangle, clicks a 5-pixel square around the mean positive click."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []
        self.moved_to = None
        self.texts_encoded: list[str] = []
        self.backbone.forward_text = lambda captions, device=None: self.texts_encoded.extend(captions) or {"text": captions}

    def to(self, device):  # no GPU here
        self.moved_to = device
        return self

    def predict_inst(self, state, **kwargs):
        self.calls.append(kwargs)
        height, width = state["original_height"], state["original_width"]
        yy, xx = np.mgrid[:height, :width]
        if kwargs["box"] is not None:
            x0, y0, x1, y1 = kwargs["box"]
            inside = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
        else:
            coords = kwargs["point_coords"][kwargs["point_labels"] == 1]
            cx, cy = coords.mean(axis=0)
            inside = (abs(xx - cx) <= 2) & (abs(yy - cy) <= 2)
        logits = np.where(inside, 8.0, -8.0).astype(np.float32)[None]
        if kwargs["multimask_output"]:  # three candidates; the second scores best
            return np.stack([-logits[0], logits[0], -logits[0]]), np.array([0.2, 0.9, 0.5]), None
        return logits, np.array([0.8]), None


class FakeProcessor:
    """Sam3Processor's surface: set_image -> state, add_geometric_prompt(cxcywh, label, state), thresholds."""

    instances: list[FakeProcessor] = []

    def __init__(self, model, resolution=1008, device="cuda", confidence_threshold=0.5):
        self.model, self.device, self.confidence_threshold = model, device, confidence_threshold
        self.images: list = []
        self.prompts: list = []
        self.resets = 0
        FakeProcessor.instances.append(self)

    def set_image(self, image, state=None):
        self.images.append(image)
        return {"original_height": image.height, "original_width": image.width, "backbone_out": {}}

    def set_confidence_threshold(self, threshold, state=None):
        self.confidence_threshold = threshold

    def reset_all_prompts(self, state):
        self.resets += 1
        for key in ("geometric_prompt", "masks", "masks_logits", "scores", "boxes"):
            state.pop(key, None)

    def set_text_prompt(self, prompt, state):
        self.model.backbone.forward_text([prompt], device=self.device)
        self.prompts.append(prompt)
        return self._found(state)

    def add_geometric_prompt(self, box, label, state):
        self.prompts.append((list(box), label))
        return self._found(state)

    @staticmethod
    def _found(state):
        height, width = state["original_height"], state["original_width"]
        probabilities = torch.zeros(3, 1, height, width)
        probabilities[0, 0, :4, :4] = 0.9  # three instances; scores out of order
        probabilities[1, 0, 10:14, 10:14] = 0.9
        probabilities[2, 0, 10:20, 0:4] = 0.6
        state["masks_logits"], state["scores"] = probabilities, torch.tensor([0.6, 0.95, 0.8])
        return state


@pytest.fixture
def fake_sam3(monkeypatch, tmp_path):
    """A model folder (sam3.pt + BPE file) and a stand-in sam3 0.1.4 API; returns (folder, builder calls)."""
    calls: list[dict] = []
    FakeProcessor.instances.clear()

    def build_sam3_image_model(**kwargs):
        calls.append(kwargs)
        # as sam3 does: its tracker enters a bfloat16 autocast for good, and it switches TF32 on
        torch.set_autocast_enabled("cuda", True)
        torch.set_autocast_dtype("cuda", torch.bfloat16)
        torch.backends.cuda.matmul.allow_tf32 = True
        return FakeImageModel()

    package = types.ModuleType("sam3")
    package.__path__ = []
    builder = types.ModuleType("sam3.model_builder")
    builder.build_sam3_image_model = build_sam3_image_model
    model_pkg = types.ModuleType("sam3.model")
    model_pkg.__path__ = []
    processor = types.ModuleType("sam3.model.sam3_image_processor")
    processor.Sam3Processor = FakeProcessor
    for module in (package, builder, model_pkg, processor):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    folder = tmp_path / "sam3-model"
    folder.mkdir()
    (folder / BPE_NAME).write_bytes(gzip.compress(b"header\n"))
    torch.manual_seed(1)
    _sam3_checkpoint(folder / "sam3.pt", TinySam3())
    return folder, calls


def test_the_backend_builds_without_fetching_and_loads_the_folders_weights(fake_sam3):
    folder, calls = fake_sam3
    before = (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"), torch.backends.cuda.matmul.allow_tf32)
    backend = Sam3PackageImageBackend(folder, "cuda")
    after = (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"), torch.backends.cuda.matmul.allow_tf32)
    assert after == before  # sam3's process-wide settings are undone
    assert calls == [{
        "bpe_path": str(folder / BPE_NAME), "device": "cuda", "checkpoint_path": None, "load_from_HF": False,
        "enable_inst_interactivity": True, "eval_mode": True,
    }]
    state = load_checkpoint_state(folder / "sam3.pt")
    assert torch.equal(backend._model.backbone.weight, state["detector.backbone.weight"])
    assert torch.equal(backend._model.inst_interactive_predictor.model.weight, state["tracker.weight"])
    assert backend._model.moved_to == torch.device("cuda") and not backend._model.training
    assert backend.device == "cuda" and backend.name == "sam3 package"


def test_embeddings_are_cached_per_key_in_a_small_lru(fake_sam3):
    backend = Sam3PackageImageBackend(fake_sam3[0], "cuda")
    processor = FakeProcessor.instances[-1]
    image = np.random.default_rng(0).integers(0, 4000, (24, 32)).astype(np.uint16)
    assert backend.set_image(image, "a") is True
    assert backend.set_image(image, "a") is False
    embedded = processor.images[0]
    assert (embedded.mode, embedded.size) == ("RGB", (32, 24))
    assert np.array_equal(np.asarray(embedded), to_rgb_uint8(image))
    for key in ("b", "c", "d"):
        assert backend.set_image(image, key) is True
    assert backend.set_image(image, "c") is False
    assert backend.set_image(image, "a") is True  # evicted
    assert len(processor.images) == 5


def test_boxes_give_one_object_each_in_box_order(fake_sam3):
    backend = Sam3PackageImageBackend(fake_sam3[0], "cuda")
    backend.set_image(np.zeros((30, 40), np.uint8), "img")
    labels = backend.segment(Prompts(boxes=(Box(2, 2, 10, 8), Box(20, 10, 30, 25)), points=(Point(5, 5, False),)))
    assert labels.dtype == np.uint16 and labels.shape == (30, 40)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (labels[2:9, 2:11] == 1).all() and (labels[10:26, 20:31] == 2).all()
    first, second = backend._model.calls
    assert first["box"].tolist() == [2, 2, 10, 8] and first["point_coords"].tolist() == [[5, 5]]
    assert first["point_labels"].tolist() == [0] and second["point_coords"] is None
    assert first["multimask_output"] is False and first["return_logits"] is True


def test_one_click_takes_the_best_of_three_masks_and_the_threshold_applies(fake_sam3):
    backend = Sam3PackageImageBackend(fake_sam3[0], "cuda")
    backend.set_image(np.zeros((30, 40), np.uint8), "img")
    labels = backend.segment(Prompts(points=(Point(20, 15),)), threshold=0.5)
    assert backend._model.calls[-1]["multimask_output"] is True
    assert np.array_equal(np.argwhere(labels == 1).min(axis=0), [13, 18]) and (labels > 0).sum() == 25
    assert not backend.segment(Prompts(points=(Point(20, 15),)), threshold=0.9999999).any()  # sigmoid(8) < it
    with pytest.raises(Sam3Error, match="between 0 and 1"):
        backend.segment(Prompts(points=(Point(20, 15),)), threshold=1.5)


def test_exemplars_find_instances_labelled_by_score(fake_sam3):
    backend = Sam3PackageImageBackend(fake_sam3[0], "cuda")
    processor = FakeProcessor.instances[-1]
    backend.set_image(np.zeros((20, 40), np.uint8), "img")
    labels = backend.segment(Prompts(exemplars=(Box(10, 10, 14, 14), Box(0, 0, 4, 4, positive=False))), threshold=0.55)
    assert processor.prompts == [([0.3, 0.6, 0.1, 0.2], True), ([0.05, 0.1, 0.1, 0.2], False)]
    assert processor.confidence_threshold == MIN_SCORE and processor.resets == 2  # scores are cut afterwards
    assert (labels[10:14, 10:14] == 1).all() and (labels[10:20, 0:4] == 2).all() and (labels[:4, :4] == 3).all()
    assert backend.segment(Prompts(exemplars=(Box(10, 10, 14, 14),)), threshold=0.7).max() == 1  # 0.6 scores under it
    with pytest.raises(Sam3Error, match="all negative"):
        backend.segment(Prompts(exemplars=(Box(0, 0, 4, 4, positive=False),)))


def test_a_text_prompt_finds_scored_instances_and_encodes_each_text_once(fake_sam3):
    backend = Sam3PackageImageBackend(fake_sam3[0], "cuda")
    processor = FakeProcessor.instances[-1]
    backend.set_image(np.zeros((20, 40), np.uint8), "img")
    found = backend.detect(Prompts(text=" nucleus ", exemplars=(Box(10, 10, 14, 14),)), threshold=0.5)
    assert processor.prompts == ["nucleus", ([0.3, 0.6, 0.1, 0.2], True)]
    assert [round(item.score, 2) for item in found.instances] == [0.95, 0.8, 0.6]
    assert found.labels(0.7).max() == 2 and found.labels(0.9).max() == 1  # re-thresholded without the model
    backend.detect(Prompts(text="nucleus"))
    backend.detect(Prompts(text="mitochondrion"))
    assert backend._model.texts_encoded == ["nucleus", "mitochondrion"] and backend.text_encodings == 2
    with pytest.raises(Sam3Error, match="text prompt is empty"):
        backend.detect(Prompts(text="  "))


def test_segment_needs_an_image_and_a_prompt(fake_sam3):
    backend = Sam3PackageImageBackend(fake_sam3[0], "cuda")
    with pytest.raises(Sam3Error, match="no image is embedded"):
        backend.segment(Prompts(points=(Point(1, 1),)))
    backend.set_image(np.zeros((8, 8), np.uint8), 0)
    with pytest.raises(Sam3Error, match="no prompt"):
        backend.segment(Prompts())


def test_a_missing_sam3_package_says_how_to_install_it(fake_sam3, monkeypatch):
    monkeypatch.setitem(sys.modules, "sam3.model_builder", None)
    with pytest.raises(Sam3Error, match="facebookresearch/sam3"):
        Sam3PackageImageBackend(fake_sam3[0], "cuda")


# --------------------------------------------------------------------------- the real model (CUDA + weights)
def _sam3_folder() -> Path:
    folder = Path(os.environ.get("NTA_SAM3_FOLDER", ""))
    if not os.environ.get("NTA_SAM3_FOLDER") or not (folder / "sam3.pt").is_file():
        pytest.skip("set NTA_SAM3_FOLDER to a folder with sam3.pt")
    return folder


@pytest.fixture(scope="module")
def real_backend():
    return Sam3PackageImageBackend(_sam3_folder(), "cuda")


@pytest.fixture(scope="module")
def nuclei():
    from napari_training_assistant.data.synthetic_nuclei import make_nuclei

    image, labels = make_nuclei((256, 256), n_nuclei=6, radius_range=(12.0, 18.0), seed=3)
    return image, labels


def _bbox(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    return Box(float(xs.min()) - 3, float(ys.min()) - 3, float(xs.max()) + 3, float(ys.max()) + 3)


@pytest.mark.gpu
def test_real_box_prompt_segments_the_boxed_nucleus(real_backend, nuclei):
    image, truth = nuclei
    assert real_backend.set_image(image, "nuclei") is True
    assert real_backend.set_image(image, "nuclei") is False
    labels = real_backend.segment(Prompts(boxes=(_bbox(truth == 1),)))
    overlap = np.logical_and(labels == 1, truth == 1).sum() / np.logical_or(labels == 1, truth == 1).sum()
    assert overlap > 0.5


@pytest.mark.gpu
def test_real_point_prompt_gives_one_object(real_backend, nuclei):
    image, truth = nuclei
    real_backend.set_image(image, "nuclei")
    y, x = np.argwhere(truth == 2).mean(axis=0)
    labels = real_backend.segment(Prompts(points=(Point(float(x), float(y)),)))
    assert set(np.unique(labels)) <= {0, 1} and labels[int(y), int(x)] == 1


@pytest.mark.gpu
def test_real_exemplar_finds_similar_nuclei(real_backend, nuclei):
    image, truth = nuclei
    real_backend.set_image(image, "nuclei")
    labels = real_backend.segment(Prompts(exemplars=(_bbox(truth == 1),)), threshold=0.3)
    assert labels.max() >= 2
