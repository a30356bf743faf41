"""User inputs checked against the schemas, and errors that name the input the user gave.

A refusal about an input names it as `field` in backticks inside its message template: `str(exc)` shows
the field name (the Python argument), `render(names)` shows the caller's name for it (a CLI flag, a
widget label). `field_type` reuses a schema field's type and constraints elsewhere, so a range is
written once; `CheckedInputs` turns a pydantic `ValidationError` into one such line.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import DatasetError, ProjectError

_FIELD = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
MAX_ECHO = 200  # characters of a user's value repeated in a message

class NamesInputs(Exception):
    """Mixin: the message is a template naming inputs as `field`."""

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.render({}))

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across processes with its template
        return type(self), (self.template,)

    @property
    def fields(self) -> list[str]:
        return _FIELD.findall(self.template)

    def render(self, names: Mapping[str, str]) -> str:
        """The message with each `field` replaced by `names[field]` (the field name where none is given)."""
        return _FIELD.sub(lambda match: names.get(match[1], match[1]), self.template)


class InputError(NamesInputs, ProjectError, ValueError):
    """A value asked of a run or a prediction is out of range or does not fit the project."""


class DatasetInputError(NamesInputs, DatasetError, ValueError):
    """An input of adding a pair (an axis, a slice, a mode) does not fit the image or the mask."""


class DuplicatePairError(NamesInputs, DatasetError):
    """The same image and mask (by content) are already a pair of the dataset."""


def field_type(model: type[BaseModel], name: str) -> Any:
    """`Annotated[type, *constraints]` of a schema field, to declare the same range elsewhere."""
    info = model.model_fields[name]
    return Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation


def field_choices(model: type[BaseModel], name: str) -> tuple[str, ...]:
    """The values a `Literal` field allows (`None` left out), as text: argparse choices and combo-box items."""
    annotation = model.model_fields[name].annotation
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    values = [value for option in options if typing.get_origin(option) is typing.Literal for value in typing.get_args(option)]
    if not values:
        raise TypeError(f"{model.__name__}.{name} is not a Literal field")
    return tuple(str(value) for value in values)


def cut(text: str, limit: int = MAX_ECHO) -> str:
    """`text`, or its first `limit` - 3 characters and '...'."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def echo(value: Any) -> str:
    """repr of a user's value, cut to MAX_ECHO characters."""
    return cut(repr(value))


def problem_text(error: Mapping[str, Any]) -> str:
    """One pydantic error as 'must be greater than 0 (found nan)'."""
    message = str(error["msg"]).removeprefix("Value error, ").replace(" after validation", "")
    for prefix in ("Input should", "List should", "String should", "Value should"):
        if message.startswith(prefix):
            message = "must" + message.removeprefix(prefix)
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return "is not an option"
    return f"{message} (found {echo(error.get('input'))})"


def error_field(error: Mapping[str, Any]) -> str | None:
    """The top-level field a pydantic error is about (None for a whole-model check)."""
    loc = error.get("loc") or ()
    return str(loc[0]) if loc else None


def validation_template(exc: ValidationError) -> str:
    """'`field`: problem' for the first error, counting the others."""
    errors = exc.errors()
    field = error_field(errors[0])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    inner = (errors[0].get("ctx") or {}).get("error")  # an InputError raised inside a validator keeps its template
    problem = inner.template if isinstance(inner, NamesInputs) else problem_text(errors[0])
    return (f"`{field}`: " if field else "") + problem + more


class CheckedInputs(BaseModel):
    """Base of the schemas of user inputs: a bad value raises `InputError` naming its field."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InputError(validation_template(exc)) from None
