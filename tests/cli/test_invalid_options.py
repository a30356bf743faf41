"""Every option of every subcommand, set to invalid values: exit 2, one stderr line naming the option, no
traceback, and the project folder and input files unchanged.

The options come from `build_parser()`, so a new option is covered (or must be listed here) automatically.
Invalid values follow from the option's kind: the range of a schema option (`SchemaOption.range`: bounds,
count, length), argparse `type` and `choices`, `nargs`; free-text options get values from `SPECIFIC`, or
are `EXEMPT` with a reason. Each case runs in-process through `main(argv)` on a valid base command line
(`BASE`), so the invalid option is the only problem.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_training_assistant.cli.main import build_parser, main
from napari_training_assistant.cli.validation import SchemaOption
from napari_training_assistant.model import build_model, describe, save_checkpoint
from napari_training_assistant.project import TrainingProject

FAST = ["--epochs", "1", "--samples-per-epoch", "4", "--batch-size", "2", "--device", "cpu"]
# A valid command line per subcommand ({root}: the test folder); the case's option is appended.
BASE: dict[str, list[str]] = {
    "init": ["{root}/new_project"],
    "add-pair": ["{root}/proj", "--image", "{root}/img.tif", "--mask", "{root}/mask.tif"],
    "add-folder": ["{root}/proj", "{root}/pairs"],
    "set-split": ["{root}/proj", "pair_0001"],
    "train": ["{root}/proj", *FAST, "--no-benchmark"],
    "train-points": ["{root}/spec.yaml", *FAST],
    "predict": ["{root}/proj", "--image", "{root}/img.tif"],
    "benchmark": ["{root}/proj"],
    "demo": [],
    "sam3-check": ["{root}/sam3"],
    "assign-synapses": ["{root}/spec.yaml"],
    "suggest": ["{root}/proj", "--images", "{root}"],
    "export": ["{root}/proj", "--format", "bioimageio", "--output", "{root}/model.zip"],
    "stop": ["{root}/proj"],  # nothing runs: the option's own refusal must come first
}
# Values of free-text options, or those whose range depends on the project or the image:
# (tokens, fragment the error line must hold; None: the flag or the value itself).
SPECIFIC: dict[tuple[str, str], list[tuple[list[str], str | None]]] = {
    ("init", "--class-names"): [(["only-one"], "1 class name(s) given")],
    ("add-pair", "--image"): [(["{root}/nowhere.tif"], None), (["{root}/bad.tif"], None)],
    ("add-pair", "--from-prediction"): [(["prediction_999"], None)],
    ("suggest", "--images"): [(["{root}/nowhere"], None)],
    ("suggest", "--top"): [(["0"], None), (["-1"], None), (["x"], None)],
    ("suggest", "--tile"): [(["0"], None), (["-1"], None), (["x"], None)],
    ("suggest", "--checkpoint"): [(["unet_run_999"], None)],
    ("add-pair", "--mask"): [(["{root}/nowhere.tif"], None), (["{root}/mask.tif", "{root}/mask.tif"], "--mask-mode multilabel")],
    ("add-pair", "--target-class"): [(["zebra"], None)],
    ("add-pair", "--label-map"): [(["1:one"], None), (["7"], None), (["1:1"], None), ([""], "--label-map is empty")],
    ("add-pair", "--channel-axis"): [(["5"], None), (["-3"], None)],
    ("add-pair", "--mask-channel-axis"): [(["5"], None)],
    ("add-pair", "--slice"): [(["0"], None), (["-1"], None)],
    ("add-pair", "--image-dataset"): [(["x"], None)],
    ("add-folder", "--target-class"): [(["zebra"], None)],
    ("add-folder", "--label-map"): [(["1:one"], None), (["7"], None), (["1:1"], None), ([""], "--label-map is empty")],
    ("add-folder", "--channel-axis"): [(["5"], None)],
    ("add-folder", "--mask-channel-axis"): [(["5"], None)],
    ("add-pair", "--mask-dataset"): [(["x"], None)],
    ("train", "--start"): [(["bogus"], None), (["checkpoint:"], None)],
    ("train", "--device"): [(["bogus"], None), (["cuda:x"], None)],
    ("train", "--patch-size"): [(["32", "32", "32"], None)],  # 3 values for a 2D project
    ("train-points", "--start"): [(["bogus"], None)],
    ("train-points", "--device"): [(["bogus"], None)],
    ("predict", "--image"): [(["{root}/nowhere.tif"], None), (["{root}/nan.npy"], "non-finite"), (["{root}/empty.npy"], "empty.npy")],
    ("predict", "--image-dataset"): [(["x"], None)],
    ("predict", "--checkpoint"): [(["unet_run_999"], None)],
    ("predict", "--channel-axis"): [(["5"], None)],
    ("predict", "--tile-size"): [(["64", "64", "64"], None), (["2"], "smaller than the model pools")],
    ("predict", "--device"): [(["bogus"], None)],
    # choices are case-sensitive; with the ONNX runtime a bad option is still refused before the (seconds-long) export
    ("predict", "--runtime"): [(["ONNX"], None), (["onnx", "--tile-size", "2"], "smaller than the model pools")],
    ("assign-synapses", "--device"): [(["bogus"], None)],
    ("predict", "--output"): [(["{root}/elsewhere.zarr"], "outside the project"), (["{root}/proj/predictions/x.tif"], "end the name with .zarr")],
    ("predict", "--roi"): [(["0:5"], None), (["0:99999,0:5"], "outside the volume"), (["5:5,0:5"], "or empty")],
    ("predict", "--block-shape"): [(["2"], "smaller than the model pools"), (["8", "8", "8"], "1 or 2")],
    ("predict", "--halo"): [(["999"], "0 <= halo < tile")],
    ("predict", "--mask"): [(["{root}/nowhere.tif"], None)],
    ("predict", "--mask-dataset"): [(["x"], "give --mask too")],
    ("predict", "--scale"): [(["7"], "choose scale")],
    ("predict", "--scheduler"): [(["tcp://127.0.0.1:9"], None)],
    # instance post-processing: the range cases come from the schema (0, NaN, >= 1, ...); a valid value on
    # the base project's binary checkpoint is refused too
    ("predict", "--min-size"): [(["-3"], None), (["5"], "--min-size apply to instance models; checkpoint unet_run_001 is a binary model")],
    ("predict", "--foreground-threshold"): [(["-0.2"], None), (["0.3"], "apply to instance models")],
    ("predict", "--boundary-threshold"): [(["1"], None), (["0.3"], "--boundary-threshold apply to instance models")],
    ("predict", "--split-depth"): [(["1"], "--split-depth apply to instance models")],
    ("benchmark", "--checkpoint"): [(["unet_run_999"], None)],
    ("export", "--output"): [(["{root}/model.onnx"], "should end with .zip"), (["{root}/img.tif"], "should end with .zip"), (["{root}/pairs"], None)],
    ("export", "--author"): [([""], "--author name is empty"), (["x" * 201], "longer than 200")],
    ("export", "--license"): [(["not-a-license"], "SPDX"), ([""], "SPDX")],
    ("demo", "--dir"): [(["{root}/proj"], "not a demo project")],
    ("sam3-check", "--device"): [(["bogus"], None)],
    ("sam3-check", "--text"): [([""], "--text is empty"), (["  "], "--text is empty")],
    ("stop", "--run"): [(["run_999"], None)],
    ("stop", "--wait"): [(["-1"], "--wait must be 0 or more")],
    ("sam3-check", "--scan-size"): [(["-1"], "--scan-size must be 0"), (["x"], None), (["512"], "--scan-size scans with a text prompt")],
}
EXEMPT: dict[tuple[str, str], str] = {  # (command, option) -> why no value of it is invalid
    ("assign-synapses", "--checkpoint"): "any id may exist in the spec's project: checked after the spec is read (tests/assign)",
    ("assign-synapses", "--project"): "any folder may be a project: one that is not is refused after the spec is read (tests/assign)",
    ("assign-synapses", "--output"): "any folder may be written: a folder of another run is refused (tests/assign)",
    ("assign-synapses", "--scheduler"): "an address is only refused when unreachable, after the spec is read (predict covers it)",
}


@dataclass(frozen=True)
class Case:
    command: str
    option: str
    tokens: tuple[str, ...]
    fragment: str | None  # the line must hold it; None: the option's flag (or, for a SPECIFIC value, the value)
    specific: bool = False

    @property
    def id(self) -> str:
        return f"{self.command} {self.option} {' '.join(self.tokens) or '(none)'}"


def _number(value: float, kind: type) -> str:
    return str(int(value)) if kind is int else repr(float(value))


def _range_values(action: SchemaOption) -> list[list[str]]:
    """Values just outside a schema option's range, and values no number option accepts."""
    rng = action.range
    values: list[list[str]] = []
    if rng.kind in (int, float):
        step = 1 if rng.kind is int else 0.5
        if rng.ge is not None:
            values.append([_number(rng.ge - step, rng.kind)])
        for bound in (rng.gt, rng.lt):
            if bound is not None:
                values.append([_number(bound, rng.kind)])
        if rng.le is not None:
            values.append([_number(rng.le + step, rng.kind)])
        values += [["x"], ["nan"], ["inf"], ["-inf"]] + ([["1.5"]] if rng.kind is int else [])
    elif not rng.choices:
        if rng.min_length:
            values.append(["x" * (rng.min_length - 1)])
        if rng.max_length is not None:
            values.append(["x" * (rng.max_length + 1)])
    if rng.many:
        values.append([])  # no value at all
        if rng.max_length is not None:
            item = _number(rng.ge if rng.ge is not None else 1, rng.kind)
            values.append([item] * (rng.max_length + 1))
    return values


def _kind_values(action: argparse.Action) -> list[list[str]]:
    """Invalid values that follow from an option's kind alone."""
    if action.choices is not None:
        values = [["bogus"]]
    elif isinstance(action, SchemaOption):
        values = []
    elif action.type is int:
        values = [["x"], ["1.5"], ["nan"]]
    elif action.type is float:
        values = [["x"], ["nan"], ["inf"]]
    else:
        values = []
    if isinstance(action, SchemaOption):
        values += _range_values(action)
    return values


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _takes_values(action: argparse.Action) -> bool:
    return action.nargs != 0 and not isinstance(action, argparse._HelpAction)


def _cases() -> tuple[list[Case], list[str]]:
    """(cases, problems: value options with no invalid value and no exemption)."""
    cases, problems = [], []
    for command, parser in _subparsers().items():
        for action in parser._actions:
            if not _takes_values(action):
                continue
            if not action.option_strings and action.choices is None:
                continue  # free positionals (paths, ids): tests/cli/test_cli.py
            option = max(action.option_strings, key=len) if action.option_strings else action.dest
            values = [(v, None, False) for v in _kind_values(action)]
            values += [(v, fragment, True) for v, fragment in SPECIFIC.get((command, option), [])]
            if not values and (command, option) not in EXEMPT:
                problems.append(f"{command} {option}")
            for tokens, fragment, specific in values:
                argv = list(tokens) if not action.option_strings else [option, *tokens]
                cases.append(Case(command, option, tuple(argv), fragment, specific))
    return cases, problems


CASES, UNCOVERED = _cases()


def test_every_value_option_has_invalid_values_or_an_exemption():
    assert UNCOVERED == [], f"add invalid values to SPECIFIC or a reason to EXEMPT for: {UNCOVERED}"
    commands = {c.command for c in CASES}
    assert commands <= set(BASE), f"add a valid base command line to BASE for: {commands - set(BASE)}"
    known = {(command, a) for command, p in _subparsers().items() for act in p._actions for a in act.option_strings}
    stale = [key for key in (*SPECIFIC, *EXEMPT) if key not in known]
    assert stale == [], f"SPECIFIC/EXEMPT name options that no longer exist: {stale}"
    assert len(CASES) >= 150


def test_every_option_and_argument_has_help():
    missing = [
        f"{command} {'/'.join(action.option_strings) or action.dest}"
        for command, parser in _subparsers().items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []


# --------------------------------------------------------------------------- the cases


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D tiny project with two pairs and a registered checkpoint, and the input files."""
    root = tmp_path_factory.mktemp("invalid")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 1
    tifffile.imwrite(root / "img.tif", image)
    tifffile.imwrite(root / "mask.tif", mask)
    (root / "bad.tif").write_bytes(b"not a TIFF")
    bad = image.astype(np.float32)
    bad[0, :3] = np.nan
    np.save(root / "nan.npy", bad)
    (root / "empty.npy").write_bytes(b"")
    (root / "sam3").mkdir()
    for sub in ("images", "masks"):  # a folder of one pair for add-folder (the project holds it already)
        (root / "pairs" / sub).mkdir(parents=True)
    tifffile.imwrite(root / "pairs" / "images" / "img.tif", image)
    tifffile.imwrite(root / "pairs" / "masks" / "img.tif", mask)
    project = TrainingProject.create(root / "proj", architecture={"preset": "tiny_unet"})
    project.dataset.add(image, mask, split="train")
    project.dataset.add(image.T.copy(), mask.T.copy(), split="val")
    arch = project.architecture.model_dump(mode="json")
    torch.manual_seed(0)
    checkpoint_id, path = project.checkpoints.reserve()
    save_checkpoint(path, build_model(arch).eval(), arch, {"checkpoint_id": checkpoint_id})
    project.checkpoints.register(
        checkpoint_id,
        architecture=arch,
        dataset_pair_ids=project.dataset.ids(),
        metrics={"dice": 0.5, "iou": 0.4},
        parent_id=None,
        starting_weights=project.starting_weights.model_dump(mode="json"),
        architecture_summary=describe(arch),
    )
    return root


def tree_digest(root: Path) -> str:
    """sha256 over every folder and file (name and bytes) under `root`; lock files aside."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        digest.update(f"D {Path(folder).relative_to(root)}\n".encode())
        for name in sorted(files):
            if not name.endswith(".lock"):
                digest.update(f"F {name}\n".encode() + (Path(folder) / name).read_bytes())
    return digest.hexdigest()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str, str]:
    capsys.readouterr()
    try:
        rc: int | None = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_option_is_one_line_exit_2_and_changes_nothing(world, capsys, monkeypatch, case):
    monkeypatch.chdir(world)  # a relative default (demo --dir) lands here, never in the repository
    fill = lambda token: token.replace("{root}", str(world))  # noqa: E731
    argv = [case.command, *map(fill, BASE[case.command]), *map(fill, case.tokens)]
    before = tree_digest(world)
    rc, out, err = run_main(argv, capsys)
    assert "Traceback" not in out + err, err
    assert rc == 2, f"rc {rc} for {argv}: {err!r} {out[-300:]!r}"
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"nta {case.command}: error: "), lines[0]
    assert out == ""
    if case.fragment is not None:
        assert case.fragment in lines[0], lines[0]
    elif case.option.startswith("--") and not case.specific:
        assert case.option in lines[0], lines[0]
    else:  # a positional's choice, or a free-text value: the flag or the value itself
        named = [case.option, *(fill(t) for t in case.tokens if t != case.option)]
        assert any(name in lines[0] for name in named), f"none of {named} in {lines[0]!r}"
    assert tree_digest(world) == before, f"{argv} changed the test folder"


def test_float_options_refuse_nan_everywhere():
    """NaN is among the cases of every float option (the rule, checked on the case list)."""
    floats = {(c.command, c.option) for c in CASES if c.tokens[-1:] == ("nan",)}
    for command, parser in _subparsers().items():
        for action in parser._actions:
            is_float = action.type is float or (isinstance(action, SchemaOption) and action.range.kind is float)
            if is_float:
                assert (command, max(action.option_strings, key=len)) in floats
