"""`architecture/architecture_config.json`: the U-Net descriptor (what `build_model` builds)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .base import VersionedModel, drop_unknown_keys

SpatialDims = Literal["2d", "3d"]
OutputMode = Literal["binary", "multiclass", "multilabel", "instance"]

# Fields whose values must agree between a checkpoint and the architecture it is loaded into.
COMPATIBILITY_FIELDS: tuple[str, ...] = (
    "backend",
    "spatial_dims",
    "preset",
    "depth",
    "base_channels",
    "normalization",
    "upsampling",
    "input_channels",
    "output_mode",
    "num_classes",
    "output_channels",
    "anisotropic_levels",
)

INSTANCE_CHANNELS = 2  # instance output: foreground, boundary

PRESETS: dict[str, dict[str, int]] = {
    # a preset names the starting depth and width; `custom` means the user changed them
    "standard_unet": {"depth": 4, "base_channels": 32},
    "small_unet": {"depth": 3, "base_channels": 16},
    "tiny_unet": {"depth": 2, "base_channels": 8},
}


class ArchitectureConfig(VersionedModel):
    """The trainable U-Net. Defaults are the seed's default 2D binary U-Net, verbatim."""

    backend: Literal["basic_unet"] = "basic_unet"
    spatial_dims: SpatialDims = "2d"
    preset: Literal["standard_unet", "small_unet", "tiny_unet", "custom"] = "standard_unet"
    depth: int = Field(4, ge=1, le=6, description="number of down-sampling levels")
    base_channels: int = Field(32, ge=1, le=512, description="feature channels of the first level")
    normalization: Literal["batch", "instance", "group", "none"] = "batch"
    upsampling: Literal["transpose", "bilinear", "trilinear"] = "transpose"
    input_channels: int = Field(1, ge=1, le=64)
    output_mode: OutputMode = "binary"
    num_classes: int = Field(2, ge=2, le=256, description="classes incl. background (multiclass)")
    output_channels: int = Field(1, ge=1, le=256)
    activation: Literal["sigmoid", "softmax"] = "sigmoid"
    loss: Literal["bce_dice", "ce_dice", "bce", "ce", "dice"] = "bce_dice"
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="probability threshold (binary, multilabel)")
    anisotropic_levels: list[int] = Field(
        default_factory=list,
        description="3D only: encoder levels (0-based) that pool and upsample in-plane (y, x) only, "
        "for anisotropic voxels such as 4x4x40 nm",
    )

    MIGRATIONS: ClassVar = {0: lambda d: drop_unknown_keys(d, ArchitectureConfig)}

    @field_validator("anisotropic_levels")
    @classmethod
    def _sorted_unique(cls, levels: list[int]) -> list[int]:
        return sorted(set(levels))

    @model_validator(mode="after")
    def _consistent(self) -> ArchitectureConfig:
        if self.spatial_dims == "2d" and self.upsampling == "trilinear":
            raise ValueError("upsampling 'trilinear' is for 3d; use 'bilinear' (or 'transpose') for 2d")
        if self.spatial_dims == "3d" and self.upsampling == "bilinear":
            raise ValueError("upsampling 'bilinear' is for 2d; use 'trilinear' (or 'transpose') for 3d")
        if self.anisotropic_levels:
            if self.spatial_dims != "3d":
                raise ValueError("anisotropic_levels applies to 3d only; remove it or set spatial_dims to 3d")
            bad = [lvl for lvl in self.anisotropic_levels if not 0 <= lvl < self.depth]
            if bad:
                raise ValueError(f"anisotropic_levels {bad} out of range: levels are 0..{self.depth - 1} for depth {self.depth}")
        if self.output_mode == "binary":
            _expect(self.output_channels == 1, "binary output needs output_channels 1")
            _expect(self.activation == "sigmoid", "binary output needs activation 'sigmoid'")
            _expect(self.loss in ("bce_dice", "bce", "dice"), "binary output needs loss bce_dice, bce or dice")
        elif self.output_mode == "multiclass":
            _expect(
                self.output_channels == self.num_classes,
                f"multiclass output needs output_channels == num_classes ({self.num_classes})",
            )
            _expect(self.activation == "softmax", "multiclass output needs activation 'softmax'")
            _expect(self.loss in ("ce_dice", "ce", "dice"), "multiclass output needs loss ce_dice, ce or dice")
        elif self.output_mode == "instance":
            _expect(self.output_channels == 2, "instance output needs output_channels 2 (foreground, boundary)")
            _expect(self.activation == "sigmoid", "instance output needs activation 'sigmoid'")
            _expect(self.loss in ("bce_dice", "bce", "dice"), "instance output needs loss bce_dice, bce or dice")
        else:
            _expect(self.activation == "sigmoid", "multilabel output needs activation 'sigmoid'")
            _expect(self.loss in ("bce_dice", "bce", "dice"), "multilabel output needs loss bce_dice, bce or dice")
        return self


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message + " (or use default_architecture(...) to derive consistent values)")


def default_architecture(
    spatial_dims: SpatialDims = "2d",
    output_mode: OutputMode = "binary",
    num_classes: int = 2,
    output_channels: int | None = None,
    **overrides: Any,
) -> ArchitectureConfig:
    """A consistent descriptor: activation, loss and channel counts follow from the output mode."""
    if output_mode == "binary":
        derived: dict[str, Any] = {"output_channels": 1, "activation": "sigmoid", "loss": "bce_dice"}
    elif output_mode == "multiclass":
        derived = {"output_channels": num_classes, "activation": "softmax", "loss": "ce_dice"}
    elif output_mode == "instance":  # foreground and object-boundary channels, split by a seeded watershed
        derived = {"output_channels": INSTANCE_CHANNELS, "activation": "sigmoid", "loss": "bce_dice"}
    else:
        derived = {"output_channels": 2 if output_channels is None else output_channels, "activation": "sigmoid", "loss": "bce_dice"}
    if output_channels is not None and output_mode != "multilabel" and output_channels != derived["output_channels"]:
        raise ValueError(
            f"output_channels {output_channels} does not fit output_mode {output_mode!r} "
            f"(expected {derived['output_channels']}); leave it unset"
        )
    if "preset" in overrides and overrides["preset"] in PRESETS:
        derived.update(PRESETS[overrides["preset"]])
    fields = {"spatial_dims": spatial_dims, "output_mode": output_mode, "num_classes": num_classes, **derived}
    fields.update(overrides)
    if spatial_dims == "3d" and fields.get("upsampling") == "bilinear":
        fields["upsampling"] = "trilinear"
    return ArchitectureConfig(**fields)


def architecture_differences(expected: dict[str, Any], found: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, expected, found) for each compatibility field that differs; missing fields use defaults."""
    defaults = ArchitectureConfig().model_dump()
    out = []
    for name in COMPATIBILITY_FIELDS:
        a = expected.get(name, defaults[name])
        b = found.get(name, defaults[name])
        if a != b:
            out.append((name, a, b))
    return out
