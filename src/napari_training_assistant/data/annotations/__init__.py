"""Synapse annotations and tagged regions: napari layers, CSV, JSON and Neuroglancer precomputed layers.

Everything returned is in voxel coordinates of the caller's `axis_order` (e.g. "zyx"); precomputed
layers are converted from their `dimensions` (x/y/z with length units) at the caller's `resolution`
(nm per axis of `axis_order`).
"""

from .precomputed import (
    ANNOTATION_TYPES,
    AnnotationLayerInfo,
    IndexSpec,
    PropertySpec,
    SpatialLevel,
    compressed_morton_code,
    read_annotation_by_id,
    read_annotation_info,
    read_precomputed_annotations,
    read_related_annotations,
)
from .regions import read_precomputed_regions, read_regions_json, regions_from_napari_shapes
from .sources import read_csv_synapses, synapses_from_napari_lines, synapses_from_napari_points
from .types import LINE_POINTS, LinePoint, Region, Synapse, points_in_box

__all__ = [
    "ANNOTATION_TYPES",
    "LINE_POINTS",
    "AnnotationLayerInfo",
    "IndexSpec",
    "LinePoint",
    "PropertySpec",
    "Region",
    "SpatialLevel",
    "Synapse",
    "compressed_morton_code",
    "points_in_box",
    "read_annotation_by_id",
    "read_annotation_info",
    "read_csv_synapses",
    "read_precomputed_annotations",
    "read_precomputed_regions",
    "read_regions_json",
    "read_related_annotations",
    "regions_from_napari_shapes",
    "synapses_from_napari_lines",
    "synapses_from_napari_points",
]
