"""Point-windowed sampling: regions cached once, windows centred on synapse annotations."""

from .indexer import CachedPointIndexer
from .region_cache import CachedRegion, LayerSet, RegionCacheReport, cache_regions
from .window_dataset import PointWindowDataset, TargetForm

__all__ = [
    "CachedPointIndexer",
    "CachedRegion",
    "LayerSet",
    "PointWindowDataset",
    "RegionCacheReport",
    "TargetForm",
    "cache_regions",
]
