"""`sam3/sam3_config.json`: SAM3 model folders, prompt mode and layer names."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import VersionedModel, drop_unknown_keys

PromptMode = Literal["2d_box", "2d_points", "live_points", "2d_exemplar", "2d_text", "3d_multiplex"]
CONCEPT_MODES = ("2d_exemplar", "2d_text")  # find every instance; scored, scanned tile by tile on large images

DEFAULT_LAYER_NAMES: dict[str, str] = {
    "2d_box": "SAM3 boxes",
    "2d_points": "SAM3 points",
    "live_points": "SAM3 live points",
    "2d_exemplar": "SAM3 exemplar boxes",
    "2d_text": "SAM3 exemplar boxes",  # optional exemplars refine a text prompt
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
    text: str = Field("", max_length=200, description="the last text (concept) prompt")
    score_threshold: float = Field(0.5, gt=0, lt=1, description="concept detections scoring less are left out")
    tile_size: int = Field(0, ge=0, description="tile edge for images larger than the model input (0: the model input)")
    layer_names: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LAYER_NAMES))

    MIGRATIONS: ClassVar = {0: lambda d: drop_unknown_keys(d, Sam3Config)}
