"""A corrected prediction as a training pair: what the user changed is the model's error on that image.

`add_corrected_prediction` reads a TIFF prediction of the project, compares the user's corrected labels with
it (pixels whose label changed; objects, as connected foreground components, that were added, removed or
edited) and adds image + corrected labels through the same mask preparation as every pair, with
`source: corrected_prediction` and that comparison as the pair's `correction` record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ProjectError

if TYPE_CHECKING:
    from .schemas import PairRecord
    from .training_project import TrainingProject


def correction_summary(predicted: np.ndarray, corrected: np.ndarray) -> dict[str, Any]:
    """How much `corrected` differs from `predicted` (label images of one shape)."""
    from scipy import ndimage

    changed = predicted != corrected
    structure = np.ones((3,) * predicted.ndim, bool)
    before, n_before = ndimage.label(predicted > 0, structure=structure)
    after, n_after = ndimage.label(corrected > 0, structure=structure)
    touched_before = np.unique(before[changed & (before > 0)])
    touched_after = np.unique(after[changed & (after > 0)])
    untouched_before = n_before - len(touched_before)
    return {
        "changed_pixels": int(changed.sum()),
        "changed_fraction": round(float(changed.mean()), 6) if changed.size else 0.0,
        "objects_predicted": int(n_before),
        "objects_corrected": int(n_after),
        "objects_edited": int(max(len(touched_before), len(touched_after))),  # added, removed or reshaped
        "objects_kept": int(untouched_before),
    }


def add_corrected_prediction(
    project: TrainingProject, prediction_id: str, mask: np.ndarray, *, image: np.ndarray | None = None, **preparation: Any
) -> PairRecord:
    """Add the prediction's image (`image`, else the file it was predicted from) with the corrected `mask`."""
    from .image_io import read_array, read_tiff

    record = next((p for p in project.predictions.registry.predictions if p.prediction_id == prediction_id), None)
    if record is None:
        known = ", ".join(p.prediction_id for p in project.predictions.registry.predictions[-5:]) or "none"
        raise ProjectError(f"no prediction {prediction_id!r} in this project (latest ones: {known})")
    path = project.layout.absolute(record.path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ProjectError(f"{prediction_id} is a block-wise prediction ({record.path}): correct a crop and add it with nta add-pair")
    predicted = read_tiff(path)
    mask = np.asarray(mask)
    if mask.shape != predicted.shape:
        raise ProjectError(
            f"the corrected labels have shape {mask.shape} but {prediction_id} has {predicted.shape}: correct the prediction's own labels"
        )
    if image is None:
        source = Path(record.source)
        if not source.is_file():
            raise ProjectError(f"{prediction_id} was predicted from {record.source!r}, not a readable file: give the image (--image)")
        image = read_array(source)
    correction = {"prediction_id": prediction_id, "checkpoint_id": record.checkpoint_id, **correction_summary(predicted, mask)}
    return project.dataset.add(image, mask, source="corrected_prediction", correction=correction, **preparation)
