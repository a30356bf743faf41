"""A corrected prediction as a training pair: what the user changed is the model's error on that image.

`add_corrected_prediction` reads a TIFF prediction of the project, compares the user's corrected labels with
it (pixels whose label changed; objects, instance ids or connected foreground components, that were added,
removed or edited) and adds image + corrected labels through the same mask preparation as every pair, with
`source: corrected_prediction` and that comparison as the pair's `correction` record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ProjectError
from .suggestions import suggestion_for

if TYPE_CHECKING:
    from .schemas import PairRecord
    from .training_project import TrainingProject


def correction_summary(predicted: np.ndarray, corrected: np.ndarray) -> dict[str, Any]:
    """How much `corrected` differs from `predicted` (label images of one shape); objects are instance ids
    when a label image holds several, else connected foreground components."""
    changed = predicted != corrected
    before, n_before = _objects(predicted)
    after, n_after = _objects(corrected)
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


def _objects(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """(object ids, count): the ids of an instance label image, else connected foreground components."""
    from scipy import ndimage

    ids = np.unique(labels)
    if np.count_nonzero(ids) > 1:
        return labels, int(np.count_nonzero(ids))
    found, count = ndimage.label(labels > 0, structure=np.ones((3,) * labels.ndim, bool))
    return found, int(count)


def add_corrected_prediction(
    project: TrainingProject, prediction_id: str, mask: np.ndarray, *, image: np.ndarray | None = None, **preparation: Any
) -> PairRecord:
    """Add the prediction's image (`image`, else the file it was predicted from) with the corrected `mask`, to
    the train split unless `split` is given (an image picked for its errors would bias the frozen benchmark)."""
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
    preparation.setdefault("suggestion", suggestion_for(project, record.source))
    preparation.setdefault("split", "train")  # the model's errors are for training; a picked image would bias the benchmark
    return project.dataset.add(image, mask, source="corrected_prediction", correction=correction, **preparation)
