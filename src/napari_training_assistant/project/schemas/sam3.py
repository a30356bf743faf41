"""`sam3/sam3_config.json`: SAM3 model folders, prompt mode and layer names."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import VersionedModel, drop_unknown_keys

PromptMode = Literal["2d_box", "2d_points", "live_points", "2d_exemplar", "3d_multiplex"]

DEFAULT_LAYER_NAMES: dict[str, str] = {
    "2d_box": "SAM3 boxes",
    "2d_points": "SAM3 points",
    "live_points": "SAM3 live points",
    "2d_exemplar": "SAM3 exemplar boxes",
    "3d_multiplex": "SAM3 3D prompts",
    "preview": "SAM3 preview labels",
    "propagated": "SAM3 propagated labels",
}


class Sam3Config(VersionedModel):
    image_model_folder: str | None = Field(None, description="SAM3.0 folder with sam3.pt or model.safetensors")
    multiplex_model_folder: str | None = Field(None, description="SAM3.1 folder with sam3.1_multiplex.pt")
    prompt_mode: PromptMode = "2d_box"
    device: str = "auto"
    threshold: float = Field(0.5, gt=0, lt=1)
    layer_names: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LAYER_NAMES))

    MIGRATIONS: ClassVar = {0: lambda d: drop_unknown_keys(d, Sam3Config)}
