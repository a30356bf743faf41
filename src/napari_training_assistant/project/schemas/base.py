"""Shared base of every JSON file in a project: strict fields, a schema version, migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..paths import check_id, check_relative

Migration = Callable[[dict[str, Any]], dict[str, Any]]

ProjectPath = Annotated[str, AfterValidator(check_relative)]
"""A file named by a record: relative to the project folder, normalised, never outside it."""
RecordId = Annotated[str, AfterValidator(check_id)]
"""An id that becomes part of a file or folder name (pairs, checkpoints, runs, imported models)."""


class VersionedModel(BaseModel):
    """A project file: unknown keys are refused, assignments re-validated, `schema_version` pinned.

    Subclasses set `SCHEMA_VERSION` and, when the format changes, add a step to `MIGRATIONS`
    (`{old_version: function(old_dict) -> dict of old_version + 1}`). Files written before schema
    versions existed (napari-training-assistant 0.2.0) count as version 0.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    SCHEMA_VERSION: ClassVar[int] = 1
    MIGRATIONS: ClassVar[dict[int, Migration]] = {}

    schema_version: int = Field(default=1, description="format version of this file")

    def model_post_init(self, __context: Any) -> None:
        # new objects always carry the current version
        if "schema_version" not in self.model_fields_set:
            object.__setattr__(self, "schema_version", self.SCHEMA_VERSION)


def drop_unknown_keys(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Migration helper: keep only keys the model knows (older tools wrote extra UI state)."""
    return {k: v for k, v in data.items() if k in model.model_fields}
