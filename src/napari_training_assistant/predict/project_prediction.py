"""Predict an image with a project checkpoint and save the result into `predictions/`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..model import load_model, read_checkpoint_info
from ..model.device import cuda_available, torch_device
from ..model.unet import level_factors, validate_architecture
from ..preprocess import model_input, normalize
from ..project import TrainingProject
from ..project.pixel_values import refuse_unusable_pixels
from ..project.run_options import PredictOptions
from ..project.schemas import PredictionRecord
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
    """Predict `image` with a checkpoint of any kind the project trains (pairs, point windows without a
    centre marker), normalised as it was trained; tiles default to a point model's window size."""
    options = PredictOptions(tile_size=tile_size, overlap=overlap, batch_size=batch_size, device=device)
    image = np.asarray(image)
    refuse_unusable_pixels(image, f"image {source}", "replace them (e.g. numpy.nan_to_num) or crop them away")
    record = project.checkpoints.get(checkpoint_id)
    path = project.layout.absolute(record.path)
    info = read_checkpoint_info(path)
    info.require_applicable(record.checkpoint_id)
    model = load_model(path)
    architecture = model.architecture
    tile_size = options.tile_for(info.spatial_dims, level_factors(validate_architecture(architecture))) or info.tile_size
    overlap, batch_size = options.overlap, options.batch_size
    image = model_input(
        image, channel_axis, channels=info.input_channels, spatial_dims=info.spatial_dims, source=source, model=record.checkpoint_id
    )
    normalised = normalize(image, info.normalization, channel_axis_first=True)
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
        "normalization": info.normalization,
        "output_mode": architecture["output_mode"],
        "threshold": architecture.get("threshold"),
        **info.prediction_parameters(),
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
    """The asked device; `auto` is the GPU when there is one, else the model's own (CPU)."""
    return None if device in (None, "auto") and not cuda_available() else torch_device(device)
