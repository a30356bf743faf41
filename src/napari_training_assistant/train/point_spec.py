"""The YAML training spec of point-windowed training (`nta train-points SPEC.yaml`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..project.errors import ProjectError
from ..project.user_input import cut, echo


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LayerSpec(_Strict):
    path: str = Field(description="file, folder or URL, relative to the spec file")
    dataset: str | None = Field(None, description="array inside a Zarr group")
    scale: int | str = Field(0, description="resolution level (0 = full resolution) or precomputed scale key")
    channel: int | None = None
    source_axes: str | None = Field(None, description="stored axis order when it differs, e.g. xyz")


class RegionsSpec(_Strict):
    path: str = Field(description="regions JSON file or precomputed bounding-box annotation layer")
    tag_property: str = Field("split", description="precomputed boxes: property holding the tag")


class ModelSpec(_Strict):
    spatial_dims: Literal["3d"] = "3d"
    depth: int = Field(3, ge=1, le=6)
    base_channels: int = Field(16, ge=1, le=512)
    normalization: Literal["batch", "instance", "group", "none"] = "batch"
    upsampling: Literal["transpose", "trilinear"] = "transpose"
    output_mode: Literal["multilabel"] = "multilabel"
    output_channels: int = Field(2, ge=1, le=16)
    anisotropic_levels: list[int] | None = Field(None, description="default: from resolution (z much coarser)")
    threshold: float = Field(0.5, gt=0, lt=1)


class TrainingSpec(_Strict):
    lr: float = Field(5e-4, gt=0, lt=10)
    batch_size: int = Field(4, ge=1, le=4096)
    epochs: int | None = Field(None, ge=1, le=100_000, description="None: as many as fit in time_budget_minutes")
    time_budget_minutes: float = Field(10.0, gt=0, le=100_000, description="training time the automatic epochs aim at")
    loss_crop_pad: list[int] = Field(default_factory=lambda: [0, 0, 0], description="border per axis excluded from the loss")
    class_balance: Literal["none", "default", "frequency"] = "default"
    balance_clip: float = Field(0.05, gt=0, lt=0.5)
    dice_weight: float = Field(0.0, ge=0, description="weight of a soft Dice term added to the BCE")
    min_nonzero_fraction: float = Field(0.0, ge=0, le=1)
    centre_marker: bool = Field(False, description="add an input channel marking the centre synapse")
    augment: bool = Field(True, description="random flips (z, y, x), in-plane 90-degree rotations and intensity jitter of training windows")
    samples_per_epoch: int | None = Field(None, ge=1, description="default: every training point once")
    memory_budget_gb: float = Field(8.0, gt=0)
    num_workers: int = Field(0, ge=0)
    seed: int = 0
    device: str = "auto"
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = "auto"
    weight_decay: float = Field(1e-4, ge=0)


class PointSpec(_Strict):
    project: str = Field(description="Training Project Folder (created when missing), relative to the spec")
    axis_order: str = "zyx"
    resolution: list[float] = Field(description="voxel size in nm, in axis_order")
    layers: dict[str, LayerSpec]
    rename: dict[str, str] = Field(default_factory=dict, description="layer name -> training key (img, label0, label1, segmentation, points)")
    regions: RegionsSpec
    train_tags: list[str] = Field(default_factory=lambda: ["train"])
    val_tags: list[str] = Field(default_factory=lambda: ["val"])
    window_size: list[int]
    line_point: Literal["midpoint", "start", "end"] = "midpoint"
    targets: Literal["labels", "line_segments"] = Field(
        "labels", description="labels: label0/label1 volumes; line_segments: segments under each line's start and end"
    )
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)

    @field_validator("axis_order")
    @classmethod
    def _axes(cls, value: str) -> str:
        if sorted(value) != sorted("zyx"):
            raise ValueError("must be a permutation of 'zyx', e.g. zyx or xyz")
        return value

    @field_validator("window_size")
    @classmethod
    def _window(cls, value: list[int]) -> list[int]:
        if len(value) != 3 or any(v < 1 for v in value):
            raise ValueError("must be three positive sizes in axis_order, e.g. [16, 64, 64]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PointSpec:
        if len(self.resolution) != 3 or any(r <= 0 for r in self.resolution):
            raise ValueError("resolution: must be three positive voxel sizes in nm, in axis_order")
        if len(self.training.loss_crop_pad) != 3:
            raise ValueError("training.loss_crop_pad: must have three values (zero allowed), one per axis")
        if any(2 * p >= w for p, w in zip(self.training.loss_crop_pad, self.window_size, strict=True)):
            raise ValueError("training.loss_crop_pad: leaves nothing of the window for the loss; use smaller values")
        keys = {self.rename.get(name, name) for name in self.layers}
        missing = {"img", "points"} - keys
        if missing:
            raise ValueError(f"layers: missing {sorted(missing)} (a layer group needs img and points)")
        needed = {"segmentation"} if self.targets == "line_segments" else {"label0", "label1"}
        if needed - keys:
            raise ValueError(f"layers: targets {self.targets!r} need {sorted(needed - keys)}")
        if self.targets == "line_segments" and self.model.output_channels != 2:
            raise ValueError("model.output_channels: line_segments targets have 2 channels (start and end segment)")
        if self.targets == "labels":
            labels = sorted(k for k in keys if k.startswith("label") and not k.endswith("_mask"))
            if len(labels) != self.model.output_channels:
                raise ValueError(f"model.output_channels: {self.model.output_channels} but {len(labels)} label layers ({labels})")
        if set(self.train_tags) & set(self.val_tags):
            raise ValueError("val_tags: a tag cannot both train and validate")
        return self

    def label_keys(self) -> list[str]:
        keys = [self.rename.get(n, n) for n in self.layers]
        return sorted(k for k in keys if k.startswith("label") and not k.endswith("_mask"))


def load_spec(path: str | Path) -> tuple[PointSpec, Path]:
    """(validated spec, folder the relative paths start from); errors name the key and the expected form."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ProjectError(f"spec file {path} does not exist")
    try:
        data: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=_no_alias_loader())  # safe: a SafeLoader that also refuses aliases
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ProjectError(f"{path} is not valid YAML{where}: {cut(str(getattr(exc, 'problem', exc)))}") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must hold a mapping of keys (project, layers, regions, ...), found {type(data).__name__}")
    try:
        return PointSpec.model_validate(data), path.parent
    except ValidationError as exc:
        error = exc.errors()[0]
        key = cut(".".join(str(p) for p in error["loc"]) or "(spec)")
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"] and ": " in message:  # whole-spec checks start with the key they concern
            key, message = message.split(": ", 1)
        if error["type"] == "extra_forbidden":
            message = _unknown_key_message(error["loc"])
        if error["type"] == "missing":
            message = f"missing: add it ({_expected_form(error['loc'])})"
        found = (
            f" (found {echo(error['input'])})"
            if error.get("input") is not None and not isinstance(error["input"], dict) and error["type"] != "missing"
            else ""
        )
        more = f"; and {exc.error_count() - 1} more problem(s)" if exc.error_count() > 1 else ""
        raise ProjectError(f"{path}: key '{key}': {message}{found}{more}") from None


def _no_alias_loader() -> type:
    """yaml.SafeLoader refusing aliases (*name): a spec never needs them, and nested ones expand
    exponentially when the data is walked (a "billion laughs" file)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{cut(event.anchor)} found: a spec allows no aliases, write the value out", event.start_mark
                )
            return super().compose_node(parent, index)

    return NoAliasLoader


def _unknown_key_message(loc: tuple) -> str:
    """'unknown key (did you mean ...?): expected one of ...' for a key no model at `loc` declares."""
    import difflib
    import typing

    model: type[BaseModel] = PointSpec
    parts = list(loc[:-1])
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        annotation = field.annotation if field is not None else None
        if typing.get_origin(annotation) is dict:  # layers: {name: LayerSpec}: skip the name
            annotation = typing.get_args(annotation)[1]
            if parts:
                parts.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "unknown key"
        model = annotation
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(cut(str(loc[-1])), allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key{hint}: expected one of {', '.join(allowed)}"


def _expected_form(loc: tuple) -> str:
    """The description of the field at `loc`, for an error about it."""
    model: Any = PointSpec
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            break
        field = fields[part]
        model = field.annotation
    return (field.description if field is not None and field.description else "see the spec example in the README")
