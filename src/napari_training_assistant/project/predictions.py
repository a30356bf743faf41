"""`predictions/`: numbered predictions (TIFFs, or OME-Zarr folders of block-wise runs) and their registry."""

from __future__ import annotations

import re
from pathlib import Path
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

    def zarr_output(self, name: str | None = None) -> Path:
        """Where a block-wise prediction is written: `predictions/<name>` or the next free `prediction_NNN.zarr`."""
        if name:
            return self._layout.predictions_dir / name
        number = self.registry.next_number
        while any(self._layout.predictions_dir.glob(f"prediction_{number:03d}.*")):
            number += 1
        return self._layout.predictions_dir / f"prediction_{number:03d}.zarr"

    def record_zarr(
        self,
        output: Path,
        *,
        images: dict[str, str],
        source: str,
        checkpoint_id: str,
        shape: list[int],
        parameters: dict[str, Any],
        duration_s: float | None,
    ) -> PredictionRecord:
        """Record a finished block-wise prediction in `output` (a folder inside the project) whose OME-Zarr
        images are `images` (name -> subfolder: 'labels' and/or 'probabilities')."""
        with self._project.locked():
            registry = self.registry
            relative = self._layout.relative(output)
            for known in registry.predictions:
                if known.path.split("/")[: len(Path(relative).parts)] == list(Path(relative).parts):
                    return known  # already recorded (the same finished prediction asked for again)
            match = re.fullmatch(r"prediction_(\d+)\.zarr", output.name)
            number = int(match.group(1)) if match else registry.next_number
            taken = {r.prediction_id for r in registry.predictions}
            while f"prediction_{number:03d}" in taken:
                number += 1
            main = images.get("labels") or images["probabilities"]
            record = PredictionRecord(
                prediction_id=f"prediction_{number:03d}",
                path=f"{relative}/{main}",
                probabilities_path=f"{relative}/{images['probabilities']}" if "labels" in images and "probabilities" in images else None,
                source=source,
                checkpoint_id=checkpoint_id,
                created_at=now(),
                shape=shape,
                parameters=parameters,
                duration_s=duration_s,
            )
            write_sidecar(output, record)
            registry.predictions.append(record)
            registry.next_number = max(registry.next_number, number + 1)
            write_model(self._layout.prediction_registry, registry)
        return record
