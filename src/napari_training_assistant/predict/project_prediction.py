"""Predict an image with a project checkpoint and save the result into `predictions/`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..model import load_model
from ..model.unet import level_factors, validate_architecture
from ..project import TrainingProject
from ..project.masks import to_channel_first
from ..project.pixel_values import refuse_unusable_pixels
from ..project.run_options import PredictOptions
from ..project.schemas import PredictionRecord
from ..project.user_input import DatasetInputError
from .tiling import predict_image, probabilities_to_labels


def predict_array(
    project: TrainingProject,
    image: np.ndarray,
    *,
    source: str,
    checkpoint_id: str = "latest",
    channel_axis: int | None = None,
    tile_size: int | list[int] | None = None,
    overlap: float = 0.5,
    batch_size: int | None = None,
    device: str | None = None,
    save_probabilities: bool = False,
) -> PredictionRecord:
    from ..train.benchmark import checkpoint_normalization
    from ..train.normalization import normalize

    options = PredictOptions(tile_size=tile_size, overlap=overlap, batch_size=batch_size, device=device)
    image = np.asarray(image)
    refuse_unusable_pixels(image, f"image {source}", "replace them (e.g. numpy.nan_to_num) or crop them away")
    record = project.checkpoints.get(checkpoint_id)
    path = project.layout.absolute(record.path)
    model = load_model(path)
    architecture = model.architecture
    tile_size = options.tile_for(architecture["spatial_dims"], level_factors(validate_architecture(architecture)))
    overlap, batch_size = options.overlap, options.batch_size
    image = to_channel_first(image, channel_axis)
    channels = image.shape[0] if channel_axis is not None else 1
    spatial = image.shape[1:] if channel_axis is not None else image.shape
    expected_dims = 3 if architecture["spatial_dims"] == "3d" else 2
    if channels != architecture["input_channels"] or len(spatial) != expected_dims:
        raise DatasetInputError(
            f"image {source} has shape {tuple(np.shape(image))} ({channels} channel(s), {len(spatial)}D) but "
            f"{record.checkpoint_id} expects {architecture['input_channels']} channel(s), {architecture['spatial_dims']}: "
            "declare the channel axis (`channel_axis`) or choose another checkpoint"
        )
    mode = checkpoint_normalization(path)
    normalised = normalize(image, mode, channel_axis_first=channel_axis is not None)
    if channel_axis is None:
        normalised = normalised[None]
    started = time.perf_counter()
    probabilities = predict_image(
        model,
        normalised,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        device=_torch_device(device),
    )
    labels = probabilities_to_labels(probabilities, architecture)
    duration = time.perf_counter() - started
    parameters: dict[str, Any] = {
        "tile_size": tile_size,
        "overlap": overlap,
        "batch_size": batch_size,
        "device": device or "auto",
        "normalization": mode,
        "output_mode": architecture["output_mode"],
        "threshold": architecture.get("threshold"),
    }
    return project.predictions.save(
        labels,
        source=source,
        checkpoint_id=record.checkpoint_id,
        parameters=parameters,
        probabilities=probabilities if save_probabilities else None,
        duration_s=round(duration, 3),
    )


def predict_file(
    project: TrainingProject, image_path: Path, *, dataset: str | None = None, **options: Any
) -> PredictionRecord:
    from ..project.image_io import read_array

    image = read_array(Path(image_path), dataset=dataset)
    return predict_array(project, image, source=str(image_path), **options)


def _torch_device(device: str | None):
    if device in (None, "auto"):
        import torch

        return torch.device("cuda") if torch.cuda.is_available() else None
    from ..train.options import resolve_device

    accelerator, indices = resolve_device(device)
    import torch

    return torch.device(f"cuda:{indices[0]}" if accelerator == "cuda" and indices else accelerator)
