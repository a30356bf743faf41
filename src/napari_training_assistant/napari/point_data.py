"""Viewer layers as a point-windowed training spec folder (`<project>/point_data/`): zarr volumes,
synapses.csv, regions.json and spec.yaml, trained like `nta train-points` on that spec. No Qt: the
folder is written in the training child process."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data.annotations import Region, Synapse
from ..data.point_regimes import partner_regime
from ..project.run_options import TrainOptions

DATA_FOLDER = "point_data"


def layer_spec(
    project_root: Path, scale, window: list[int], depth: int, base: int, options: TrainOptions, *, segmentation: bool = False, lines: bool = False
) -> dict[str, Any]:
    """The spec (as YAML data) of layers written into `project_root`/point_data; `segmentation`: the
    volumes hold a `segmentation` (cells to assign synapses to, `nta assign-synapses`); with `lines` too
    (every synapse a pre -> post line) the partner-assignment regime (`partner_regime`), else the
    label0/label1 volumes are the targets. The Train tab's epochs, learning rate and batch size win."""
    regime = partner_regime(window) if segmentation and lines else {"targets": "labels", "training": {"epochs": 10, "lr": 5e-4, "batch_size": 4}}
    training: dict[str, Any] = dict(regime["training"])
    for key, value in (("epochs", options.epochs), ("lr", options.learning_rate), ("batch_size", options.batch_size)):
        if value:
            training[key] = value
    if options.samples_per_epoch:
        training["samples_per_epoch"] = options.samples_per_epoch
    layers: dict[str, Any] = {"img": {"path": "img.zarr"}, "label0": {"path": "label0.zarr"}, "label1": {"path": "label1.zarr"}}
    if segmentation:
        layers["segmentation"] = {"path": "segmentation.zarr"}
    return {
        "project": str(Path(project_root).resolve()),
        "axis_order": "zyx",
        "resolution": [float(s) for s in list(scale)[-3:]],
        "layers": {**layers, "points": {"path": "synapses.csv"}},
        "regions": {"path": "regions.json"},
        "window_size": [int(v) for v in window],
        "targets": regime["targets"],
        "model": {"depth": depth, "base_channels": base, "output_channels": 2},
        "training": training,
    }


def write_point_data(folder: Path, volumes: dict[str, np.ndarray], synapses: list[Synapse], regions: list[Region], spec: dict) -> Path:
    """Write the spec folder (replacing what was there); returns the spec.yaml path."""
    import yaml
    import zarr

    folder.mkdir(parents=True, exist_ok=True)
    for key, data in volumes.items():
        data = np.asarray(data)
        array = zarr.create_array(store=str(folder / f"{key}.zarr"), shape=data.shape, dtype=data.dtype, chunks=tuple(min(c, n) for c, n in zip((16, 64, 64), data.shape, strict=True)), zarr_format=3, overwrite=True)
        array[...] = data
    lines = any(s.end is not None for s in synapses)
    with open(folder / "synapses.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "z1", "y1", "x1", "z2", "y2", "x2"] if lines else ["id", "z", "y", "x"])
        for s in synapses:
            writer.writerow([s.id, *s.start, *(s.end or s.start)] if lines else [s.id, *s.start])
    doc = [{"start": list(r.box.start), "stop": list(r.box.stop), "tags": sorted(r.tags), "name": r.name} for r in regions]
    (folder / "regions.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def spec_preview(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(the spec file's YAML mapping, the project folder it names) without validating it: the GUI
    process does not import the training package; the run validates the spec (one-line errors).
    Raises ValueError with one line when the file cannot be read as a mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"spec file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of keys (project, layers, regions, ...)")
    project = Path(str(data.get("project", "")))
    return data, project if project.is_absolute() else (path.parent / project).resolve()
