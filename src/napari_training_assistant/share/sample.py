"""The example an exported model carries: its input(s) cut from the data it was trained on (a benchmark pair
when there is one; for point models a window on a synapse of their volume, with the centre marker), the
model's output on them, and a cover image (input | prediction)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.torch_export import input_names, minimum_size, size_step
from ..predict.tiling import uses_softmax
from ..preprocess import model_input, normalize
from ..project import TrainingProject
from ..project.dataset import load_pair_arrays
from ..project.errors import DatasetError, ProjectError
from .exportable import Exportable

SAMPLE_EDGE = {2: 256, 3: 64}  # the largest sample per axis
SPLIT_PREFERENCE = ("benchmark", "val", "train")


@dataclass(frozen=True)
class Sample:
    """`inputs`: tensor id -> (1, C, *spatial) float32 as read (before normalisation); `output` (1, C_out,
    *spatial) probabilities; `origin` says where it was cut; `dtype` is the source's (it decides the
    normalisation of point models)."""

    inputs: dict[str, np.ndarray]
    output: np.ndarray
    origin: str
    dtype: str


def project_sample(project: TrainingProject, source: Exportable) -> Sample:
    """A centred crop whose size every exported weight format takes (a multiple of the pooling factor, at
    least twice it; reflected when the image is smaller), and the checkpoint's output on it, normalised the
    way the package's preprocessing does (`package_normalization`)."""
    if source.info.training_mode == "point_windows":
        image, marker, origin = _point_window(source)
    else:
        image, origin = _pair_crop(project, source)
        marker = None
    mode = package_normalization(source.info.normalization, image.dtype)
    network_input = normalize(image, mode, channel_axis_first=True)
    raw = {"input": image.astype(np.float32)[None]}
    if marker is not None:
        raw["marker"] = marker[None]
        network_input = np.concatenate([network_input, marker])
    assert list(raw) == input_names(source.model, marker is not None)
    with torch.no_grad():
        logits = source.model(torch.from_numpy(network_input)[None])
    activate = (lambda t: torch.softmax(t, dim=1)) if uses_softmax(source.model.architecture) else torch.sigmoid
    return Sample(raw, activate(logits).numpy().astype(np.float32), origin, str(image.dtype))


def package_normalization(mode: str, dtype: Any) -> str:
    """The normalisation a package applies for a checkpoint's `mode`: the same, except `region` (a whole
    volume's statistics) becomes the percentiles of each input unless the data is 8-bit (then exact: /255)."""
    if mode == "region" and np.dtype(dtype) != np.uint8:
        return "percentile"
    return mode


def _pair_crop(project: TrainingProject, source: Exportable) -> tuple[np.ndarray, str]:
    pairs = sorted(project.dataset.pairs, key=lambda p: (_rank(p.split), p.pair_id))
    if not pairs:
        raise DatasetError(f"{project.root} has no pairs to cut the exported model's test input from: add a pair")
    pair = pairs[0]
    image, _ = load_pair_arrays(project, pair)
    info = source.info
    image = model_input(
        image,
        0 if pair.image_channels is not None else None,
        channels=info.input_channels,
        spatial_dims=info.spatial_dims,
        source=pair.pair_id,
        model=source.record.checkpoint_id,
    )
    return _fit(image, source), f"{pair.split} pair {pair.pair_id}"


def _point_window(source: Exportable) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A window of the training volume centred on its first synapse (size fitted to the pooling factor), and
    the centre marker when the model takes one."""
    from ..data.geometry import centred_window
    from ..data.point_windows.window_dataset import marker_ball
    from ..train.point_inputs import open_layers, read_synapses
    from ..train.point_spec import PointSpec

    settings = source.record.settings
    try:
        spec = PointSpec.model_validate(settings["spec"])
        base = Path(settings["spec_path"]).parent
        layers, points = open_layers(spec, base)
        synapses = read_synapses(points, spec)
    except (KeyError, ValueError, OSError, ProjectError) as exc:
        raise DatasetError(
            f"checkpoint {source.record.checkpoint_id}: the volume it was trained on cannot be read for the "
            f"package's test input ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    if not synapses:
        raise DatasetError(f"checkpoint {source.record.checkpoint_id}: its spec names no synapse to centre the test input on")
    size = _fitted_size(spec.window_size, source)
    point = synapses[0].point(spec.line_point)
    box = centred_window(point, size)
    image = layers.image.read(box)[None]
    marker = None
    if source.info.centre_marker:
        marker = marker_ball(size, [p - s for p, s in zip(point, box.start, strict=True)])[None]
    return image, marker, f"synapse {synapses[0].id} of {settings['spec_path']}"


def _rank(split: str) -> int:
    return SPLIT_PREFERENCE.index(split) if split in SPLIT_PREFERENCE else len(SPLIT_PREFERENCE)


def _fitted_size(spatial: Any, source: Exportable) -> list[int]:
    steps, smallest = size_step(source.model), minimum_size(source.model)
    edge = SAMPLE_EDGE[len(steps)]
    return [max(m, min(int(s), edge) // f * f) for s, f, m in zip(spatial, steps, smallest, strict=True)]


def _fit(image: np.ndarray, source: Exportable) -> np.ndarray:
    """Centre crop (reflect-pad when small) of (C, *spatial) to a size the exports take."""
    spatial = image.shape[1:]
    size = _fitted_size(spatial, source)
    pad = [(0, 0)] + [(0, max(0, t - s)) for s, t in zip(spatial, size, strict=True)]
    if any(after for _, after in pad):
        image = np.pad(image, pad, mode="reflect" if all(s > 1 for s in spatial) else "edge")
    starts = [(s - t) // 2 for s, t in zip(image.shape[1:], size, strict=True)]
    return np.ascontiguousarray(image[(slice(None), *(slice(a, a + t) for a, t in zip(starts, size, strict=True)))])


def write_cover(sample: Sample, path: Path, *, instance: bool = False) -> None:
    """A 2:1 PNG: the input (first channel; middle plane in 3D) beside the prediction (the foreground, or the
    classes beyond background, in magenta over the input)."""
    from PIL import Image

    raw = sample.inputs["input"][0, 0]
    output = sample.output[0][:1] if instance else sample.output[0]
    prob = output[1:].max(axis=0) if output.shape[0] > 1 and _sums_to_one(output) else output.max(axis=0)
    if raw.ndim == 3:
        raw, prob = raw[raw.shape[0] // 2], prob[prob.shape[0] // 2]
    low, high = np.percentile(raw, (1, 99.8))
    grey = np.clip((raw - low) / max(high - low, 1e-6), 0, 1)
    overlay = np.stack([np.maximum(grey, prob), grey * (1 - prob), np.maximum(grey, prob)], axis=-1)
    montage = np.concatenate([np.repeat(grey[..., None], 3, axis=-1), overlay], axis=1)
    height = 256
    Image.fromarray((montage * 255).astype(np.uint8)).resize((2 * height, height), Image.Resampling.NEAREST).save(path)


def _sums_to_one(output: np.ndarray) -> bool:
    """Channels summing to one (multiclass): the cover shows the classes beyond background."""
    return bool(np.allclose(output.sum(axis=0), 1.0, atol=1e-3))
