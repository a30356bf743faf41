"""Point-windowed sampling: the indexer, the region cache and the window datasets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_training_assistant.data.annotations import Region, Synapse
from napari_training_assistant.data.geometry import Box, centred_window
from napari_training_assistant.data.point_windows import (
    CachedPointIndexer,
    LayerSet,
    PointWindowDataset,
    cache_regions,
)
from napari_training_assistant.data.point_windows.region_cache import estimate_cache_bytes
from napari_training_assistant.data.point_windows.window_dataset import RegionWindows
from napari_training_assistant.data.synthetic_em import make_em_volume
from napari_training_assistant.data.volumes import VolumeSource, open_volume
from napari_training_assistant.project.errors import DatasetError

SHAPE = (16, 64, 64)
WINDOW = (8, 24, 24)


class CountingVolume(VolumeSource):
    """Wraps a volume and records every `read` box."""

    def __init__(self, data: np.ndarray):
        self.inner = open_volume(data)
        super().__init__(path="counting", shape=self.inner.shape, dtype=self.inner.dtype, axis_order="zyx")
        self.reads: list[Box] = []

    def read(self, box: Box) -> np.ndarray:
        self.reads.append(box)
        return super().read(box)

    def _read_local(self, box: Box) -> np.ndarray:
        return self.inner._read_local(box)


def region(start, stop, tag="train", name="r") -> Region:
    return Region(Box(tuple(start), tuple(stop)), frozenset([tag]), name)


def ramp_volume(shape=SHAPE, dtype=np.uint8) -> np.ndarray:
    """Every voxel distinct-ish and non-zero, so windows can be located by their content."""
    z, y, x = np.indices(shape)
    return ((z * 7 + y * 3 + x) % 250 + 1).astype(dtype)


def layers_for(image, label0=None, label1=None, masks=None) -> LayerSet:
    label0 = np.zeros(image.shape, np.uint8) if label0 is None else label0
    label1 = np.zeros(image.shape, np.uint8) if label1 is None else label1
    return LayerSet(
        open_volume(image),
        {"label0": open_volume(label0), "label1": open_volume(label1)},
        {k: open_volume(v) for k, v in (masks or {}).items()},
    )


# ----------------------------------------------------------------------------------- indexer
@pytest.mark.parametrize(
    ("point", "window", "start"),
    [
        ((10.0,), (4,), (8,)),  # 10 - 2 = 8
        ((10.0,), (5,), (8,)),  # round(7.5) = 8 (half to even)
        ((11.0,), (5,), (8,)),  # round(8.5) = 8 (half to even)
        ((12.0,), (5,), (10,)),  # round(9.5) = 10
        ((10.5,), (4,), (8,)),  # round(8.5) = 8
        ((11.5,), (4,), (10,)),  # round(9.5) = 10
        ((10.5,), (3,), (9,)),  # round(9.0) = 9
        ((10.4,), (3,), (9,)),  # round(8.9) = 9
        ((10.6,), (3,), (9,)),  # round(9.1) = 9
        ((0.0,), (1,), (0,)),  # round(-0.5) = -0 -> 0
        ((1.0,), (1,), (0,)),  # round(0.5) = 0
        ((3.0, 20.5, 31.7), (8, 24, 24), (-1, 8, 20)),  # round(-1), round(8.5)=8, round(19.7)=20
        ((4.5, 20.0, 20.0), (7, 5, 6), (1, 18, 17)),  # round(1.0), round(17.5)=18, round(17)
    ],
)
def test_indexer_window_start_is_round_of_point_minus_half_window(point, window, start):
    region_box = Box((0,) * len(point), (64,) * len(point))
    indexer = CachedPointIndexer.build([point], window, region_box)
    box = indexer(0)
    assert box.start == start
    assert box.shape == window
    assert box == centred_window(point, window)
    assert box.contains([int(round(p)) for p in point]) or any(w == 1 for w in window)


def test_indexer_len_negative_index_and_index_error():
    region_box = Box((0, 0, 0), (16, 64, 64))
    points = [(1.0, 2.0, 3.0), (5.0, 30.0, 40.0), (15.9, 63.9, 0.0)]
    indexer = CachedPointIndexer.build(points, (8, 24, 24), region_box)
    assert len(indexer) == 3
    assert indexer(-1) == indexer(2) == Box((12, 52, -12), (20, 76, 12))
    assert indexer(1) == Box((1, 18, 28), (9, 42, 52))
    for bad in (3, -4, 100):
        with pytest.raises(IndexError, match="out of range"):
            indexer(bad)
    assert len(CachedPointIndexer.build([], (8, 24, 24), region_box)) == 0


@pytest.mark.parametrize("point", [(16.0, 5.0, 5.0), (-0.1, 5.0, 5.0), (5.0, 5.0, 64.0), (5.0, -3.0, 5.0)])
def test_indexer_refuses_points_outside_the_region(point):
    with pytest.raises(ValueError, match="outside the region"):
        CachedPointIndexer.build([(1.0, 1.0, 1.0), point], (8, 24, 24), Box((0, 0, 0), (16, 64, 64)))


def test_indexer_refuses_bad_windows():
    box = Box((0, 0, 0), (16, 64, 64))
    with pytest.raises(ValueError, match="positive"):
        CachedPointIndexer.build([(1.0, 1.0, 1.0)], (8, 0, 24), box)
    with pytest.raises(ValueError, match="positive"):
        CachedPointIndexer.build([(1.0, 1.0, 1.0)], (8, 24), box)


# ------------------------------------------------------------------------------- region cache
@st.composite
def _cache_case(draw):
    start = [draw(st.integers(-5, 20)) for _ in range(3)]
    size = [draw(st.integers(1, 10)) for _ in range(3)]
    window = tuple(draw(st.integers(1, 11)) for _ in range(3))
    fractions = draw(
        st.lists(
            st.tuples(*[st.floats(0.0, 1.0, exclude_max=True) for _ in range(3)]) | st.just((0.99999999,) * 3),
            min_size=1,
            max_size=8,
        )
    )
    points = [tuple(a + f * n for a, f, n in zip(start, frac, size, strict=True)) for frac in fractions]
    points = [tuple(min(p, a + n - 1e-9) for p, a, n in zip(pt, start, size, strict=True)) for pt in points]
    return Box(tuple(start), tuple(a + n for a, n in zip(start, size, strict=True))), window, points


@settings(max_examples=60, deadline=None)
@given(_cache_case())
def test_every_window_lies_inside_the_cached_box(case):
    box, window, points = case
    image = ramp_volume((24, 24, 24))
    layers = layers_for(image)
    synapses = [Synapse(i, p) for i, p in enumerate(points)]
    cached, report = cache_regions(layers, [Region(box, frozenset(["train"]), "r")], synapses, window)
    (c,) = cached
    assert report.points == len(c.indexer) == len(points)
    assert c.box == box.inflate(c.indexer.cache_margin)
    for i in range(len(c.indexer)):
        w = c.indexer(i)
        assert all(a >= s for a, s in zip(w.start, c.box.start, strict=True)), (w, c.box)
        assert all(b <= s for b, s in zip(w.stop, c.box.stop, strict=True)), (w, c.box)
        assert c.arrays["img"][w.slices(c.box.start)].shape == window
        np.testing.assert_array_equal(c.arrays["img"][w.slices(c.box.start)], layers.image.read(w))


def test_each_layer_is_read_once_per_region_and_the_estimate_is_exact():
    image = ramp_volume()
    counters = {name: CountingVolume(data) for name, data in (
        ("img", image),
        ("label0", (image > 100).astype(np.uint8)),
        ("label1", (image % 3 == 0).astype(np.uint16)),
        ("mask", np.ones(SHAPE, np.uint8)),
    )}  # fmt: skip
    layers = LayerSet(counters["img"], {"label0": counters["label0"], "label1": counters["label1"]}, {"label0": counters["mask"]})
    regions = [region((0, 0, 0), (16, 32, 32), name="a"), region((0, 32, 32), (16, 64, 64), name="b")]
    rng = np.random.default_rng(0)
    synapses = [Synapse(i, tuple(rng.uniform((0, 0, 0), (16, 64, 64)))) for i in range(40)]
    cached, report = cache_regions(layers, regions, synapses, WINDOW)
    for name, volume in counters.items():
        assert volume.reads == [c.box for c in cached], name  # one read per region, the inflated box
    assert report.estimated_bytes == sum(c.nbytes for c in cached) == estimate_cache_bytes(layers, regions, WINDOW)
    per_voxel = 1 + 1 + 2 + 1
    assert report.estimated_bytes == per_voxel * sum(c.box.size for c in cached)
    assert set(cached[0].arrays) == {"img", "label0", "label1", "label0_mask"}
    assert cached[0].arrays["label1"].dtype == np.uint16
    np.testing.assert_array_equal(cached[1].arrays["img"], counters["img"].inner.read(cached[1].box))
    # iterating the windows reads nothing more
    for c in cached:
        list(RegionWindows(c))
    assert all(len(v.reads) == 2 for v in counters.values())


def test_budget_is_checked_before_any_read():
    image = ramp_volume()
    volume = CountingVolume(image)
    layers = LayerSet(volume, {"label0": CountingVolume(image), "label1": CountingVolume(image)})
    regions = [region((0, 0, 0), (16, 64, 64))]
    need = estimate_cache_bytes(layers, regions, WINDOW)
    with pytest.raises(DatasetError, match="budget"):
        cache_regions(layers, regions, [Synapse(0, (5.0, 5.0, 5.0))], WINDOW, budget_bytes=need - 1)
    assert volume.reads == []
    cached, _ = cache_regions(layers, regions, [Synapse(0, (5.0, 5.0, 5.0))], WINDOW, budget_bytes=need)
    assert len(volume.reads) == 1 and cached[0].nbytes == need


def test_dropped_counts():
    layers = layers_for(ramp_volume())
    regions = [region((0, 0, 0), (16, 32, 32), name="a"), region((0, 32, 0), (16, 64, 32), name="b")]
    synapses = [
        Synapse(0, (1.0, 1.0, 1.0), (2.0, 3.0, 3.0)),  # line in a
        Synapse(1, (5.0, 40.0, 5.0), (5.0, 44.0, 5.0)),  # line in b
        Synapse(2, (5.0, 5.0, 5.0)),  # point in a
        Synapse(3, (5.0, 40.0, 40.0)),  # point outside every region
        Synapse(4, (5.0, 10.0, 40.0), (5.0, 12.0, 44.0)),  # line outside every region
        Synapse(5, (5.0, 20.0, 20.0), (5.0, 50.0, 20.0)),  # line from a to b: midpoint (5, 35, 20) in b
    ]
    cached, report = cache_regions(layers, regions, synapses, WINDOW)
    assert [[s.id for s in c.synapses] for c in cached] == [[0, 2], [1, 5]]
    assert report.points == 4 and report.regions == 2
    assert report.dropped == {"outside every selected region": 2}
    assert [d["points"] for d in report.per_region] == [2, 2]
    assert cached[1].indexer.points[1] == (5.0, 35.0, 20.0)

    cached, report = cache_regions(layers, regions, synapses, WINDOW, need_lines=True)
    assert [[s.id for s in c.synapses] for c in cached] == [[0], [1, 5]]
    assert report.dropped == {"outside every selected region": 2, "point annotations (line targets need lines)": 1}

    cached, report = cache_regions(layers, regions, synapses, WINDOW, line_point="start")
    assert [[s.id for s in c.synapses] for c in cached] == [[0, 2, 5], [1]]
    assert report.dropped == {"outside every selected region": 2}
    assert "2 outside every selected region" in report.text()


def test_each_dropped_annotation_is_counted_once():
    layers = layers_for(ramp_volume())
    regions = [region((0, 0, 0), (16, 32, 32), name="a"), region((0, 32, 0), (16, 64, 32), name="b")]
    synapses = [Synapse(0, (1.0, 1.0, 1.0)), Synapse(1, (math.nan, 1.0, 1.0)), Synapse(2, (1.0, 1.0))]
    _, report = cache_regions(layers, regions, synapses, WINDOW)
    assert report.points == 1
    assert sum(report.dropped.values()) == 2, report.dropped
    assert report.dropped == {"non-finite coordinate": 1, "wrong number of axes": 1}


def test_dry_cache_counts_points_and_reads_nothing():
    volume = CountingVolume(ramp_volume())
    layers = LayerSet(volume, {"label0": CountingVolume(ramp_volume()), "label1": CountingVolume(ramp_volume())})
    regions = [region((0, 0, 0), (16, 32, 32)), region((0, 32, 32), (16, 64, 64))]
    synapses = [Synapse(0, (1.0, 1.0, 1.0)), Synapse(1, (1.0, 40.0, 40.0)), Synapse(2, (1.0, 40.0, 1.0))]
    cached, report = cache_regions(layers, regions, synapses, WINDOW, read=False)
    assert volume.reads == []
    assert all(c.arrays == {} and c.nbytes == 0 for c in cached)
    assert [len(c.indexer) for c in cached] == [1, 1] and report.points == 2
    assert report.dropped == {"outside every selected region": 1}
    assert report.estimated_bytes == estimate_cache_bytes(layers, regions, WINDOW)


# ------------------------------------------------------------------------------ window datasets
def _single(image, point, *, label0=None, label1=None, masks=None, window=WINDOW, synapse=None, **options):
    layers = layers_for(image, label0, label1, masks)
    synapse = synapse or Synapse(0, point)
    (cached,), _ = cache_regions(layers, [region((0, 0, 0), image.shape)], [synapse], window)
    return RegionWindows(cached, **options), layers


def test_image_is_normalised_and_labels_are_the_label_volumes():
    image = ramp_volume()
    label0 = (image > 128).astype(np.uint8)
    label1 = (image % 5 == 0).astype(np.uint8) * 7
    dataset, layers = _single(image, (8.0, 30.0, 20.5), label0=label0, label1=label1)
    assert len(dataset) == 1 and dataset.channels == 2
    item = dataset[0]
    box = centred_window((8.0, 30.0, 20.5), WINDOW)
    assert box == Box((4, 18, 8), (12, 42, 32))
    assert item["image"].shape == (1, *WINDOW) and item["image"].dtype.is_floating_point
    np.testing.assert_allclose(item["image"][0].numpy(), image[box.slices()] / 255.0, rtol=1e-6)
    assert item["target"].shape == (2, *WINDOW)
    np.testing.assert_array_equal(item["target"][0].numpy(), label0[box.slices()] > 0)
    np.testing.assert_array_equal(item["target"][1].numpy(), label1[box.slices()] > 0)
    assert item["valid"].shape == (2, *WINDOW) and bool((item["valid"] == 1).all())
    assert float(item["nonzero_fraction"]) == 1.0


def test_windows_at_the_volume_edge_are_zero_filled():
    image = ramp_volume()
    dataset, _ = _single(image, (0.0, 0.0, 63.0))
    item = dataset[0]
    box = centred_window((0.0, 0.0, 63.0), WINDOW)
    expected = open_volume(image).read(box) / 255.0
    np.testing.assert_allclose(item["image"][0].numpy(), expected, rtol=1e-6)
    assert float(item["image"][0, 0, 0, -1]) == 0.0  # outside the volume


def test_centre_marker_is_a_small_ball_at_the_point():
    image = ramp_volume()
    dataset, _ = _single(image, (10.0, 30.0, 30.0), centre_marker=True)
    item = dataset[0]
    assert item["image"].shape == (2, *WINDOW)
    marker = item["image"][1].numpy()
    assert set(np.unique(marker)) == {0.0, 1.0}
    centre = (4, 12, 12)  # point - window start (6, 18, 18)
    assert marker[centre] == 1.0
    on = np.argwhere(marker > 0)
    np.testing.assert_allclose(on.mean(axis=0), centre)
    assert len(on) == 15  # radius (1, 2, 2): 13 voxels in the centre plane, 1 above, 1 below
    assert np.abs(on - centre).max(axis=0).tolist() == [1, 2, 2]
    np.testing.assert_allclose(item["image"][0].numpy(), image[6:14, 18:42, 18:42] / 255.0, rtol=1e-6)
    # off-centre point: the ball follows the point, not the window centre
    dataset, _ = _single(image, (10.0, 30.4, 29.6), centre_marker=True)
    marker = dataset[0]["image"][1].numpy()
    start = centred_window((10.0, 30.4, 29.6), WINDOW).start
    assert marker[10 - start[0], 30 - start[1], 30 - start[2]] == 1.0


def test_image_normalisation_of_other_dtypes_uses_percentiles():
    image = ramp_volume(dtype=np.uint16) * 100
    dataset, _ = _single(image, (8.0, 32.0, 32.0))
    values = dataset[0]["image"].numpy()
    assert values.min() >= -0.1 and values.max() <= 1.1
    assert values.max() - values.min() > 0.5


@pytest.fixture(scope="module")
def em():
    return make_em_volume(SHAPE, seed=0)


def test_line_segment_targets_are_the_segments_under_start_and_end(em):
    layers = LayerSet(open_volume(em.image), {"segmentation": open_volume(em.segmentation)})
    synapses = [Synapse(s["id"], tuple(s["start"]), tuple(s["end"])) for s in em.synapses]
    regions = [Region(b, frozenset(["train"]), f"q{i}") for i, b in enumerate(em.region_boxes())]
    cached, report = cache_regions(layers, regions, synapses, WINDOW, need_lines=True)
    assert report.points == len(em.synapses) >= 4
    dataset = PointWindowDataset(cached, target_form="line_segments")
    assert dataset.channels == 2 and len(dataset) == report.points
    by_id = {s["id"]: s for s in em.synapses}
    seen = 0
    for c, part in zip(cached, dataset.parts, strict=True):
        for i, synapse in enumerate(c.synapses):
            item = part[i]
            box = c.indexer(i)
            seg = open_volume(em.segmentation).read(box)
            truth = by_id[synapse.id]
            np.testing.assert_array_equal(item["target"][0].numpy(), seg == truth["pre_id"])
            np.testing.assert_array_equal(item["target"][1].numpy(), seg == truth["post_id"])
            assert item["target"][0].sum() > 0 and item["target"][1].sum() > 0
            assert not bool((item["target"][0] * item["target"][1]).any())
            seen += 1
    assert seen == len(em.synapses)


def test_line_segment_target_of_a_point_annotation_uses_its_point_twice(em):
    layers = LayerSet(open_volume(em.image), {"segmentation": open_volume(em.segmentation)})
    s = em.synapses[0]
    (cached,), _ = cache_regions(layers, [region((0, 0, 0), SHAPE)], [Synapse(0, tuple(s["start"]))], WINDOW)
    item = RegionWindows(cached, target_form="line_segments")[0]
    np.testing.assert_array_equal(item["target"][0].numpy(), item["target"][1].numpy())
    box = centred_window(s["start"], WINDOW)
    np.testing.assert_array_equal(item["target"][0].numpy(), open_volume(em.segmentation).read(box) == s["pre_id"])


def test_lines_whose_ends_leave_the_cache_are_dropped_with_a_reason():
    """The segments under a line's ends are looked up in the cache: a line longer than the cache must
    not wrap around (negative index) or fail; it is dropped and counted."""
    seg = np.ones(SHAPE, np.uint32)
    seg[:, :, 20:] = 2
    seg[:, :, 44:] = 3
    layers = LayerSet(open_volume(ramp_volume()), {"segmentation": open_volume(seg)})
    long_line = Synapse(0, (8.0, 32.0, 2.0), (8.0, 32.0, 62.0))  # midpoint x = 32, ends in segments 1 and 3
    short_line = Synapse(1, (8.0, 30.0, 22.0), (8.0, 30.0, 46.0))  # ends in segments 2 and 3
    window = (8, 16, 16)
    only = [region((0, 0, 24), (16, 64, 40))]  # cache x in [15, 49): the long line's ends lie outside
    (cached,), report = cache_regions(layers, only, [long_line, short_line], window, need_lines=True)
    assert [s.id for s in cached.synapses] == [1]
    assert report.dropped == {"line ends outside the cached region (line longer than the window)": 1}
    item = RegionWindows(cached, target_form="line_segments")[0]
    box = cached.indexer(0)
    np.testing.assert_array_equal(item["target"][0].numpy(), seg[box.slices()] == 2)
    np.testing.assert_array_equal(item["target"][1].numpy(), seg[box.slices()] == 3)
    # label targets do not need the ends: the long line is kept
    (cached,), report = cache_regions(layers, only, [long_line, short_line], window)
    assert len(cached.indexer) == 2 and report.dropped == {}


def test_mask_layers_zero_valid_only_in_their_channel():
    image = ramp_volume()
    mask0 = np.ones(SHAPE, np.uint8)
    mask0[:, :, :32] = 0
    img_mask = np.ones(SHAPE, np.uint8)
    img_mask[:, :32, :] = 0
    point = (8.0, 32.0, 32.0)
    box = centred_window(point, WINDOW)
    dataset, _ = _single(image, point, masks={"label0": mask0})
    valid = dataset[0]["valid"].numpy()
    np.testing.assert_array_equal(valid[0], mask0[box.slices()] > 0)
    assert (valid[1] == 1).all()
    assert 0 < valid[0].sum() < valid[0].size

    dataset, _ = _single(image, point, masks={"label1": mask0, "img": img_mask})
    valid = dataset[0]["valid"].numpy()
    np.testing.assert_array_equal(valid[0], img_mask[box.slices()] > 0)
    np.testing.assert_array_equal(valid[1], (img_mask[box.slices()] > 0) & (mask0[box.slices()] > 0))


def test_segmentation_mask_restricts_both_line_channels(em):
    mask = np.ones(SHAPE, np.uint8)
    mask[:, :, :32] = 0
    layers = LayerSet(open_volume(em.image), {"segmentation": open_volume(em.segmentation)}, {"segmentation": open_volume(mask)})
    s = em.synapses[0]
    (cached,), _ = cache_regions(layers, [region((0, 0, 0), SHAPE)], [Synapse(0, tuple(s["start"]), tuple(s["end"]))], WINDOW)
    item = RegionWindows(cached, target_form="line_segments")[0]
    box = cached.indexer(0)
    for channel in (0, 1):
        np.testing.assert_array_equal(item["valid"][channel].numpy(), open_volume(mask).read(box) > 0)


@pytest.mark.parametrize("pad", [(1, 2, 3), (0, 0, 5), (2, 0, 0), (0, 11, 0), (0, 0, 0)])
def test_loss_crop_pad_zeros_the_border_per_axis(pad):
    dataset, _ = _single(ramp_volume(), (8.0, 32.0, 32.0), loss_crop_pad=pad)
    valid = dataset[0]["valid"].numpy()
    expected = np.zeros(WINDOW, np.float32)
    expected[tuple(slice(p, w - p) for p, w in zip(pad, WINDOW, strict=True))] = 1
    for channel in valid:
        np.testing.assert_array_equal(channel, expected)


def test_min_nonzero_fraction_masks_empty_windows_without_skipping_them():
    image = ramp_volume()
    image[:, :, 32:] = 0
    layers = layers_for(image)
    synapses = [Synapse(0, (8.0, 32.0, 14.0)), Synapse(1, (8.0, 32.0, 50.0)), Synapse(2, (8.0, 32.0, 32.0))]
    (cached,), _ = cache_regions(layers, [region((0, 0, 0), SHAPE)], synapses, WINDOW)
    dataset = RegionWindows(cached, min_nonzero_fraction=0.6)
    assert len(dataset) == 3  # masked, not skipped
    items = [dataset[i] for i in range(3)]
    assert float(items[0]["nonzero_fraction"]) == 1.0 and (items[0]["valid"] == 1).all()
    assert float(items[1]["nonzero_fraction"]) == 0.0 and (items[1]["valid"] == 0).all()
    assert items[1]["image"].shape == items[0]["image"].shape
    assert 0.4 < float(items[2]["nonzero_fraction"]) < 0.6 and (items[2]["valid"] == 0).all()
    relaxed = RegionWindows(cached, min_nonzero_fraction=0.4)
    assert (relaxed[2]["valid"] == 1).all() and (relaxed[1]["valid"] == 0).all()
    assert (RegionWindows(cached)[1]["valid"] == 1).all()  # the default keeps every window


def test_point_window_dataset_joins_regions():
    image = ramp_volume()
    layers = layers_for(image, label0=(image > 100).astype(np.uint8))
    regions = [
        region((0, 0, 0), (16, 32, 32), name="a"),
        region((0, 32, 0), (16, 64, 32), name="b"),
        region((0, 0, 32), (16, 32, 64), name="c"),
    ]
    rng = np.random.default_rng(3)
    synapses = [Synapse(i, tuple(rng.uniform((0, 0, 0), (16, 64, 64)))) for i in range(30)]
    cached, report = cache_regions(layers, regions, synapses, WINDOW)
    dataset = PointWindowDataset(cached, centre_marker=True)
    assert len(dataset) == sum(len(c.indexer) for c in cached) == report.points
    assert [len(p) for p in dataset.parts] == [len(c.indexer) for c in cached]
    index = 0
    for c in cached:
        for i in range(len(c.indexer)):
            item = dataset[index]
            np.testing.assert_allclose(item["image"][0].numpy(), layers.image.read(c.indexer(i)) / 255.0, rtol=1e-6)
            assert item["image"].shape == (2, *WINDOW)
            index += 1


# ------------------------------------------------------------------------------ augmentation
def _flip_x(image, mask):
    return np.flip(image, -1).copy(), np.flip(mask, -1).copy()


def _brighten_everything(image, mask):
    return image + 1.0, mask + 1.0


def test_augment_moves_targets_marker_and_loss_mask_with_the_image():
    image = ramp_volume()
    label0 = np.zeros(image.shape, np.uint8)
    label0[:, :, :28] = 1  # left of the point: flipped, it must be on the right
    plain, _ = _single(image, (8.0, 32.0, 30.0), label0=label0, label1=label0, centre_marker=True, loss_crop_pad=(0, 0, 2))
    flipped, _ = _single(image, (8.0, 32.0, 30.0), label0=label0, label1=label0, centre_marker=True, loss_crop_pad=(0, 0, 2), augment=_flip_x)
    before, after = plain[0], flipped[0]
    for key in ("image", "target", "valid"):
        np.testing.assert_array_equal(after[key].numpy(), np.flip(before[key].numpy(), -1))
    assert after["target"].dtype == before["target"].dtype
    assert after["image"].shape == (2, *WINDOW)


def test_augment_jitters_only_the_image_channel():
    image = ramp_volume()
    label0 = (image > 128).astype(np.uint8)
    plain, _ = _single(image, (8.0, 32.0, 30.0), label0=label0, label1=label0, centre_marker=True)
    shifted, _ = _single(image, (8.0, 32.0, 30.0), label0=label0, label1=label0, centre_marker=True, augment=_brighten_everything)
    before, after = plain[0], shifted[0]
    np.testing.assert_allclose(after["image"][0].numpy(), before["image"][0].numpy() + 1.0, rtol=1e-6)
    # what travels as the "mask" (marker, targets, loss mask) went through the callable too: the test's
    # callable shifts it, the real Augmenter only moves it; the image channel alone is jittered
    np.testing.assert_array_equal(after["image"][1].numpy(), before["image"][1].numpy() + 1.0)


def test_real_augmenter_keeps_marker_binary_and_targets_aligned():
    from napari_training_assistant.train.augment import Augmenter, WorkerAugmenter

    em = make_em_volume(SHAPE, seed=0)
    layers = LayerSet(open_volume(em.image), {"segmentation": open_volume(em.segmentation)})
    synapses = [Synapse(s["id"], tuple(s["start"]), tuple(s["end"])) for s in em.synapses]
    regions = [Region(b, frozenset(["train"]), f"q{i}") for i, b in enumerate(em.region_boxes())]
    cached, _ = cache_regions(layers, regions, synapses, (8, 32, 32), need_lines=True)
    augment = WorkerAugmenter(Augmenter(spatial_dims="3d", rng=0), seed=0)
    dataset = PointWindowDataset(cached, target_form="line_segments", centre_marker=True, augment=augment)
    plain = PointWindowDataset(cached, target_form="line_segments", centre_marker=True)
    changed = 0
    for index in range(len(dataset)):
        item, reference = dataset[index], plain[index]
        marker = item["image"][1].numpy()
        assert set(np.unique(marker)) <= {0.0, 1.0} and marker.sum() == reference["image"][1].numpy().sum()
        target = item["target"].numpy()
        assert target.dtype == np.uint8 and set(np.unique(target)) <= {0, 1}
        # the same voxels of each channel, moved: counts are kept; pre and post never swap
        np.testing.assert_array_equal(target.sum(axis=(1, 2, 3)), reference["target"].numpy().sum(axis=(1, 2, 3)))
        changed += not np.array_equal(target, reference["target"].numpy())
    assert changed > len(dataset) // 2
