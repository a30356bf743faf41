"""The CLI's one validation layer: option checks built from the schemas, errors worded with the flags.

`schema_option(parser, "--epochs", schema=(TrainOptions, "epochs"), help=...)` declares an option whose
token type, choices (a `Literal`), count (a list's length) and range (`ge`/`gt`/`le`/`lt`) all come from
that schema field; the value is checked as it is parsed, so a bad one stops the command before anything is
read or written, with `--epochs: must be greater than or equal to 1 (found 0)`. Errors raised later that
name inputs (`NamesInputs`, pydantic `ValidationError`) are rendered with the command's flags.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined

from ..project.user_input import NamesInputs, cut, field_type, problem_text, validation_template

MAX_LINE = 2000  # characters of an error line; longer ones are cut


@dataclass(frozen=True)
class FieldRange:
    """What a schema field accepts: the token kind, bounds of each value, list length, choices."""

    kind: type  # int, float or str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None  # characters of a str, or items of a list
    max_length: int | None = None
    many: bool = False  # a list: one value per token
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """'1 to 4096', '> 0 and < 10', '1 to 3 values, each >= 1', ... ('' when anything goes)."""
        if self.ge is not None and self.le is not None:
            text = f"{_number(self.ge)} to {_number(self.le)}"
        else:
            bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            text = " and ".join(f"{op} {_number(v)}" for op, v in bounds if v is not None)
        if self.many:
            count = f"{self.min_length or 1} to {self.max_length} values" if self.max_length else "one or more values"
            return f"{count}, each {text}" if text else count
        if self.kind is str and self.max_length is not None:
            return f"{self.min_length or 0} to {self.max_length} characters"
        return text


def field_range(model: type[BaseModel], name: str) -> FieldRange:
    """The `FieldRange` of `model.<name>`, read from its annotation and constraints."""
    annotation, limits = _unwrap(field_type(model, name))
    many = typing.get_origin(annotation) is list
    item_limits: dict[str, Any] = {}
    if many:
        annotation, item_limits = _unwrap(typing.get_args(annotation)[0])
    choices = None
    if typing.get_origin(annotation) is typing.Literal:
        choices = tuple(str(v) for v in typing.get_args(annotation))
        annotation = str
    kind = annotation if annotation in (int, float) else str
    values = item_limits if many else limits
    return FieldRange(
        kind,
        **{k: values.get(k) for k in ("ge", "gt", "le", "lt")},
        min_length=limits.get("min_length"),
        max_length=limits.get("max_length"),
        many=many,
        choices=choices,
    )


def _unwrap(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """(the annotation without Annotated and None, its ge/gt/le/lt/min_length/max_length constraints)."""
    limits: dict[str, Any] = {}
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation, *metadata = typing.get_args(annotation)
            for item in metadata:
                for key in ("ge", "gt", "le", "lt", "min_length", "max_length"):
                    if getattr(item, key, None) is not None:
                        limits[key] = getattr(item, key)
                limits.update(_unwrap_field_info(item))
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation, limits
            annotation = options[0]
        else:
            return annotation, limits


def _unwrap_field_info(item: Any) -> dict[str, Any]:
    """Constraints of a `Field(...)` used inside `Annotated` (its own metadata list)."""
    found: dict[str, Any] = {}
    for inner in getattr(item, "metadata", None) or ():
        for key in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(inner, key, None) is not None:
                found[key] = getattr(inner, key)
    return found


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class SchemaOption(argparse.Action):
    """Stores the option's value after checking it against its schema field (see `schema_option`)."""

    def __init__(self, option_strings: list[str], dest: str, *, schema: tuple[type[BaseModel], str], **kwargs: Any):
        model, name = schema
        self.schema = schema
        self.range = field_range(model, name)
        self._adapter = TypeAdapter(field_type(model, name), config=ConfigDict(allow_inf_nan=False))
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        try:
            value = self._adapter.validate_python(values)
        except ValidationError as exc:
            raise argparse.ArgumentError(self, problem_text(exc.errors()[0])) from None
        setattr(namespace, self.dest, value)


def schema_option(parser: argparse.ArgumentParser, *flags: str, schema: tuple[type[BaseModel], str], help: str, **kwargs: Any) -> argparse.Action:
    """An option checked against `schema` = (model, field) as it is parsed; type, choices, nargs, default
    and the range shown in `--help` come from the field unless given."""
    model, name = schema
    rng = field_range(model, name)
    kwargs.setdefault("type", rng.kind)
    if rng.choices:
        kwargs.setdefault("choices", rng.choices)
    if rng.many:
        kwargs.setdefault("nargs", "+")
    if not rng.choices:
        kwargs.setdefault("metavar", flags[0].lstrip("-").upper().replace("-", "_"))
    default = model.model_fields[name].default
    kwargs.setdefault("default", None if default is PydanticUndefined else default)
    shown = rng.describe()
    return parser.add_argument(*flags, action=SchemaOption, schema=schema, help=f"{help} ({shown})" if shown else help, **kwargs)


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> the long flag of each option of `parser` (e.g. slice_index -> --slice)."""
    names = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in ("help",):
            names[action.dest] = longs[0]
    return names


def subcommand_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command)
    return None


def error_line(exc: BaseException, flags: Mapping[str, str]) -> str:
    """One line for a user error: inputs named by the command's flags, whitespace collapsed, length capped."""
    if isinstance(exc, NamesInputs):
        text = exc.render(flags)
    elif isinstance(exc, ValidationError):
        text = NamesInputs(validation_template(exc)).render(flags)
    else:
        text = str(exc)
    return cut(" ".join(text.split()), MAX_LINE)
