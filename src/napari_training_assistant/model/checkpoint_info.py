"""What a checkpoint says about applying it: how it was trained, normalised and tiled (one reader)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..preprocess import MODES
from ..project.errors import CheckpointError
from .checkpoint_io import read_checkpoint, require_architecture

TrainingMode = Literal["pairs", "point_windows"]


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint's architecture and training metadata, with the defaults of older checkpoints.

    Pair checkpoints record `normalization` and `patch_size`; point-window checkpoints record
    ``normalization: "region"``, `window_size`, `centre_marker`, `targets`, `resolution`, `axis_order`.
    """

    architecture: Mapping[str, Any]
    training_mode: TrainingMode = "pairs"
    normalization: str = "percentile"
    patch_size: tuple[int, ...] | None = None
    window_size: tuple[int, ...] | None = None
    centre_marker: bool = False
    targets: str | None = None
    resolution: tuple[float, ...] | None = None
    axis_order: str | None = None
    instance_settings: Mapping[str, Any] | None = None  # an instance model's post-processing tuned after training

    @classmethod
    def from_metadata(cls, architecture: Mapping[str, Any], metadata: Mapping[str, Any]) -> CheckpointInfo:
        points = metadata.get("normalization") == "region" or "window_size" in metadata
        return cls(
            architecture=dict(architecture),
            training_mode="point_windows" if points else "pairs",
            normalization=str(metadata.get("normalization", "region" if points else "percentile")),
            patch_size=_ints(metadata.get("patch_size")),
            window_size=_ints(metadata.get("window_size")),
            centre_marker=bool(metadata.get("centre_marker", False)),
            targets=metadata.get("targets", "labels" if points else None),
            resolution=tuple(float(v) for v in metadata["resolution"]) if metadata.get("resolution") else None,
            axis_order=metadata.get("axis_order", "zyx" if points else None),
            instance_settings=_tuned_settings(metadata),
        )

    @property
    def spatial_dims(self) -> str:
        return str(self.architecture["spatial_dims"])

    @property
    def input_channels(self) -> int:
        return int(self.architecture["input_channels"])

    @property
    def tile_size(self) -> list[int] | None:
        """The tile to predict with when none is asked: a point model's training window, else the tiler's default."""
        return list(self.window_size) if self.training_mode == "point_windows" and self.window_size else None

    def inapplicable_reason(self) -> str | None:
        """Why this checkpoint cannot predict a whole image (a phrase to follow its name), or None."""
        if self.normalization not in MODES:
            return (
                f"records normalization {self.normalization!r}, which this version cannot apply "
                f"(it knows {', '.join(MODES)}): update napari-training-assistant"
            )
        if self.centre_marker:
            return (
                "was trained with a centre marker (an input channel marking the synapse at each window's centre), "
                "so it predicts windows around given synapses, not whole images: to predict volumes, train a point "
                "model with `training.centre_marker: false`"
            )
        return None

    def require_applicable(self, name: str) -> None:
        """Raise a one-line `CheckpointError` when the checkpoint cannot predict a whole image."""
        reason = self.inapplicable_reason()
        if reason is not None:
            raise CheckpointError(f"checkpoint {name} {reason}")

    def prediction_parameters(self) -> dict[str, Any]:
        """What a prediction records about the checkpoint's data beyond the architecture."""
        if self.training_mode != "point_windows":
            return {}
        return {"axis_order": self.axis_order, "resolution": list(self.resolution) if self.resolution else None}


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """The `CheckpointInfo` of a self-describing checkpoint file, read weights-only."""
    _, architecture, meta = read_checkpoint(Path(path))
    metadata = meta.get("metadata")
    return CheckpointInfo.from_metadata(require_architecture(architecture, path), metadata if isinstance(metadata, Mapping) else {})


def _tuned_settings(metadata: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``metrics.instance_postprocessing.settings`` of a checkpoint's metadata when they were tuned (not the
    defaults kept for a reason) and are a mapping, else None."""
    metrics = metadata.get("metrics")
    tuning = metrics.get("instance_postprocessing") if isinstance(metrics, Mapping) else None
    settings = tuning.get("settings") if isinstance(tuning, Mapping) and tuning.get("tuned") is True else None
    return dict(settings) if isinstance(settings, Mapping) else None


def _ints(value: Any) -> tuple[int, ...] | None:
    return tuple(int(v) for v in value) if isinstance(value, list | tuple) and value else None
