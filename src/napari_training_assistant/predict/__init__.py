"""Whole-image prediction: sliding-window tiling with Gaussian blending, and label conversion."""

from .tiling import iter_tiles, predict_image, probabilities_to_labels

__all__ = ["iter_tiles", "predict_image", "probabilities_to_labels"]
