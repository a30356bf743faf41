"""PNG montage of validation windows: centre slices of image, target and prediction per channel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def _centre_slice(volume: torch.Tensor):
    """(C, *spatial) -> (C, y, x) numpy at the centre z (2D volumes unchanged)."""
    array = volume.float().numpy()
    return array[:, array.shape[1] // 2] if array.ndim == 4 else array


def write_montage(path: Path, images: torch.Tensor, targets: torch.Tensor, predictions: torch.Tensor, channel_names: Sequence[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = len(images)
    channels = targets.shape[1]
    columns = 1 + 2 * channels
    figure = Figure(figsize=(1.8 * columns, 1.8 * rows), dpi=90)
    axes = figure.subplots(rows, columns, squeeze=False)
    for row in range(rows):
        image, target, prediction = _centre_slice(images[row]), _centre_slice(targets[row]), _centre_slice(predictions[row])
        panels = [(image[0], "image", "gray")]
        for c in range(channels):
            name = channel_names[c] if c < len(channel_names) else f"ch{c}"
            panels += [(target[c], f"{name} target", "magma"), (prediction[c], f"{name} prediction", "magma")]
        for ax, (data, title, cmap) in zip(axes[row], panels, strict=True):
            ax.imshow(data, cmap=cmap, vmin=0 if cmap == "magma" else None, vmax=1 if cmap == "magma" else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
