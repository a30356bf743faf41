"""Preprocessing shared by training, prediction and benchmarks (numpy only): every normalisation mode,
recorded in checkpoints and read back by `model.read_checkpoint_info`, and the axis/channel alignment."""

from .axes import model_input, spatial_shape, to_channel_first, with_channel_axis
from .normalization import MODES, NormalizationMode, NormalizationStats, apply_stats, compute_stats, normalize

__all__ = [
    "MODES",
    "NormalizationMode",
    "NormalizationStats",
    "apply_stats",
    "compute_stats",
    "model_input",
    "normalize",
    "spatial_shape",
    "to_channel_first",
    "with_channel_axis",
]
