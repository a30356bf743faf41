"""Synthetic EM synapse volumes: geometry, labels, regions and the written project folder."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
import yaml

from napari_training_assistant.data.geometry import Box
from napari_training_assistant.data.synthetic_em import (
    AXON,
    DENDRITE,
    RESOLUTION,
    SyntheticEM,
    main,
    make_em_volume,
    spec_dict,
    write_synapse_dataset,
)


@pytest.fixture(scope="module")
def em() -> SyntheticEM:
    return make_em_volume(seed=0)


def _voxel(point) -> tuple[int, ...]:
    return tuple(int(np.round(v)) for v in point)


def test_default_generation_is_fast() -> None:
    started = time.perf_counter()
    make_em_volume(seed=3)
    assert time.perf_counter() - started < 5.0


def test_deterministic_per_seed(em: SyntheticEM) -> None:
    again = make_em_volume(seed=0)
    for name in ("image", "segmentation", "label0", "label1"):
        np.testing.assert_array_equal(getattr(em, name), getattr(again, name))
    assert em.synapses == again.synapses
    assert em.regions == again.regions
    assert em.roles == again.roles
    other = make_em_volume(seed=1)
    assert not np.array_equal(em.image, other.image)
    assert em.synapses != other.synapses


def test_shapes_dtypes_and_counts(em: SyntheticEM) -> None:
    assert em.shape == (32, 128, 128)
    assert em.image.dtype == np.uint8 and em.image.shape == em.shape
    assert em.segmentation.dtype == np.uint32 and em.segmentation.shape == em.shape
    assert em.label0.dtype == np.uint8 and em.label1.dtype == np.uint8
    assert em.resolution == RESOLUTION == (40, 4, 4)
    assert 20 <= len(em.roles) <= 40
    assert 30 <= len(em.synapses) <= 60
    assert em.image.std() > 10  # not flat


def test_every_voxel_belongs_to_a_cell_with_a_role(em: SyntheticEM) -> None:
    ids = set(np.unique(em.segmentation).tolist())
    assert 0 not in ids
    assert ids <= set(em.roles)
    assert set(em.roles) == set(range(1, len(em.roles) + 1))
    assert set(em.roles.values()) == {AXON, DENDRITE}
    assert abs(len(em.axon_ids) - len(em.dendrite_ids)) <= 1


def test_synapse_lines_go_from_axon_to_dendrite(em: SyntheticEM) -> None:
    shape = np.asarray(em.shape)
    assert [s["id"] for s in em.synapses] == list(range(1, len(em.synapses) + 1))
    for s in em.synapses:
        start, end = np.asarray(s["start"]), np.asarray(s["end"])
        assert (np.round(start) >= 0).all() and (np.round(start) < shape).all()
        assert (np.round(end) >= 0).all() and (np.round(end) < shape).all()
        assert em.segmentation[_voxel(start)] == s["pre_id"]
        assert em.segmentation[_voxel(end)] == s["post_id"]
        assert em.roles[s["pre_id"]] == AXON
        assert em.roles[s["post_id"]] == DENDRITE
        np.testing.assert_allclose(s["point"], (start + end) / 2)
        half_inplane = np.linalg.norm((end - start)[1:]) / 2
        assert 2.5 <= half_inplane <= 7.0
        # the midpoint sits on the contact: its voxel neighbourhood touches both cells
        z, y, x = _voxel(s["point"])
        near = em.segmentation[max(z - 1, 0) : z + 2, y - 1 : y + 2, x - 1 : x + 2]
        assert {s["pre_id"], s["post_id"]} <= set(np.unique(near).tolist())


def test_synapses_are_spread_out(em: SyntheticEM) -> None:
    points = em.points
    for i in range(len(points)):
        others = np.delete(points, i, axis=0)
        inplane = ((others[:, 1:] - points[i, 1:]) ** 2).sum(1) / 8.0**2
        spread = ((others[:, 0] - points[i, 0]) / 3.0) ** 2 + inplane
        assert spread.min() >= 1.0 - 1e-9


def test_labels_match_segmentation(em: SyntheticEM) -> None:
    pre_ids = sorted({s["pre_id"] for s in em.synapses})
    post_ids = sorted({s["post_id"] for s in em.synapses})
    assert set(np.unique(em.label0).tolist()) == {0, 1}
    assert set(np.unique(em.label1).tolist()) == {0, 1}
    np.testing.assert_array_equal(em.label0 > 0, np.isin(em.segmentation, pre_ids))
    np.testing.assert_array_equal(em.label1 > 0, np.isin(em.segmentation, post_ids))
    assert not (em.label0.astype(bool) & em.label1.astype(bool)).any()  # axons and dendrites are distinct


def test_membranes_are_darker_than_cytoplasm(em: SyntheticEM) -> None:
    seg = em.segmentation
    boundary = np.zeros(seg.shape, bool)
    dy = seg[:, 1:, :] != seg[:, :-1, :]
    dx = seg[:, :, 1:] != seg[:, :, :-1]
    boundary[:, 1:, :] |= dy
    boundary[:, :-1, :] |= dy
    boundary[:, :, 1:] |= dx
    boundary[:, :, :-1] |= dx
    grown = boundary.copy()
    for shift in range(1, 6):  # interior: at least 6 voxels in-plane from any boundary
        grown[:, shift:, :] |= boundary[:, :-shift, :]
        grown[:, :-shift, :] |= boundary[:, shift:, :]
        grown[:, :, shift:] |= boundary[:, :, :-shift]
        grown[:, :, :-shift] |= boundary[:, :, shift:]
    image = em.image.astype(np.float64)
    assert image[boundary].mean() < image[~grown].mean() - 40


def test_regions_cover_the_volume_and_hold_synapses(em: SyntheticEM) -> None:
    boxes = em.region_boxes()
    assert len(boxes) == 4
    assert sum(box.size for box in boxes) == int(np.prod(em.shape))
    for i, a in enumerate(boxes):
        assert all(a.intersect(b) is None for b in boxes[i + 1 :])
        assert Box((0, 0, 0), em.shape).intersect(a) == a
    tags = [tuple(r["tags"]) for r in em.regions]
    assert set(tags) == {("train",), ("val",)}
    assert tags.count(("val",)) == 1
    for box in boxes:
        assert sum(box.contains(p) for p in em.points) >= 5
    # every synapse point lies in exactly one region
    assert all(sum(box.contains(p) for box in boxes) == 1 for p in em.points)


def test_small_volumes_still_generate() -> None:
    small = make_em_volume((8, 48, 48), seed=2)
    assert small.image.shape == (8, 48, 48)
    assert small.segmentation.min() >= 1
    for s in small.synapses:
        assert small.segmentation[_voxel(s["start"])] == s["pre_id"]
        assert small.segmentation[_voxel(s["end"])] == s["post_id"]


def test_written_dataset_is_readable(tmp_path, em: SyntheticEM) -> None:
    zarr = pytest.importorskip("zarr")
    yaml = pytest.importorskip("yaml")
    paths = write_synapse_dataset(tmp_path / "project", volume=em)
    assert set(paths) == {"img", "pre", "post", "seg", "synapses", "points", "regions", "spec"}
    assert all(path.exists() for path in paths.values())
    for name, expected in (
        ("img", em.image),
        ("pre", em.label0),
        ("post", em.label1),
        ("seg", em.segmentation),
    ):
        array = zarr.open_array(str(paths[name]), mode="r")
        assert array.metadata.zarr_format == 3
        assert array.chunks == (16, 64, 64)
        np.testing.assert_array_equal(array[...], expected)

    with open(paths["synapses"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "z1", "y1", "x1", "z2", "y2", "x2"]
    assert len(rows) == len(em.synapses)
    for row, s in zip(rows, em.synapses, strict=True):
        assert int(row["id"]) == s["id"]
        assert tuple(float(row[k]) for k in ("z1", "y1", "x1")) == s["start"]
        assert tuple(float(row[k]) for k in ("z2", "y2", "x2")) == s["end"]
    with open(paths["points"], newline="") as handle:
        points = list(csv.DictReader(handle))
    assert list(points[0]) == ["id", "z", "y", "x"]
    np.testing.assert_allclose([[float(p[k]) for k in "zyx"] for p in points], em.points)

    assert json.loads(paths["regions"].read_text()) == em.regions

    spec = yaml.safe_load(paths["spec"].read_text())
    assert spec == spec_dict()
    assert list(spec) == [
        "project", "axis_order", "resolution", "layers", "regions",
        "train_tags", "val_tags", "window_size", "line_point", "targets", "model", "training",
    ]  # fmt: skip
    assert spec["resolution"] == [40, 4, 4]
    assert spec["window_size"] == [8, 48, 48] and spec["targets"] == "line_segments"
    assert spec["model"]["output_channels"] == 2
    assert spec["training"]["loss_crop_pad"] == [2, 12, 12] and spec["training"]["centre_marker"] is True
    for layer in spec["layers"].values():
        assert (paths["spec"].parent / layer["path"]).exists()
    assert (paths["spec"].parent / spec["regions"]["path"]).exists()


def test_main_writes_and_reports(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main([str(out), "--shape", "8", "48", "48", "--seed", "4"]) == 0
    printed = capsys.readouterr().out
    assert "spec:" in printed and "synapses:" in printed and "cells:" in printed
    assert (out / "spec.yaml").exists() and (out / "img.zarr").is_dir()
    assert yaml.safe_load((out / "spec.yaml").read_text())["targets"] == "line_segments"
    assert main([str(tmp_path / "labels"), "--shape", "8", "48", "48", "--labels"]) == 0
    assert yaml.safe_load((tmp_path / "labels" / "spec.yaml").read_text())["targets"] == "labels"


def test_style_varies_between_seeds_and_is_recorded() -> None:
    styles = [make_em_volume((16, 64, 64), seed=seed).style for seed in (0, 1, 2)]
    for key in ("membrane_sigma", "membrane_darkness", "noise", "blur", "psd_thickness", "bend"):
        assert len({round(s[key], 6) for s in styles}) == 3, key
    assert all(s["cytoplasm"][0] < s["cytoplasm"][1] for s in styles)
    fixed = make_em_volume((16, 64, 64), seed=0, noise=0.01)
    assert fixed.style["noise"] == 0.01


def test_cell_brightness_does_not_tell_pre_from_post() -> None:
    """Only the synapse tells pre from post: over many cells, axons are not darker than dendrites."""
    axon, dendrite = [], []
    for seed in range(4):
        em = make_em_volume((16, 96, 96), seed=seed)
        for cell, role in em.roles.items():
            inside = em.segmentation == cell
            if inside.sum() > 500:
                (axon if role == AXON else dendrite).append(float(np.median(em.image[inside])))
    assert len(axon) > 10 and len(dendrite) > 10
    assert abs(np.mean(axon) - np.mean(dendrite)) < 0.5 * np.std(axon + dendrite)


def _side_profile(em: SyntheticEM, sign: float, depths) -> float:
    """Mean image along the synapse normal, `depths` voxels into the pre (sign -1) or post (+1) cell,
    relative to that cell's median (cells differ in brightness, whatever their role)."""
    values = []
    for s in em.synapses:
        start, end, point = (np.asarray(s[k]) for k in ("start", "end", "point"))
        direction = (end - start) / np.linalg.norm((end - start)[1:])
        cell = s["post_id"] if sign > 0 else s["pre_id"]
        median = float(np.median(em.image[em.segmentation == cell]))
        for depth in depths:
            z, y, x = np.round(point + sign * depth * direction).astype(int)
            if 0 <= y < em.shape[1] and 0 <= x < em.shape[2]:
                values.append(em.image[z, y, x] - median)
    return float(np.mean(values))


def test_density_on_the_post_side_vesicles_on_the_pre_side() -> None:
    for seed in (0, 1):
        em = make_em_volume(seed=seed)
        # next to the contact the post side is darker (the density); further in, the pre side (vesicles)
        assert _side_profile(em, +1, (1.5, 2.5)) < _side_profile(em, -1, (1.5, 2.5)) - 5
        assert _side_profile(em, -1, (5, 6, 7, 8)) < _side_profile(em, +1, (5, 6, 7, 8)) - 5
