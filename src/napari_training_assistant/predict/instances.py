"""Instance labels from an instance model's foreground and boundary probabilities (seeded watershed).

An instance model predicts two sigmoid channels: foreground (inside any object) and boundary (the rim of
each object, where touching objects meet). Objects are recovered in three steps:

1. seeds: connected components of ``foreground > foreground_threshold`` and ``boundary < boundary_threshold``
   (object cores), those smaller than `min_seed_size` dropped;
2. the seeds grow over the boundary probability (`skimage.segmentation.watershed`) within the foreground,
   so touching objects meet where the boundary is strongest; foreground pieces that hold no seed become
   objects of their own;
3. objects smaller than `min_size` are removed and ids renumbered 1..N (uint32).

`targets_from_instances` makes the training target of the same two channels from an instance label image,
so training and post-processing agree on what "boundary" means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_SIZE = {2: 12, 3: 40}  # voxels: smaller objects are noise (defaults per spatial dimensionality)


@dataclass(frozen=True)
class InstanceSettings:
    """Post-processing parameters, recorded with every instance prediction."""

    foreground_threshold: float = 0.5
    boundary_threshold: float = 0.5
    min_size: int | None = None  # None: MIN_SIZE for the image's dimensionality
    min_seed_size: int | None = None  # None: a quarter of min_size

    def __post_init__(self) -> None:
        for name in ("foreground_threshold", "boundary_threshold"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must lie in (0, 1), got {value}")
        for name in ("min_size", "min_seed_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
                raise ValueError(f"{name} must be an integer >= 0, got {value}")

    def resolved(self, spatial_dims: int) -> InstanceSettings:
        """The same settings with the size defaults filled in for a `spatial_dims`-D image."""
        min_size = MIN_SIZE[spatial_dims] if self.min_size is None else int(self.min_size)
        seed = max(1, min_size // 4) if self.min_seed_size is None else int(self.min_seed_size)
        return InstanceSettings(self.foreground_threshold, self.boundary_threshold, min_size, seed)

    def record(self, spatial_dims: int) -> dict[str, float | int]:
        return {f"instance_{k}": v for k, v in asdict(self.resolved(spatial_dims)).items()}


def instance_labels(probabilities: np.ndarray, settings: InstanceSettings | None = None) -> np.ndarray:
    """uint32 instance labels (*spatial) from (2, *spatial) foreground/boundary probabilities."""
    from scipy import ndimage
    from skimage.segmentation import relabel_sequential, watershed

    probabilities = np.asarray(probabilities)
    if probabilities.ndim not in (3, 4) or probabilities.shape[0] != 2:
        raise ValueError(f"instance probabilities must be (2, *spatial) foreground and boundary; got {probabilities.shape}")
    nd = probabilities.ndim - 1
    s = (settings or InstanceSettings()).resolved(nd)
    foreground = probabilities[0] > s.foreground_threshold
    boundary = probabilities[1].astype(np.float32, copy=False)
    if not foreground.any():
        return np.zeros(foreground.shape, np.uint32)
    cores, _ = ndimage.label(foreground & (boundary < s.boundary_threshold))
    cores = _drop_small(cores, s.min_seed_size)
    grown = watershed(boundary, markers=cores, mask=foreground)
    orphans, count = ndimage.label(foreground & (grown == 0))
    if count:
        grown = np.where(orphans > 0, orphans + grown.max(), grown)
    grown = _drop_small(grown, s.min_size)
    labels, _, _ = relabel_sequential(grown.astype(np.uint32, copy=False))
    return labels.astype(np.uint32, copy=False)


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """`labels` with every object of fewer than `min_size` voxels set to 0."""
    if min_size <= 1:
        return labels
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    return np.where(small[labels], 0, labels) if small.any() else labels


def targets_from_instances(labels: np.ndarray) -> np.ndarray:
    """(2, *spatial) float32 foreground and boundary targets of an instance label image (any ids).

    Boundary: object voxels with a face neighbour of another id or of the background (`find_boundaries`
    mode ``inner``), so two touching objects are separated by a two-voxel rim of boundary. Crop edges are
    not boundaries (the label image is reflected there).
    """
    from skimage.segmentation import find_boundaries

    labels = np.asarray(labels)
    foreground = labels > 0
    rim = find_boundaries(labels, connectivity=1, mode="inner") & foreground
    return np.stack([foreground, rim]).astype(np.float32)
