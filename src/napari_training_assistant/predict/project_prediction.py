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
from ..project.errors import ProjectError
from ..project.pixel_values import refuse_unusable_pixels
from ..project.run_options import PredictOptions
from ..project.schemas import PredictionRecord
from ..project.user_input import InputError
from .instances import InstanceSettings, checkpoint_settings
from .onnx_runtime import onnx_model, runtime_parameters
from .tiling import predict_image, probabilities_to_labels
from .volume_prediction import VolumeResult, prepare_volume
from .volume_store import fingerprint_json, read_attributes


def checkpoint_model(project: TrainingProject, checkpoint_id: str, *, runtime: str = "torch", device: Any = None):
    """(record, what the checkpoint says about itself, the network): a checkpoint that can predict images."""
    record, info, path = _applicable_checkpoint(project, checkpoint_id)
    return record, info, network(path, runtime, device)


def network(path: Path, runtime: str = "torch", device: Any = None):
    """The checkpoint file's PyTorch U-Net, or with runtime "onnx" an `OnnxUNet` whose session runs on `device`."""
    return onnx_model(path, device) if runtime == "onnx" else load_model(path)


def _applicable_checkpoint(project: TrainingProject, checkpoint_id: str):
    record = project.checkpoints.get(checkpoint_id)
    path = project.layout.absolute(record.path)
    info = read_checkpoint_info(path)
    info.require_applicable(record.checkpoint_id)
    return record, info, path


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
    instance: InstanceSettings | None = None,
    runtime: str = "torch",
) -> PredictionRecord:
    """Predict `image` with a checkpoint of any kind the project trains (pairs, point windows without a
    centre marker), normalised as it was trained; tiles default to a point model's window size. An
    instance model's objects come from a seeded watershed (`instance` settings, recorded). `runtime`
    "onnx" runs the network exported to ONNX with onnxruntime (recorded with its execution provider)."""
    options = PredictOptions(tile_size=tile_size, overlap=overlap, batch_size=batch_size, device=device, runtime=runtime)
    image = np.asarray(image)
    refuse_unusable_pixels(image, f"image {source}", "replace them (e.g. numpy.nan_to_num) or crop them away")
    record, info, path = _applicable_checkpoint(project, checkpoint_id)
    config = validate_architecture(info.architecture)
    architecture = config.model_dump()
    tile_size = options.tile_for(info.spatial_dims, level_factors(config)) or info.tile_size
    overlap, batch_size = options.overlap, options.batch_size
    image = model_input(
        image, channel_axis, channels=info.input_channels, spatial_dims=info.spatial_dims, source=source, model=record.checkpoint_id
    )
    instance = checkpoint_settings(instance, info.instance_settings, record.checkpoint_id)
    target = _torch_device(device)
    runtime_record = runtime_parameters(options.runtime, target)  # onnxruntime missing: refused before the export
    model = network(path, options.runtime, target)  # everything else checked first: an ONNX export takes seconds
    normalised = normalize(image, info.normalization, channel_axis_first=True)
    started = time.perf_counter()
    probabilities = predict_image(
        model,
        normalised,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        device=target,
    )
    labels = probabilities_to_labels(probabilities, architecture, instance)
    duration = time.perf_counter() - started
    parameters: dict[str, Any] = {
        "tile_size": tile_size,
        "overlap": overlap,
        "batch_size": batch_size,
        "device": device or "auto",
        **runtime_record,
        "normalization": info.normalization,
        "output_mode": architecture["output_mode"],
        "threshold": architecture.get("threshold"),
        **info.prediction_parameters(),
    }
    if architecture["output_mode"] == "instance":
        parameters.update(instance.record(probabilities.ndim - 1), objects=int(labels.max()), instance_tuned=info.instance_settings is not None)
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


def predict_volume_into_project(
    project: TrainingProject,
    source: Any,
    *,
    source_name: str | None = None,
    checkpoint_id: str = "latest",
    output: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    listener: Any = None,
    cancel: Any = None,
    **options: Any,
) -> tuple[PredictionRecord | None, VolumeResult]:
    """Block-wise prediction (`predict_volume`) into the project's `predictions/`, recorded when complete.

    `output` must lie inside the project (default: `predictions/prediction_NNN.zarr`; without one, an
    unfinished output of the same prediction is resumed). Returns (record or None if cancelled, result).
    """
    record = project.checkpoints.get(checkpoint_id)
    prepared = prepare_volume(project.layout.absolute(record.path), source, checkpoint_name=record.checkpoint_id, **options)
    target = _inside_project(project, output) if output is not None else _resumable(project, prepared.fingerprint)
    result = prepared.run(target, scheduler=scheduler, workers=workers, overwrite=overwrite, listener=listener, cancel=cancel)
    if result.status != "completed":
        return None, result
    images = {name: name for name in prepared.layout.images}
    recorded = project.predictions.record_zarr(
        target,
        images=images,
        source=source_name or str(prepared.volume.description["source"]),
        checkpoint_id=record.checkpoint_id,
        shape=[*([prepared.layout.labels_channels] if prepared.layout.labels_channels else []), *result.shape],
        parameters={**result.parameters, "blocks_done": result.blocks - result.blocks_skipped, "blocks_skipped": result.blocks_skipped},
        duration_s=result.seconds,
    )
    return recorded, result


def _inside_project(project: TrainingProject, output: str | Path) -> Path:
    path = Path(output).expanduser().absolute()
    try:
        project.layout.relative(path)
    except ProjectError as exc:
        raise InputError(
            f"--output {output} is outside the project {project.layout.root}: predictions are kept in the project "
            "(default predictions/prediction_NNN.zarr); give a path inside it, or create the project on the disk that "
            "should hold the output"
        ) from exc
    if path.suffix.lower() != ".zarr":
        raise InputError(f"--output {output}: a block-wise prediction is a Zarr folder: end the name with .zarr")
    return path


def _resumable(project: TrainingProject, fingerprint: dict[str, Any]) -> Path:
    """An unfinished `predictions/*.zarr` of the same prediction of a file, else the next free name (an
    in-memory array is known only by its shape and dtype: never taken for another one)."""
    if fingerprint["source"].get("in_memory"):
        return project.predictions.zarr_output()
    for candidate in sorted(project.layout.predictions_dir.glob("*.zarr")):
        attributes = read_attributes(candidate)
        if attributes and attributes.get("status") != "complete" and fingerprint_json(attributes.get("fingerprint", {})) == fingerprint_json(fingerprint):
            return candidate
    return project.predictions.zarr_output()
