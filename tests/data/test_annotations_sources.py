"""Synapses from CSV / napari layers, regions from JSON / napari shapes, and points_in_box."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_training_assistant.data.annotations import (
    Region,
    Synapse,
    points_in_box,
    read_csv_synapses,
    read_regions_json,
    regions_from_napari_shapes,
    synapses_from_napari_lines,
    synapses_from_napari_points,
)
from napari_training_assistant.data.geometry import Box
from napari_training_assistant.project.errors import DatasetError


# -------------------------------------------------------------------------------------- types
def test_synapse_point():
    line = Synapse(1, (0.0, 0.0, 0.0), (2.0, 4.0, 6.0))
    assert line.point("midpoint") == (1.0, 2.0, 3.0)
    assert line.point("start") == (0.0, 0.0, 0.0) and line.point("end") == (2.0, 4.0, 6.0)
    point = Synapse("a", (1.0, 2.0, 3.0))
    assert all(point.point(w) == (1.0, 2.0, 3.0) for w in ("midpoint", "start", "end"))
    with pytest.raises(ValueError, match="line_point"):
        line.point("middle")  # type: ignore[arg-type]


def test_points_in_box_counts_drops():
    box = Box((0, 0, 0), (10, 10, 10))
    synapses = [
        Synapse(0, (1.0, 1.0, 1.0)),
        Synapse(1, (10.0, 5.0, 5.0)),  # stop is exclusive
        Synapse(2, (-0.5, 5.0, 5.0)),
        Synapse(3, (8.0, 8.0, 8.0), (14.0, 8.0, 8.0)),  # midpoint 11 -> outside, start inside
        Synapse(4, (1.0, 1.0)),
        Synapse(5, (float("nan"), 1.0, 1.0)),
        Synapse(6, (9.999, 0.0, 0.0)),
    ]
    kept, dropped = points_in_box(synapses, box)
    assert [(s.id, p) for s, p in kept] == [(0, (1.0, 1.0, 1.0)), (6, (9.999, 0.0, 0.0))]
    assert dropped == {"outside region": 3, "wrong number of axes": 1, "non-finite coordinate": 1}
    kept, dropped = points_in_box(synapses, box, "start")
    assert [s.id for s, _ in kept] == [0, 3, 6] and dropped["outside region"] == 2
    assert points_in_box([], box) == ([], {})


# ---------------------------------------------------------------------------------------- CSV
def test_csv_points_any_column_order(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("X, y ,Z,id,score,label,empty\n1,2,3,17,0.5,exc,\n4.5,5,6,18,1,inh,\n\n")
    got = read_csv_synapses(path, "zyx")
    assert got == [
        Synapse(17, (3.0, 2.0, 1.0), None, {"score": 0.5, "label": "exc", "empty": None}),
        Synapse(18, (6.0, 5.0, 4.5), None, {"score": 1, "label": "inh", "empty": None}),
    ]


@pytest.mark.parametrize(
    "header",
    [
        "z1,y1,x1,z2,y2,x2",
        "start_z,start_y,start_x,end_z,end_y,end_x",
        "x_end,z_start,y_start,x_start,z_end,y_end",
        "pre_z,pre_y,pre_x,post_z,post_y,post_x",
    ],
)
def test_csv_lines_header_styles(tmp_path, header):
    names = header.split(",")
    values = {"z": (1, 10), "y": (2, 20), "x": (3, 30)}

    def value(name):
        axis = next(
            a
            for a in "zyx"
            if name
            in (f"{a}1", f"{a}2", f"start_{a}", f"end_{a}", f"{a}_start", f"{a}_end", f"pre_{a}", f"post_{a}")
        )
        second = name.endswith(("2", "end", "_end")) or name.startswith(("end_", "post_"))
        return values[axis][1 if second else 0]

    path = tmp_path / "lines.csv"
    path.write_text(header + ",weight\n" + ",".join(str(value(n)) for n in names) + ",0.25\n")
    (s,) = read_csv_synapses(path, "zyx")
    assert s == Synapse(0, (1.0, 2.0, 3.0), (10.0, 20.0, 30.0), {"weight": 0.25})
    assert s.point("midpoint") == (5.5, 11.0, 16.5)


def test_csv_tsv_and_string_ids(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("id\ty\tx\nsyn-a\t1\t2\nsyn-b\t3\t4\n")
    assert [(s.id, s.start) for s in read_csv_synapses(path, "yx")] == [
        ("syn-a", (1.0, 2.0)),
        ("syn-b", (3.0, 4.0)),
    ]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("a,b,c\n1,2,3\n", r"names no coordinate columns.*'z,y,x' for points.*z1,y1,x1,z2,y2,x2"),
        ("z1,y1,x1,z2\n1,2,3,4\n", r"missing y2, x2"),
        ("z,y,x,z1,y1,x1,z2,y2,x2\n" + "1," * 8 + "1\n", "both point columns"),
        ("z,y,x\n1,2,oops\n", r"line 2: column 'x' holds 'oops'"),
        ("z,y,x\n1,2\n", r"line 2: 2 cells for 3 columns"),
        ("id,z,y,x\n1,1,2,3\n1,4,5,6\n", r"line 3: id 1 repeats line 2"),
        ("z,y,x,Z\n1,2,3,4\n", "repeats column"),
        ("", "empty"),
    ],
)
def test_csv_errors(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=match):
        read_csv_synapses(path, "zyx")


# ------------------------------------------------------------------------------------- napari
def test_napari_points_and_properties():
    data = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    got = synapses_from_napari_points(
        data, {"id": np.array([7, 8]), "confidence": np.array([0.5, 0.75], dtype=np.float32)}
    )
    assert got == [
        Synapse(7, (1.0, 2.0, 3.0), None, {"confidence": 0.5}),
        Synapse(8, (4.0, 5.0, 6.0), None, {"confidence": 0.75}),
    ]
    assert isinstance(got[0].id, int) and isinstance(got[0].properties["confidence"], float)
    assert [s.id for s in synapses_from_napari_points(data)] == [0, 1]
    with pytest.raises(DatasetError, match=r"not \(N, D\)"):
        synapses_from_napari_points(np.zeros(3))
    with pytest.raises(DatasetError, match="has 1 values for 2"):
        synapses_from_napari_points(data, {"score": [1]})


def test_napari_lines():
    data = [np.array([[0, 0, 0], [2, 2, 2]]), np.array([[1, 1, 1], [1, 3, 5]])]
    got = synapses_from_napari_lines(data, ["line", "path"], {"kind": ["a", "b"]})
    assert got[1] == Synapse(1, (1.0, 1.0, 1.0), (1.0, 3.0, 5.0), {"kind": "b"})
    assert got[0].point("midpoint") == (1.0, 1.0, 1.0)
    with pytest.raises(DatasetError, match=r"shape 1 is a 'path' with 3 vertices"):
        synapses_from_napari_lines([data[0], np.zeros((3, 3))], ["line", "path"])
    with pytest.raises(DatasetError, match=r"shape 0 is a 'rectangle'"):
        synapses_from_napari_lines([np.zeros((4, 2))], "rectangle")
    with pytest.raises(DatasetError, match="2 shapes but 1 shape types"):
        synapses_from_napari_lines(data, ["line"])


# ------------------------------------------------------------------------------- regions JSON
def test_regions_json(tmp_path):
    path = tmp_path / "regions.json"
    path.write_text(
        json.dumps(
            [
                {"start": [0, 0, 0], "stop": [10, 64, 64], "tags": ["train"], "name": "left"},
                {"start": [0, 0, 64], "stop": [10.0, 64, 128], "tags": ["val", "hard"]},
            ]
        )
    )
    assert read_regions_json(path) == [
        Region(Box((0, 0, 0), (10, 64, 64)), frozenset({"train"}), "left"),
        Region(Box((0, 0, 64), (10, 64, 128)), frozenset({"val", "hard"}), "region 1"),
    ]
    path.write_text(json.dumps({"regions": [{"start": [0, 0], "stop": [1, 1], "tags": ["test"]}]}))
    assert read_regions_json(path)[0].box == Box((0, 0), (1, 1))


@pytest.mark.parametrize(
    ("regions", "match"),
    [
        (
            [
                {"start": [0, 0], "stop": [5, 5], "tags": ["train"]},
                {"start": [5, 5], "stop": [5, 9], "tags": ["val"]},
            ],
            r"region 1: stop \[5, 9\] must be greater",
        ),
        ([{"start": [0, 0, 0], "stop": [5, 5], "tags": ["train"]}], "region 0: start has 3 axes, stop 2"),
        ([{"start": [0, 0], "stop": [5, 5], "tags": "train"}], "region 0: tags must be a non-empty list"),
        ([{"start": [0, 0], "stop": [5, 5], "tags": [1]}], "region 0: tags"),
        (
            [{"start": [0, 0.5], "stop": [5, 5], "tags": ["a"]}],
            "region 0: start and stop must be lists of integer",
        ),
        ([{"start": [0, 0], "stop": [5, 5], "tag": ["a"]}], "region 0 has unknown key"),
        ({"start": [0, 0]}, "expected a list of regions"),
    ],
)
def test_regions_json_errors(tmp_path, regions, match):
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(regions))
    with pytest.raises(DatasetError, match=match):
        read_regions_json(path)


def test_regions_json_unreadable(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("[{")
    with pytest.raises(DatasetError, match="JSON syntax"):
        read_regions_json(path)


# ----------------------------------------------------------------------------- regions napari
def _rect3d(z, y0, x0, y1, x1):
    return np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], dtype=float)


def test_regions_from_napari_shapes():
    box8 = np.array([[z, y, x] for z in (2, 12) for y in (0, 32) for x in (5, 40)], dtype=float)
    data = [np.array([[0, 0], [0, 10], [20, 10], [20, 0]]), box8]
    got = regions_from_napari_shapes(data, ["rectangle", "polygon"], {"split": ["train", "val"]})
    assert got[0] == Region(Box((0, 0), (20, 10)), frozenset({"train"}), "shape 0")
    assert got[1] == Region(Box((2, 0, 5), (12, 32, 40)), frozenset({"val"}), "shape 1")

    flat = [_rect3d(4, 0, 0, 16, 16), _rect3d(7, 16, 0, 32.2, 16)]
    props = {"tags": ["train,hard", ["val"]], "z_start": [0, 5], "z_stop": [8, 9], "name": ["a", None]}
    got = regions_from_napari_shapes(flat, "rectangle", props)
    assert got == [
        Region(Box((0, 0, 0), (8, 16, 16)), frozenset({"train", "hard"}), "a"),
        Region(Box((5, 16, 0), (9, 32, 16)), frozenset({"val"}), "shape 1"),
    ]


@pytest.mark.parametrize(
    ("data", "types", "props", "match"),
    [
        (
            [_rect3d(4, 0, 0, 16, 16)],
            ["rectangle"],
            {"split": ["train"]},
            r"flat at z=4; give it `z_start` and `z_stop`",
        ),
        (
            [_rect3d(4, 0, 0, 16, 16)],
            ["rectangle"],
            {"split": ["train"], "z_start": [np.nan], "z_stop": [3]},
            "z_start",
        ),
        ([np.array([[0, 0], [0, 10], [20, 10], [20, 0]])], ["rectangle"], {}, "shape 0 has no tag"),
        (
            [np.array([[0, 5], [5, 10], [10, 5], [5, 0]])],
            ["rectangle"],
            {"split": ["train"]},
            "not an axis-aligned",
        ),
        (
            [np.array([[0, 0], [0, 10], [20, 10], [20, 0]])],
            ["ellipse"],
            {"split": ["train"]},
            r"shape 0 \(ellipse\) cannot be a region",
        ),
        (
            [np.array([[0, 0, 0], [10, 0, 0], [10, 0, 10], [0, 0, 10]])],
            ["rectangle"],
            {"split": ["t"]},
            "no extent on axis 1",
        ),
        ([np.zeros((3, 2))], ["polygon"], {"split": ["t"]}, r"vertices of shape \(3, 2\)"),
        (
            [np.array([[0, 0], [0, 10], [20, 10], [20, 0]])],
            ["rectangle"],
            {"split": ["a", "b"]},
            "has 2 values for 1 shapes",
        ),
    ],
)
def test_regions_from_napari_shapes_errors(data, types, props, match):
    with pytest.raises(DatasetError, match=match):
        regions_from_napari_shapes(data, types, props)
