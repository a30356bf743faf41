"""The outputs of an assignment run: one table (CSV and Parquet, via pyarrow) and Neuroglancer line annotations.

The table is merged from the chunks' part files in the order of the points layer. The lines go from the pre
site to the post site, in nanometres, with the scores as properties and `pre_segment` / `post_segment`
relationships, written by the `neuroglancer` package's own `AnnotationWriter` (spatial index, by_id index and
one index per relationship), so Neuroglancer opens the folder as a precomputed annotation layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..project.errors import DatasetError
from .worker import part_path

INSTALL = "pip install 'napari-training-assistant[connectomics]'"
LINE_PROPERTIES = ("pre_score", "post_score", "pre_margin", "post_margin")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError as exc:
        raise DatasetError(f"writing assignment tables needs pyarrow: {INSTALL}") from exc
    return pyarrow


def merge_parts(parts: Path, chunks: int, target: Path) -> Any:
    """All part files as one pyarrow Table sorted by `row`; written as assignments.csv and .parquet."""
    pa = _pyarrow()
    tables = [
        pa.csv.read_csv(part_path(parts, i), convert_options=pa.csv.ConvertOptions(strings_can_be_null=False, column_types={"flags": pa.string(), "id": pa.string()}))
        for i in range(chunks)
    ]
    table = pa.concat_tables(tables).sort_by("row") if tables else pa.table({})
    pa.csv.write_csv(table, target / "assignments.csv")
    pa.parquet.write_table(table, target / "assignments.parquet")
    return table


def write_lines(table: Any, folder: Path, resolution: Sequence[float], axis_order: str) -> int:
    """Line annotations pre site -> post site for every row with both partners; returns how many."""
    try:
        import neuroglancer
        from neuroglancer.write_annotations import AnnotationWriter
    except ImportError as exc:
        raise DatasetError(f"writing Neuroglancer annotations needs the neuroglancer package: {INSTALL}") from exc
    order = [axis_order.index(a) for a in "xyz"]
    space = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[1.0, 1.0, 1.0])
    properties = [neuroglancer.AnnotationPropertySpec(id=name, type="float32") for name in LINE_PROPERTIES]
    writer = AnnotationWriter(space, "line", relationships=["pre_segment", "post_segment"], properties=properties)
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    scale = np.asarray(resolution, dtype=np.float64)
    written = 0
    for i in range(table.num_rows):
        pre, post = int(columns["pre_segment"][i]), int(columns["post_segment"][i])
        a = np.array([columns[f"pre_site_{axis}"][i] for axis in axis_order], dtype=np.float64) * scale
        b = np.array([columns[f"post_site_{axis}"][i] for axis in axis_order], dtype=np.float64) * scale
        if not pre or not post or not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        writer.add_line(
            a[order].tolist(),
            b[order].tolist(),
            id=int(columns["row"][i]),
            pre_segment=[pre],
            post_segment=[post],
            **{name: float(columns[name][i]) for name in LINE_PROPERTIES},
        )
        written += 1
    writer.write(folder)
    return written
