"""Synapses from napari layers and CSV files (already in voxel units of the caller's axis order).

CSV headers (case-insensitive, surrounding spaces ignored, columns in any order; the axis names
are the letters of `axis_order`, shown here for "zyx"):

* points: ``z,y,x``;
* lines (first point -> second point, e.g. pre -> post): ``z1,y1,x1,z2,y2,x2``, or
  ``start_z,...,end_x``, or ``z_start,...,x_end``, or ``pre_z,...,post_x``;
* an optional ``id`` column (integers stay integers, other text is kept as a string; ids must be
  unique); without it ids are the 0-based row numbers;
* every other column becomes a property (int, then float, else text; empty cells -> None).

A ``.tsv`` file is read tab-separated, anything else comma-separated.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_training_assistant.project.errors import DatasetError

from .types import Synapse

__all__ = ["read_csv_synapses", "synapses_from_napari_lines", "synapses_from_napari_points"]

LINE_HEADER_STYLES: tuple[tuple[str, str], ...] = (
    ("{a}1", "{a}2"),
    ("start_{a}", "end_{a}"),
    ("{a}_start", "{a}_end"),
    ("pre_{a}", "post_{a}"),
)


def _python(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _columns(properties: Mapping[str, Any] | None, n: int, where: str) -> dict[str, list[Any]]:
    if properties is None:
        return {}
    out = {}
    for name, values in properties.items():
        try:
            column = list(values)
        except TypeError:
            raise DatasetError(
                f"{where}: property {name!r} is not a list of values; give one value per annotation"
            ) from None
        if len(column) != n:
            raise DatasetError(
                f"{where}: property {name!r} has {len(column)} values for {n} annotations; give one value per annotation"
            )
        out[str(name)] = [_python(v) for v in column]
    return out


def _split_properties(columns: dict[str, list[Any]], row: int) -> tuple[Any, dict[str, Any]]:
    ident = columns["id"][row] if "id" in columns else row
    return ident, {k: v[row] for k, v in columns.items() if k != "id"}


def synapses_from_napari_points(data: Any, properties: Mapping[str, Any] | None = None) -> list[Synapse]:
    """A napari Points layer's `data` ((N, D) voxels) and `properties`/`features` (column -> N
    values) as point Synapses; an `id` property gives the ids, else the row numbers."""
    points = np.asarray(data, dtype=np.float64)
    if points.ndim != 2:
        raise DatasetError(
            f"napari points: data has shape {points.shape}, not (N, D); pass the Points layer's data"
        )
    columns = _columns(properties, len(points), "napari points")
    out = []
    for row, p in enumerate(points):
        ident, props = _split_properties(columns, row)
        out.append(Synapse(ident, tuple(float(v) for v in p), None, props))
    return out


def synapses_from_napari_lines(
    data: Sequence[Any], shape_types: Sequence[str] | str, properties: Mapping[str, Any] | None = None
) -> list[Synapse]:
    """A napari Shapes layer's `data` (list of (2, D) vertex arrays) and `shape_type` as line
    Synapses (start = first vertex). Only 'line' shapes and 2-vertex 'path' shapes are accepted."""
    types = [shape_types] * len(data) if isinstance(shape_types, str) else list(shape_types)
    if len(types) != len(data):
        raise DatasetError(
            f"napari shapes: {len(data)} shapes but {len(types)} shape types; pass the layer's data and shape_type together"
        )
    columns = _columns(properties, len(data), "napari shapes")
    out: list[Synapse] = []
    ndim = None
    for i, (vertices, kind) in enumerate(zip(data, types, strict=True)):
        v = np.asarray(vertices, dtype=np.float64)
        if kind not in ("line", "path") or v.ndim != 2 or v.shape[0] != 2:
            count = v.shape[0] if v.ndim == 2 else "?"
            raise DatasetError(
                f"napari shapes: shape {i} is a {kind!r} with {count} vertices; synapses must be 'line' shapes "
                "(or 2-vertex paths): delete or redraw it as a line"
            )
        if ndim is not None and v.shape[1] != ndim:
            raise DatasetError(
                f"napari shapes: shape {i} has {v.shape[1]} axes, earlier shapes {ndim}; use one layer per image"
            )
        ndim = v.shape[1]
        ident, props = _split_properties(columns, i)
        out.append(Synapse(ident, tuple(float(x) for x in v[0]), tuple(float(x) for x in v[1]), props))
    return out


# ------------------------------------------------------------------------------------------ CSV
def _parse_cell(text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _expected_headers(axes: list[str]) -> str:
    points = ",".join(axes)
    lines = " or ".join(
        ",".join([a.format(a=x) for x in axes] + [b.format(a=x) for x in axes]) for a, b in LINE_HEADER_STYLES
    )
    return f"{points!r} for points, or {lines} for lines"


def _coordinate_columns(path: Path, header: list[str], axes: list[str]) -> tuple[list[int], list[int] | None]:
    index = {name: i for i, name in enumerate(header)}
    point = [index.get(a) for a in axes]
    full_point = all(i is not None for i in point)
    lines = []
    partial: list[str] = []
    for first, second in LINE_HEADER_STYLES:
        names = [first.format(a=a) for a in axes] + [second.format(a=a) for a in axes]
        present = [n for n in names if n in index]
        if len(present) == len(names):
            lines.append([index[n] for n in names])
        elif present:
            partial.append(f"{', '.join(n for n in names if n not in index)} (next to {', '.join(present)})")
    if full_point and lines:
        raise DatasetError(
            f"{path}: header has both point columns {','.join(axes)} and line columns; keep one set (rename the other)"
        )
    if len(lines) > 1:
        raise DatasetError(f"{path}: header has two sets of line columns; keep one set")
    if lines:
        n = len(axes)
        return lines[0][:n], lines[0][n:]
    if full_point:
        return [i for i in point if i is not None], None
    missing = f"; missing {'; '.join(partial)}" if partial else ""
    raise DatasetError(
        f"{path}: header {','.join(header)} names no coordinate columns for axes {''.join(axes)!r}{missing}; "
        f"expected {_expected_headers(axes)}"
    )


def read_csv_synapses(path: str | Path, axis_order: str | Sequence[str]) -> list[Synapse]:
    """Point or line synapses from a CSV whose header names the axes (see the module docstring)."""
    path = Path(path)
    axes = [a.lower() for a in axis_order]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(
            f"{path}: cannot read the CSV ({exc}); check the path and that it is UTF-8 text"
        ) from exc
    if not rows:
        raise DatasetError(f"{path}: the file is empty; expected a header with {_expected_headers(axes)}")
    header = [h.strip().lower() for h in rows[0]]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise DatasetError(
            f"{path}: header repeats column(s) {', '.join(duplicated)}; give each column one name"
        )
    starts, ends = _coordinate_columns(path, header, axes)
    used = set(starts) | set(ends or []) | ({header.index("id")} if "id" in header else set())
    extra = [i for i in range(len(header)) if i not in used]
    out: list[Synapse] = []
    seen: dict[Any, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetError(
                f"{path} line {line_no}: {len(row)} cells for {len(header)} columns; fix the row"
            )

        def coords(columns: list[int], line_no: int = line_no, row: list[str] = row) -> tuple[float, ...]:
            values = []
            for c in columns:
                try:
                    v = float(row[c])
                except ValueError:
                    raise DatasetError(
                        f"{path} line {line_no}: column {header[c]!r} holds {row[c]!r}, not a number; fix the value"
                    ) from None
                if not math.isfinite(v):
                    raise DatasetError(
                        f"{path} line {line_no}: column {header[c]!r} is {row[c]!r}; give a finite number"
                    )
                values.append(v)
            return tuple(values)

        if "id" in header:
            ident = _parse_cell(row[header.index("id")])
            if ident is None:
                raise DatasetError(f"{path} line {line_no}: the id cell is empty; give every row an id")
            if isinstance(ident, float):
                ident = row[header.index("id")].strip()
        else:
            ident = len(out)
        if ident in seen:
            raise DatasetError(
                f"{path} line {line_no}: id {ident!r} repeats line {seen[ident]}; make ids unique"
            )
        seen[ident] = line_no
        props = {header[c]: _parse_cell(row[c]) for c in extra}
        out.append(Synapse(ident, coords(starts), coords(ends) if ends is not None else None, props))
    return out
