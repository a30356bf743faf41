"""`predictions/`: numbered prediction TIFFs and their registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .clock import now
from .image_io import write_tiff
from .rebuild import write_sidecar
from .schemas import PredictionRecord, PredictionRegistry
from .storage import write_model

if TYPE_CHECKING:
    from .handle import ProjectFiles


class Predictions:
    def __init__(self, project: ProjectFiles):
        self._project = project
        self._layout = project.layout

    @property
    def registry(self) -> PredictionRegistry:
        path = self._layout.prediction_registry
        if not path.exists():  # projects created before predictions were registered
            return PredictionRegistry()
        return self._project.read(path, PredictionRegistry)

    def save(
        self,
        labels: np.ndarray,
        *,
        source: str,
        checkpoint_id: str,
        parameters: dict[str, Any],
        probabilities: np.ndarray | None = None,
        duration_s: float | None = None,
    ) -> PredictionRecord:
        """Write `prediction_NNN.tif` (and optionally its probabilities) and record it."""
        with self._project.locked():
            registry = self.registry
            number = registry.next_number
            while (self._layout.predictions_dir / f"prediction_{number:03d}.tif").exists():
                number += 1
            path = self._layout.predictions_dir / f"prediction_{number:03d}.tif"
            write_tiff(path, labels)
            prob_path = None
            if probabilities is not None:
                prob_path = self._layout.predictions_dir / f"prediction_{number:03d}_probabilities.tif"
                write_tiff(prob_path, probabilities.astype(np.float32))
            record = PredictionRecord(
                prediction_id=f"prediction_{number:03d}",
                path=self._layout.relative(path),
                probabilities_path=self._layout.relative(prob_path) if prob_path else None,
                source=source,
                checkpoint_id=checkpoint_id,
                created_at=now(),
                shape=list(labels.shape),
                parameters=parameters,
                duration_s=duration_s,
            )
            write_sidecar(path, record)  # the registry can be rebuilt from it (nta doctor)
            registry.predictions.append(record)
            registry.next_number = number + 1
            write_model(self._layout.prediction_registry, registry)
        return record
