"""Binary encodings of Neuroglancer precomputed annotations (all little-endian).

* one annotation: float32 geometry (``rank`` values for points, ``2 * rank`` for lines, boxes and
  ellipsoids: two corners / centre + radii), then the properties - first the 4-byte types
  (uint32, int32, float32), then the 2-byte ones (uint16, int16), then the 1-byte ones (uint8,
  int8, rgb, rgba), each group in declaration order - zero-padded to a multiple of 4 bytes;
* spatial cells and relationship index entries: uint64 count, the annotations, then their uint64 ids;
* ``by_id`` entries: one annotation followed, for each declared relationship, by a uint32 count and
  that many uint64 segment ids.

Sharded spatial indexes are keyed by the compressed Morton code of the cell.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from .precomputed_info import _PROPERTY_TYPES, AnnotationLayerInfo, IndexSpec, _fail

__all__ = ["compressed_morton_code"]


# ------------------------------------------------------------------------------------- encoding
def compressed_morton_code(cell: Sequence[int], grid_shape: Sequence[int]) -> int:
    """Compressed Morton code of a grid cell: bits of each coordinate interleaved (dimension 0
    first, low bits first), skipping a dimension once its ceil(log2(grid_shape)) bits are used."""
    bits = [max(int(g) - 1, 0).bit_length() for g in grid_shape]
    code, out = 0, 0
    for bit in range(max(bits, default=0)):
        for d, nbits in enumerate(bits):
            if bit < nbits:
                code |= ((int(cell[d]) >> bit) & 1) << out
                out += 1
    return code


def _record_dtype(info: AnnotationLayerInfo) -> np.dtype:
    n_geometry = info.rank if info.annotation_type == "point" else 2 * info.rank
    names, formats, offsets = ["geometry"], [("<f4", (n_geometry,))], [0]
    offset = 4 * n_geometry
    for group in (4, 2, 1):
        for i, p in enumerate(info.properties):
            dtype, alignment = _PROPERTY_TYPES[p.type]
            if alignment == group:
                names.append(f"p{i}")
                formats.append(dtype)
                offsets.append(offset)
                offset += np.dtype(dtype).itemsize
    itemsize = -(-offset // 4) * 4
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


def _decode_multiple(location: str, what: str, data: bytes, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    if len(data) < 8:
        raise _fail(location, f"{what} is truncated ({len(data)} bytes)", "rewrite the layer")
    (count,) = struct.unpack_from("<Q", data)
    need = 8 + count * (dtype.itemsize + 8)
    if len(data) < need:
        raise _fail(
            location, f"{what} holds {len(data)} bytes, {count} annotations need {need}", "rewrite the layer"
        )
    records = np.frombuffer(data, dtype=dtype, count=count, offset=8)
    ids = np.frombuffer(data, dtype="<u8", count=count, offset=8 + count * dtype.itemsize)
    return records, ids


def _decode_single(
    location: str, what: str, data: bytes, dtype: np.dtype, relationships: Sequence[IndexSpec]
) -> tuple[np.ndarray, dict[str, list[int]]]:
    if len(data) < dtype.itemsize:
        raise _fail(location, f"{what} is truncated ({len(data)} bytes)", "rewrite the layer")
    record = np.frombuffer(data, dtype=dtype, count=1)
    offset = dtype.itemsize
    related: dict[str, list[int]] = {}
    for rel in relationships:
        if len(data) < offset + 4:
            raise _fail(location, f"{what} ends before relationship {rel.id!r}", "rewrite the layer")
        (count,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if len(data) < offset + 8 * count:
            raise _fail(location, f"{what} ends inside relationship {rel.id!r}", "rewrite the layer")
        related[rel.id] = [int(v) for v in np.frombuffer(data, dtype="<u8", count=count, offset=offset)]
        offset += 8 * count
    return record, related


def _python_value(value: Any, ptype: str) -> Any:
    if ptype in ("rgb", "rgba"):
        return tuple(int(v) for v in value)
    if ptype == "float32":
        return float(value)
    return int(value)
