"""npe2 sample data: generated nuclei (2D pairs) and a generated EM synapse volume (point windows)."""

from __future__ import annotations

from typing import Any

import numpy as np

LayerData = tuple[Any, dict[str, Any], str]


def nuclei_sample() -> list[LayerData]:
    """A 256x256 fluorescence-like nuclei image and its instance labels."""
    from ..data.synthetic_nuclei import make_nuclei

    image, labels = make_nuclei()
    return [(image, {"name": "nuclei"}, "image"), (labels, {"name": "nuclei labels"}, "labels")]


def region_shapes(regions: list[dict[str, Any]], scale: tuple[float, ...]) -> LayerData:
    """Train/val region boxes as rectangles in each box's middle z plane, with the `split`, `z_start`
    and `z_stop` properties that `regions_from_napari_shapes` reads back as 3D boxes."""
    rectangles, splits, z_start, z_stop = [], [], [], []
    for region in regions:
        (z0, y0, x0), (z1, y1, x1) = region["start"], region["stop"]
        z = (z0 + z1 - 1) // 2
        rectangles.append(np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], dtype=float))
        splits.append(region["tags"][0])
        z_start.append(z0)
        z_stop.append(z1)
    meta = {
        "name": "regions",
        "scale": scale,
        "shape_type": "rectangle",
        "properties": {"split": splits, "z_start": z_start, "z_stop": z_stop},
        "edge_color": "split",
        "edge_color_cycle": ["limegreen", "orange", "magenta"],
        "face_color": "transparent",
        "edge_width": 2,
        "text": {"string": "{split}", "color": "white", "anchor": "upper_left"},
    }
    return (rectangles, meta, "shapes")


def synapse_sample() -> list[LayerData]:
    """A synthetic EM volume: image, cells, pre/post labels, synapse points and lines, and the
    train/val regions as shapes with a `split` property."""
    from ..data.synthetic_em import make_em_volume, synapse_sample_data

    layers = synapse_sample_data()
    scale = next(meta["scale"] for _, meta, kind in layers if kind == "image")
    return [*layers, region_shapes(make_em_volume().regions, scale)]
