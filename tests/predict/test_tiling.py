"""Sliding-window prediction: tiling, Gaussian blending, lazy reads, memory, label conversion."""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from napari_training_assistant.model import build_model
from napari_training_assistant.predict import iter_tiles, predict_image, probabilities_to_labels
from napari_training_assistant.predict.inference_model import fold_batchnorm, prepare_inference_model
from napari_training_assistant.predict.tiling import gaussian_weights, tile_starts


class SharedCalls(list):
    """Input shapes seen by a model; shared with the deep copy `predict_image` runs."""

    def __deepcopy__(self, memo):
        return self


class Pointwise(nn.Module):
    """A 1x1(x1) convolution: each output pixel depends on its own input pixel only."""

    def __init__(self, dims: int = 2, cin: int = 1, cout: int = 1, mode: str = "binary", seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(cin, cout, kernel_size=1)
        self.architecture = {
            "spatial_dims": f"{dims}d",
            "input_channels": cin,
            "output_channels": cout,
            "output_mode": mode,
            "threshold": 0.5,
        }
        self.calls = SharedCalls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        return self.conv(x)


class TileMean(nn.Module):
    """Each tile predicts one value everywhere: the mean of its input (so blending is visible)."""

    architecture = {"spatial_dims": "2d", "input_channels": 1, "output_mode": "binary"}

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x) + self.dummy


class CountingArray:
    """Array-like that records the shape of every read; it refuses to be read whole."""

    def __init__(self, data: np.ndarray):
        self._data = data
        self.shape = data.shape
        self.ndim = data.ndim
        self.dtype = data.dtype
        self.reads: list[tuple[int, ...]] = []

    def __getitem__(self, key):
        part = self._data[key]
        self.reads.append(part.shape)
        return part

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was materialised")


def whole_image(model: nn.Module, image: np.ndarray, softmax: bool = False) -> np.ndarray:
    x = torch.from_numpy(np.asarray(image, dtype=np.float32))
    if x.ndim == model.conv.weight.ndim - 2:
        x = x[None]
    with torch.no_grad():
        logits = model.conv(x[None])[0]
    return (torch.softmax(logits, 0) if softmax else torch.sigmoid(logits)).numpy()


def rng_image(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---- iter_tiles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"),
    [
        ((100, 77), 32, 0.0),
        ((100, 77), 32, 0.25),
        ((100, 77), (32, 20), 0.5),
        ((64, 64), 32, 0.5),
        ((10, 300), 64, 0.5),
        ((17, 23, 29), 8, 0.5),
        ((17, 23, 29), (5, 8, 40), 0.25),
        ((1, 1), 16, 0.9),
    ],
)
def test_iter_tiles_cover_image_exactly(shape, tile, overlap):
    tiles = list(iter_tiles(shape, tile, overlap))
    count = np.zeros(shape, dtype=np.int32)
    tile_shape = tuple(
        min(t, s) for t, s in zip((tile,) * len(shape) if isinstance(tile, int) else tile, shape, strict=True)
    )
    for slices in tiles:
        assert len(slices) == len(shape)
        for sl, size in zip(slices, shape, strict=True):
            assert 0 <= sl.start < sl.stop <= size
        assert tuple(sl.stop - sl.start for sl in slices) == tile_shape  # all tiles the same shape
        count[slices] += 1
    assert count.min() >= 1  # the union is the full image
    assert len({tuple((sl.start, sl.stop) for sl in t) for t in tiles}) == len(tiles)
    # the last tile of each axis ends at the axis end (no padding needed)
    for axis, size in enumerate(shape):
        assert max(s[axis].stop for s in tiles) == size


def test_tile_starts_stride_and_end_alignment():
    assert tile_starts(100, 32, 0.5) == [0, 16, 32, 48, 64, 68]
    assert tile_starts(100, 32, 0.0) == [0, 32, 64, 68]
    assert tile_starts(96, 32, 0.0) == [0, 32, 64]
    assert tile_starts(2048, 256, 0.5) == list(range(0, 2048 - 255, 128))
    assert tile_starts(20, 32, 0.5) == [0]
    assert tile_starts(5, 4, 0.99) == [0, 1]  # stride at least 1


def test_iter_tiles_rejects_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        list(iter_tiles((10, 10), 4, 1.0))
    with pytest.raises(ValueError, match="tile"):
        list(iter_tiles((10, 10), (4, 4, 4), 0.5))
    with pytest.raises(ValueError, match="empty"):
        list(iter_tiles((0, 10), 4, 0.5))


def test_gaussian_weights():
    w = gaussian_weights((64, 48))
    assert w.shape == (64, 48) and w.dtype == np.float32
    assert w.max() == pytest.approx(1.0)
    assert w.min() >= 1e-3  # borders never get zero weight
    np.testing.assert_allclose(w, w[::-1, ::-1])  # centred
    assert w[32, 24] > w[32, 40] > w[32, 47]


# ---- tiled == whole-image for a pointwise model -----------------------------------------------


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
@pytest.mark.parametrize(("shape", "tile"), [((70, 53), 32), ((45, 130), (16, 40))])
def test_pointwise_2d_tiled_equals_whole(overlap, shape, tile):
    model = Pointwise(2)
    image = rng_image(*shape)
    prob = predict_image(model, image, tile_size=tile, overlap=overlap, batch_size=3)
    assert prob.shape == (1, *shape) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, whole_image(model, image), atol=1e-4)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_pointwise_3d_tiled_equals_whole(overlap):
    model = Pointwise(3, cout=2, mode="multilabel")
    image = rng_image(19, 26, 33)
    prob = predict_image(model, image, tile_size=(8, 12, 16), overlap=overlap)
    assert prob.shape == (2, 19, 26, 33) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, whole_image(model, image), atol=1e-4)


def test_multiclass_is_softmax_and_sums_to_one():
    model = Pointwise(2, cout=4, mode="multiclass")
    image = rng_image(50, 41) * 3
    prob = predict_image(model, image, tile_size=16, overlap=0.25)
    assert prob.shape == (4, 50, 41)
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(prob, whole_image(model, image, softmax=True), atol=1e-4)


def test_multichannel_input():
    model = Pointwise(2, cin=3, cout=2, mode="multilabel")
    image = rng_image(3, 40, 37)
    prob = predict_image(model, image, tile_size=16)
    np.testing.assert_allclose(prob, whole_image(model, image), atol=1e-4)
    with pytest.raises(ValueError, match="expects an image shaped"):
        predict_image(model, image[:2])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"overlap": 1.0}, "overlap: must be less than 1"),
        ({"overlap": float("nan")}, "overlap: must be a finite number"),
        ({"tile_size": 0}, "tile_size: must be greater than or equal to 1"),
        ({"tile_size": (16, 16, 16)}, "tile_size has 3 values but the model is 2d: give 1 or 2"),
        ({"batch_size": 0}, "batch_size: must be greater than or equal to 1"),
    ],
)
def test_bad_arguments_are_one_line_value_errors_naming_the_argument(options, message):
    with pytest.raises(ValueError, match=message) as info:
        predict_image(Pointwise(2), rng_image(1, 20, 20)[0], **options)
    assert "\n" not in str(info.value)


def test_single_channel_image_with_channel_axis_and_any_dtype():
    model = Pointwise(2)
    image = np.random.default_rng(1).integers(0, 5, size=(33, 29)).astype(np.uint16)
    expected = whole_image(model, image)
    np.testing.assert_allclose(predict_image(model, image[None], tile_size=16), expected, atol=1e-4)
    np.testing.assert_allclose(predict_image(model, image, tile_size=16), expected, atol=1e-4)


def test_default_tile_and_image_smaller_than_tile():
    model = Pointwise(2)
    image = rng_image(40, 300)
    prob = predict_image(model, image, batch_size=8)
    # default 256 tile clipped to 40 on y; x: starts 0 and 44 -> 2 tiles, one batch
    assert model.calls == [(2, 1, 40, 256)]
    np.testing.assert_allclose(prob, whole_image(model, image), atol=1e-4)


def test_gaussian_blending_matches_reference():
    """A model whose tiles disagree: the result is sum(w * p) / sum(w) over the tiles."""
    image = rng_image(40, 52, seed=3)
    tile, overlap = (16, 20), 0.5
    prob = predict_image(TileMean(), image, tile_size=tile, overlap=overlap, batch_size=2)
    w = gaussian_weights(tile).astype(np.float64)
    num = np.zeros(image.shape)
    den = np.zeros(image.shape)
    for slices in iter_tiles(image.shape, tile, overlap):
        num[slices] += w * image[slices].mean()
        den[slices] += w
    expected = 1 / (1 + np.exp(-num / den))
    np.testing.assert_allclose(prob[0], expected, atol=1e-5)


def test_progress_and_batches():
    model = Pointwise(2)
    seen = []
    predict_image(
        model,
        rng_image(30, 30),
        tile_size=10,
        overlap=0.0,
        batch_size=4,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(4, 9), (8, 9), (9, 9)]
    assert [c[0] for c in model.calls] == [4, 4, 1]


# ---- lazy reads and bounded memory ------------------------------------------------------------


def test_lazy_input_is_read_tile_by_tile():
    model = Pointwise(2, cin=2, cout=1)
    data = rng_image(2, 90, 70)
    lazy = CountingArray(data)
    tile = (32, 24)
    prob = predict_image(model, lazy, tile_size=tile, overlap=0.5)
    n_tiles = len(list(iter_tiles((90, 70), tile, 0.5)))
    assert len(lazy.reads) == n_tiles
    assert max(math.prod(r) for r in lazy.reads) <= 2 * math.prod(tile)
    np.testing.assert_allclose(prob, whole_image(model, data), atol=1e-4)


def test_memmap_input(tmp_path):
    model = Pointwise(3)
    data = rng_image(12, 30, 30)
    mm = np.memmap(tmp_path / "vol.raw", dtype=np.float32, mode="w+", shape=data.shape)
    mm[:] = data
    mm.flush()
    ro = np.memmap(tmp_path / "vol.raw", dtype=np.float32, mode="r", shape=data.shape)
    prob = predict_image(model, ro, tile_size=(8, 16, 16))
    np.testing.assert_allclose(prob, whole_image(model, data), atol=1e-4)


def test_large_image_memory_is_bounded():
    model = Pointwise(2)
    image = np.zeros((2048, 2048), dtype=np.float32)
    image[::7] = 1.0
    output_bytes = image.nbytes  # one output channel
    tracemalloc.start()
    try:
        prob = predict_image(model, image, overlap=0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prob.shape == (1, 2048, 2048)
    assert peak < 4 * output_bytes
    assert len(model.calls) == math.ceil(225 / 4)
    np.testing.assert_allclose(prob[0, :9, 0], whole_image(model, image[:9, :1])[0, :, 0], atol=1e-4)


# ---- real U-Net, model preparation --------------------------------------------------------------


def _tiny_unet(**overrides):
    torch.manual_seed(0)
    model = build_model({"depth": 2, "base_channels": 4, **overrides})
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is really exercised
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def test_unet_single_tile_equals_direct_call_and_model_untouched():
    model = _tiny_unet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    image = rng_image(45, 37)
    prob = predict_image(model, image, tile_size=64)
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(image)[None, None]))[0].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    model.train()
    assert model.training  # predict_image left the caller's mode alone
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("arch", [{}, {"spatial_dims": "3d", "upsampling": "transpose"}])
def test_prepared_model_matches_original(arch):
    model = _tiny_unet(**arch).eval()
    prepared = prepare_inference_model(model, torch.device("cpu"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in prepared.module.modules())
    shape = (2, 1, 20, 24) if not arch else (1, 1, 12, 16, 16)
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), model(x), atol=1e-5, rtol=1e-4)


def test_fold_batchnorm_skips_training_norms():
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert fold_batchnorm(seq) == 0
    assert fold_batchnorm(seq.eval()) == 1
    assert isinstance(seq[1], nn.Identity)


def test_unet_3d_tiled_gives_probabilities():
    model = _tiny_unet(spatial_dims="3d", normalization="none").eval()
    image = rng_image(20, 24, 28)
    prob = predict_image(model, image, tile_size=(12, 16, 16), overlap=0.5)
    assert prob.shape == (1, 20, 24, 28)
    assert np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1


# ---- labels --------------------------------------------------------------------------------------


def test_probabilities_to_labels_each_mode():
    binary = np.array([[[0.2, 0.7], [0.5, 0.9]]], dtype=np.float32)
    out = probabilities_to_labels(binary, {"output_mode": "binary", "threshold": 0.6})
    assert out.dtype == np.uint8 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, [[0, 1], [0, 1]])
    np.testing.assert_array_equal(
        probabilities_to_labels(binary, {"output_mode": "binary"}), [[0, 1], [0, 1]]
    )

    multi = np.stack([np.full((2, 3), 0.2), np.full((2, 3), 0.5), np.full((2, 3), 0.3)]).astype(np.float32)
    multi[0, 1, 2] = 0.9
    labels = probabilities_to_labels(multi, {"output_mode": "multiclass"})
    assert labels.dtype == np.uint8 and labels.shape == (2, 3)
    np.testing.assert_array_equal(labels, [[1, 1, 1], [1, 1, 0]])
    many = np.random.default_rng(0).random((300, 4, 4)).astype(np.float32)
    wide = probabilities_to_labels(many, {"output_mode": "multiclass"})
    assert wide.dtype == np.uint16
    np.testing.assert_array_equal(wide, many.argmax(0))

    ml = np.array([[[0.1, 0.8]], [[0.6, 0.3]]], dtype=np.float32)
    out = probabilities_to_labels(ml, {"output_mode": "multilabel", "threshold": 0.5})
    assert out.dtype == np.uint8 and out.shape == (2, 1, 2)
    np.testing.assert_array_equal(out, [[[0, 1]], [[1, 0]]])


def test_labels_from_predict_image_3d_multiclass():
    model = Pointwise(3, cout=3, mode="multiclass")
    image = rng_image(9, 14, 11)
    prob = predict_image(model, image, tile_size=8)
    labels = probabilities_to_labels(prob, model.architecture)
    assert labels.shape == image.shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, whole_image(model, image, softmax=True).argmax(0))


def test_iter_tiles_is_c_ordered():
    tiles = list(iter_tiles((20, 20), 10, 0.0))
    corners = [(s[0].start, s[1].start) for s in tiles]
    assert corners == list(itertools.product([0, 10], [0, 10]))


def test_double_precision_model():
    model = Pointwise(2).double()
    image = rng_image(30, 21)
    prob = predict_image(model, image, tile_size=16)
    assert prob.dtype == np.float32
    with torch.no_grad():
        expected = torch.sigmoid(model.conv(torch.from_numpy(image).double()[None, None]))[0].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-6)


def test_model_changing_the_tile_size_is_refused():
    class Shrink(Pointwise):
        def forward(self, x):
            return self.conv(x)[..., 1:-1, 1:-1]

    with pytest.raises(ValueError, match="spatial size"):
        predict_image(Shrink(2), rng_image(20, 20), tile_size=8)
