"""The CLI validation layer: option checks read from the schemas, error lines worded with the flags."""

from __future__ import annotations

import argparse

import pytest
from pydantic import BaseModel, Field, ValidationError

from napari_training_assistant.cli.main import OneLineParser, build_parser
from napari_training_assistant.cli.validation import (
    MAX_LINE,
    FieldRange,
    error_line,
    field_range,
    flag_names,
    schema_option,
    subcommand_parser,
)
from napari_training_assistant.project.errors import ProjectError
from napari_training_assistant.project.run_options import PredictOptions, TrainOptions
from napari_training_assistant.project.schemas import ArchitectureConfig, PairRecord, ProjectConfig
from napari_training_assistant.project.user_input import DatasetInputError


def test_ranges_are_read_from_the_schema_fields():
    assert field_range(TrainOptions, "epochs") == FieldRange(int, ge=1, le=100_000)
    assert field_range(TrainOptions, "learning_rate") == FieldRange(float, gt=0, lt=10)
    assert field_range(TrainOptions, "patch_size") == FieldRange(int, ge=1, le=4096, min_length=1, max_length=3, many=True)
    assert field_range(PredictOptions, "overlap") == FieldRange(float, ge=0, lt=1)
    assert field_range(ArchitectureConfig, "num_classes") == FieldRange(int, ge=2, le=256)
    assert field_range(ProjectConfig, "project_name") == FieldRange(str, min_length=1, max_length=200)
    assert field_range(PairRecord, "split").choices == ("train", "val", "benchmark")
    assert field_range(TrainOptions, "precision").choices == ("auto", "32", "16-mixed", "bf16-mixed")
    assert field_range(TrainOptions, "learning_rate").describe() == "> 0 and < 10"
    assert field_range(TrainOptions, "epochs").describe() == "1 to 100000"
    assert field_range(TrainOptions, "patch_size").describe() == "1 to 3 values, each 1 to 4096"
    assert field_range(TrainOptions, "device").describe() == ""


class Toy(BaseModel):
    rate: float = Field(0.5, gt=0, le=1)
    sizes: list[int] | None = Field(None, min_length=1, max_length=2)


def parse(*argv: str) -> argparse.Namespace:
    parser = OneLineParser(prog="toy")
    schema_option(parser, "--rate", schema=(Toy, "rate"), help="a rate")
    schema_option(parser, "--sizes", schema=(Toy, "sizes"), help="sizes")
    return parser.parse_args(list(argv))


def test_schema_option_checks_while_parsing(capsys):
    assert parse().rate == 0.5 and parse().sizes is None  # defaults from the schema
    assert parse("--rate", "1", "--sizes", "3", "4").sizes == [3, 4]
    for argv, message in [
        (["--rate", "nan"], "toy: error: --rate: must be a finite number (found nan) (see toy --help)"),
        (["--rate", "0"], "--rate: must be greater than 0 (found 0.0)"),
        (["--rate", "abc"], "--rate: invalid float value: 'abc'"),
        (["--sizes", "1", "2", "3"], "--sizes: must have at most 2 items, not 3"),
    ]:
        with pytest.raises(SystemExit) as info:
            parse(*argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and message in err, err


def test_flags_of_a_subcommand():
    parser = build_parser()
    flags = flag_names(subcommand_parser(parser, "add-pair"))
    assert flags["slice_index"] == "--slice" and flags["channel_axis"] == "--channel-axis"
    assert flag_names(subcommand_parser(parser, "train"))["learning_rate"] == "--lr"
    assert subcommand_parser(parser, "nonsense") is None


def test_error_lines_name_flags_and_stay_one_short_line():
    flags = {"slice_index": "--slice", "learning_rate": "--lr"}
    assert error_line(DatasetInputError("`slice_index` 9 is outside"), flags) == "--slice 9 is outside"
    with pytest.raises(ValidationError) as info:
        Toy.model_validate({"rate": -1})  # a raw pydantic error, as some layers raise
    assert error_line(info.value, {"rate": "--rate"}) == "--rate: must be greater than 0 (found -1)"
    with pytest.raises(ValidationError) as info:
        TrainOptions.model_validate({"learning_rate": -1})  # the InputError of its __init__, wrapped by pydantic
    assert error_line(info.value, flags) == "--lr: must be greater than 0 (found -1)"
    assert error_line(ProjectError("a\n  b"), flags) == "a b"
    assert len(error_line(ProjectError("x" * 10 * MAX_LINE), flags)) == MAX_LINE
