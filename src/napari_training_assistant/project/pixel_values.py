"""Refuse pixel values that no training or prediction can use: complex, non-numeric, NaN, +-inf."""

from __future__ import annotations

import numpy as np

from .errors import DatasetError


def refuse_unusable_pixels(array: np.ndarray, what: str, fix: str) -> None:
    """Raise `DatasetError` ('<what> has ...: <fix>') unless `array` holds real, finite numbers."""
    dtype = array.dtype
    if dtype.kind == "c":
        raise DatasetError(f"{what} has complex values (dtype {dtype}): give a real image, e.g. its magnitude (numpy.abs)")
    if dtype.kind not in "biuf":
        raise DatasetError(f"{what} has dtype {dtype}, not numbers: give a numeric image")
    if dtype.kind != "f":
        return
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        nan = int(np.count_nonzero(np.isnan(array)))
        raise DatasetError(
            f"{what} has {bad} non-finite value(s) of {array.size} ({nan} NaN, {bad - nan} infinite): {fix}"
        )
