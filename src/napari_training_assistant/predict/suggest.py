"""What to label next: unlabeled images ranked by how unsure the current model is about them.

Two signals, each in [0, 1], averaged over the image:

* **entropy** of the predicted probabilities, divided by its maximum (binary and multilabel: per channel,
  `log 2`; multiclass: `log C`): high where the model hesitates;
* **flip disagreement** (test-time augmentation): the image is also predicted flipped along each in-plane
  axis, flipped back, and the mean absolute difference of the probabilities to the plain prediction is taken:
  high where the answer depends on the orientation, i.e. is not learned.

The score is their sum; the images (or tiles of large images) are returned most uncertain first, and the
ranking is kept in the project so that a pair added from a suggested image records its rank and scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..preprocess import model_input, normalize
from ..project import TrainingProject
from ..project.errors import DatasetError
from ..project.image_io import READABLE_SUFFIXES, read_array
from ..project.suggestions import record_suggestions
from ..project.user_input import InputError
from .project_prediction import checkpoint_model
from .tiling import predict_image


@dataclass(frozen=True)
class Suggestion:
    path: str
    score: float
    entropy: float
    disagreement: float
    region: list[list[int]] | None = None  # [start, stop) per spatial axis: a tile of a large image

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "score": self.score, "entropy": self.entropy, "disagreement": self.disagreement}
        if self.region is not None:
            out["region"] = self.region
        return out


def normalised_entropy(probabilities: np.ndarray, output_mode: str) -> float:
    """Mean entropy of (C, *spatial) probabilities over the image, 0 (certain) .. 1 (no idea)."""
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    if output_mode == "multiclass":
        return float((-(p * np.log(p)).sum(axis=0) / np.log(p.shape[0])).mean())
    return float((-(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2)).mean())


def flip_disagreement(probabilities: np.ndarray, flipped: list[np.ndarray]) -> float:
    """Mean absolute difference between the plain prediction and each flipped-back prediction."""
    return float(np.mean([np.abs(probabilities - other).mean() for other in flipped])) if flipped else 0.0


def image_files(folder: Path) -> list[Path]:
    """The images `read_array` reads in `folder` (not recursive), by name."""
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder: give a folder of unlabeled images (--images DIR)")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in READABLE_SUFFIXES)
    if not found:
        raise DatasetError(f"{folder} holds no image ({', '.join(READABLE_SUFFIXES)}): nothing to rank")
    return found


def suggest(
    project: TrainingProject, images: list[Path], *, checkpoint_id: str = "latest", tta: bool = True, tile: int | None = None, record: bool = True
) -> list[Suggestion]:
    """Score every image (or, with `tile`, every tile of `tile` pixels in y and x of an image larger than that)
    with the checkpoint; most uncertain first. `record` keeps the ranking in the project
    (`history/suggestions.json`), so that a pair later added from a suggested image records its rank."""
    if tile is not None and (isinstance(tile, bool) or int(tile) != tile or tile < 16):
        raise InputError(f"--tile {tile}: give a tile size of at least 16 pixels")
    record_, info, model = checkpoint_model(project, checkpoint_id)  # no checkpoint: one line saying to train first
    mode = model.architecture["output_mode"]
    ranked = []
    for image_path in images:
        image = model_input(
            read_array(image_path), None, channels=info.input_channels, spatial_dims=info.spatial_dims, source=str(image_path), model=record_.checkpoint_id
        )
        x = normalize(image, info.normalization, channel_axis_first=True)
        for region in _tiles(x.shape[1:], tile):
            part = np.ascontiguousarray(x[(slice(None), *(slice(a, b) for a, b in region))]) if region else x
            entropy, disagreement = _uncertainty(model, part, mode, tta)
            ranked.append(Suggestion(str(image_path), round(entropy + disagreement, 6), round(entropy, 6), round(disagreement, 6), region))
    ranked.sort(key=lambda s: -s.score)
    if record:
        record_suggestions(project, record_.checkpoint_id, [s.as_dict() for s in ranked])
    return ranked


def _uncertainty(model: Any, x: np.ndarray, mode: str, tta: bool) -> tuple[float, float]:
    plain = predict_image(model, x)
    flipped = [np.flip(predict_image(model, np.ascontiguousarray(np.flip(x, axis))), axis) for axis in (-1, -2)] if tta else []
    return normalised_entropy(plain, mode), flip_disagreement(plain, flipped)


def _tiles(shape: tuple[int, ...], tile: int | None) -> list[list[list[int]] | None]:
    """[None] (the whole image) unless `tile` is smaller than y or x; else a grid of tiles over y and x
    (the last ones aligned to the image end, so every tile is full-sized), all z for 3D."""
    if tile is None or all(n <= tile for n in shape[-2:]):
        return [None]
    starts = [sorted({*range(0, max(n - tile, 0) + 1, tile), max(n - tile, 0)}) for n in shape[-2:]]
    lead = [[0, n] for n in shape[:-2]]
    return [[*lead, [y, min(y + tile, shape[-2])], [x, min(x + tile, shape[-1])]] for y in starts[0] for x in starts[1]]
