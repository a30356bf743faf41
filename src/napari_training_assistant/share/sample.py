"""The example an exported model carries: an input cut from one of the project's images (a benchmark pair when
there is one), the model's output on it, and a cover image (input | prediction)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..model.torch_export import minimum_size, size_step
from ..predict.tiling import uses_softmax
from ..preprocess import model_input, normalize
from ..project import TrainingProject
from ..project.dataset import load_pair_arrays
from ..project.errors import DatasetError
from .exportable import Exportable

SAMPLE_EDGE = {2: 256, 3: 64}  # the largest sample per axis
SPLIT_PREFERENCE = ("benchmark", "val", "train")


@dataclass(frozen=True)
class Sample:
    """`raw` (1, C, *spatial) float32 as it is read (before normalisation), `output` (1, C_out, *spatial)
    probabilities, and the pair it was cut from."""

    raw: np.ndarray
    output: np.ndarray
    pair_id: str


def project_sample(project: TrainingProject, source: Exportable) -> Sample:
    """A centred crop of a pair's image whose size every exported weight format takes (a multiple of the
    pooling factor, at least twice it; reflected when the image is smaller), and the checkpoint's output."""
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
    raw = _fit(image.astype(np.float32), source)
    normalised = normalize(raw, info.normalization, channel_axis_first=True)
    with torch.no_grad():
        logits = source.model(torch.from_numpy(normalised)[None])
    activate = (lambda t: torch.softmax(t, dim=1)) if uses_softmax(source.model.architecture) else torch.sigmoid
    return Sample(raw[None], activate(logits).numpy().astype(np.float32), pair.pair_id)


def _rank(split: str) -> int:
    return SPLIT_PREFERENCE.index(split) if split in SPLIT_PREFERENCE else len(SPLIT_PREFERENCE)


def _fit(image: np.ndarray, source: Exportable) -> np.ndarray:
    """Centre crop (reflect-pad when small) of (C, *spatial) to a size the exports take."""
    steps, smallest = size_step(source.model), minimum_size(source.model)
    edge = SAMPLE_EDGE[len(steps)]
    spatial = image.shape[1:]
    size = [max(m, min(s, edge) // f * f) for s, f, m in zip(spatial, steps, smallest, strict=True)]
    pad = [(0, 0)] + [(0, max(0, t - s)) for s, t in zip(spatial, size, strict=True)]
    if any(after for _, after in pad):
        image = np.pad(image, pad, mode="reflect" if all(s > 1 for s in spatial) else "edge")
    starts = [(s - t) // 2 for s, t in zip(image.shape[1:], size, strict=True)]
    return np.ascontiguousarray(image[(slice(None), *(slice(a, a + t) for a, t in zip(starts, size, strict=True)))])


def write_cover(sample: Sample, path: Path) -> None:
    """A 2:1 PNG: the normalised input (first channel; middle plane in 3D) beside the prediction (foreground
    probability in magenta over the input)."""
    from PIL import Image

    raw = sample.raw[0, 0]
    prob = sample.output[0, 1:].max(axis=0) if sample.output.shape[1] > 1 and _softmax_like(sample) else sample.output[0, 0]
    if raw.ndim == 3:
        raw, prob = raw[raw.shape[0] // 2], prob[prob.shape[0] // 2]
    low, high = np.percentile(raw, (1, 99.8))
    grey = np.clip((raw - low) / max(high - low, 1e-6), 0, 1)
    overlay = np.stack([np.maximum(grey, prob), grey * (1 - prob), np.maximum(grey, prob)], axis=-1)
    montage = np.concatenate([np.repeat(grey[..., None], 3, axis=-1), overlay], axis=1)
    image = Image.fromarray((montage * 255).astype(np.uint8))
    height = 256
    image.resize((2 * height, height), Image.Resampling.NEAREST).save(path)


def _softmax_like(sample: Sample) -> bool:
    """Channels summing to one (multiclass): the cover shows the non-background classes."""
    return bool(np.allclose(sample.output[0].sum(axis=0), 1.0, atol=1e-3))
