"""Planning state: the values the user fixed, the device planned for, and the decisions so far."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...project.schemas.architecture import ArchitectureConfig
from ...project.schemas.project_config import AutoConfigDecision, TrainingSettings
from .constants import MIN_BOTTLENECK, PLANNED_SETTINGS
from .dataset_fingerprint import DatasetFingerprint
from .device import DeviceInfo


def _user_values(
    user_overrides: Iterable[str] | Mapping[str, Any] | None,
    settings: TrainingSettings,
    config: ArchitectureConfig,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if settings.device != "auto":
        values["device"] = settings.device
    if settings.precision != "auto":
        values["precision"] = settings.precision
    if settings.batch_size is not None:
        values["batch_size"] = settings.batch_size
    if settings.patch_size is not None:
        values["patch_size"] = list(settings.patch_size)
    if user_overrides is None:
        return values
    if isinstance(user_overrides, Mapping):
        values.update(user_overrides)
        return values
    for name in user_overrides:
        if name not in PLANNED_SETTINGS or name in values:
            continue
        value = getattr(settings, name, None) if name in TrainingSettings.model_fields else None
        if value is None and name in ArchitectureConfig.model_fields:
            value = getattr(config, name)
        if value is None or value == "auto":
            raise ValueError(f"user override {name!r} has no value: give it in the settings or as a mapping")
        values[name] = value
    return values


@dataclass
class _PlanContext:
    """What every planning step reads (data, architecture, user values, device) and writes (decisions)."""

    fingerprint: DatasetFingerprint
    config: ArchitectureConfig
    user: dict[str, Any]
    info: DeviceInfo
    resolved: dict[str, Any] = field(default_factory=dict)
    decisions: list[AutoConfigDecision] = field(default_factory=list)

    @property
    def dims(self) -> str:
        return self.config.spatial_dims

    @property
    def ndim(self) -> int:
        return 2 if self.dims == "2d" else 3

    @property
    def min_bn(self) -> int:
        return MIN_BOTTLENECK[self.dims]

    @property
    def gpu(self) -> bool:
        return self.info.kind == "cuda"

    def decide(self, setting: str, value: Any, reason: str) -> Any:
        """Record `setting`: the user's value if the user fixed it, else `value` because of `reason`."""
        if setting in self.user:
            value = self.user[setting]
            self.decisions.append(
                AutoConfigDecision(setting=setting, value=value, reason="set by the user", source="user")
            )
        else:
            self.decisions.append(
                AutoConfigDecision(setting=setting, value=value, reason=reason, source="auto")
            )
        self.resolved[setting] = value
        return value
