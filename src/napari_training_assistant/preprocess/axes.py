"""Axis and channel alignment: an image as the (C, *spatial) array a model takes.

`to_channel_first` and `spatial_shape` parse a declared channel axis; they live in `project.masks`
(the bottom layer, which prepares pairs with them) and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from ..project.masks import spatial_shape, to_channel_first
from ..project.user_input import DatasetInputError

__all__ = ["model_input", "spatial_shape", "to_channel_first", "with_channel_axis"]


def with_channel_axis(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """(C, *spatial): the declared channel axis moved first, or a new axis of one channel without one."""
    image = to_channel_first(image, channel_axis)
    return image if channel_axis is not None else image[None]


def model_input(
    image: np.ndarray, channel_axis: int | None, *, channels: int, spatial_dims: str, source: str, model: str
) -> np.ndarray:
    """`image` as (C, *spatial) for `model`, which takes `channels` channels of '2d'/'3d' data.

    Anything else is a one-line `DatasetInputError` naming the shape and what `model` expects.
    """
    aligned = with_channel_axis(image, channel_axis)
    have, spatial = aligned.shape[0], aligned.shape[1:]
    if have != channels or len(spatial) != (3 if spatial_dims == "3d" else 2):
        shown = aligned.shape if channel_axis is not None else aligned.shape[1:]
        raise DatasetInputError(
            f"image {source} has shape {shown} ({have} channel(s), {len(spatial)}D) but {model} expects "
            f"{channels} channel(s), {spatial_dims}: declare the channel axis (`channel_axis`) or choose another checkpoint"
        )
    return aligned
