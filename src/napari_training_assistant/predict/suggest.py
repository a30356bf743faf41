"""What to label next: unlabeled images ranked by how unsure the current model is about them.

Two signals, each in [0, 1], averaged over the image:

* **entropy** of the predicted probabilities, divided by its maximum (binary and multilabel: per channel,
  `log 2`; multiclass: `log C`): high where the model hesitates;
* **flip disagreement** (test-time augmentation): the image is also predicted flipped along each in-plane
  axis, flipped back, and the mean absolute difference of the probabilities to the plain prediction is taken:
  high where the answer depends on the orientation, i.e. is not learned.

The score is their sum; the images are returned most uncertain first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..preprocess import model_input, normalize
from ..project import TrainingProject
from ..project.errors import DatasetError
from ..project.image_io import READABLE_SUFFIXES, read_array
from .project_prediction import checkpoint_model
from .tiling import predict_image


@dataclass(frozen=True)
class Suggestion:
    path: str
    score: float
    entropy: float
    disagreement: float

    def as_dict(self) -> dict[str, float | str]:
        return {"path": self.path, "score": self.score, "entropy": self.entropy, "disagreement": self.disagreement}


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


def suggest(project: TrainingProject, images: list[Path], *, checkpoint_id: str = "latest", tta: bool = True) -> list[Suggestion]:
    """Score every image with the checkpoint; most uncertain first."""
    record, info, model = checkpoint_model(project, checkpoint_id)  # no checkpoint: one line saying to train first
    mode = model.architecture["output_mode"]
    ranked = []
    for image_path in images:
        image = model_input(
            read_array(image_path), None, channels=info.input_channels, spatial_dims=info.spatial_dims, source=str(image_path), model=record.checkpoint_id
        )
        x = normalize(image, info.normalization, channel_axis_first=True)
        plain = predict_image(model, x)
        flipped = [np.flip(predict_image(model, np.ascontiguousarray(np.flip(x, axis))), axis) for axis in (-1, -2)] if tta else []
        entropy, disagreement = normalised_entropy(plain, mode), flip_disagreement(plain, flipped)
        ranked.append(Suggestion(str(image_path), round(entropy + disagreement, 6), round(entropy, 6), round(disagreement, 6)))
    return sorted(ranked, key=lambda s: -s.score)
