"""The `nta` command line contract, through real subprocesses (`python -m napari_training_assistant.cli`).

Exit 0 on success; exit 2 on a user error with exactly one line on stderr and no traceback;
`--json` prints one JSON object as the last line of stdout.

Interpreter start-ups are the cost here (torch-importing commands take seconds), so the happy path
runs once as a module-scoped scenario and the user-error subprocesses run concurrently; further
error paths run in-process through `cli.main(argv)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from napari_training_assistant.cli import main
from napari_training_assistant.model import build_model, describe, load_model, save_checkpoint
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.schemas.architecture import default_architecture

NTA = [sys.executable, "-m", "napari_training_assistant.cli"]
SUBPROCESS_CALLS: list[list[str]] = []  # every subprocess this module starts (kept under budget)


def nta(*args: Any, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(a) for a in args]
    SUBPROCESS_CALLS.append(argv)
    env = {**os.environ, "PYTHONWARNINGS": "default", "COLUMNS": "200"}
    return subprocess.run([*NTA, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    no_traceback(result)
    assert result.returncode == 0, f"rc {result.returncode}: {result.stderr}"


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert_ok(result)
    lines = result.stdout.strip().splitlines()
    assert lines, "no stdout"
    payload = json.loads(lines[-1])
    assert isinstance(payload, dict)
    return payload


def assert_user_error(rc: int | None, stdout: str, stderr: str, *fragments: str) -> str:
    assert "Traceback" not in stdout + stderr, stderr
    assert rc == 2, f"rc {rc}; stderr: {stderr!r}; stdout: {stdout[-500:]!r}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    line = lines[0]
    assert line.startswith("nta") and "error" in line, line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


# ------------------------------------------------------------------------------------------- input files


class Evil:
    """Pickles to a call of os.system: loading it with plain pickle would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny_architecture(**changes: Any):
    return default_architecture("2d", "binary", 2, preset="tiny_unet", **changes)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 1
    labels = np.zeros((32, 32), np.uint16)
    labels[2:6, 2:6], labels[10:15, 10:15], labels[20:25, 20:25] = 1, 2, 5
    stack = rng.integers(0, 255, (4, 32, 32), dtype=np.uint16)
    stack_mask = np.zeros((4, 32, 32), np.uint8)
    stack_mask[:, 5:9, 5:9] = 1
    tifffile.imwrite(d / "img.tif", image)
    tifffile.imwrite(d / "mask.tif", mask)
    tifffile.imwrite(d / "labels.tif", labels)
    tifffile.imwrite(d / "stack.tif", stack, photometric="minisblack")
    tifffile.imwrite(d / "stack_mask.tif", stack_mask, photometric="minisblack")
    Image.fromarray(image).save(d / "img.png")
    Image.fromarray(mask * 255).save(d / "mask.png")
    (d / "bad.tif").write_bytes(b"this is not a TIFF file")
    (d / "img.xyz").write_bytes(b"\x00" * 16)
    torch.manual_seed(0)
    torch.save(build_model(tiny_architecture()).state_dict(), d / "my weights (1).pt")
    torch.save(build_model(tiny_architecture(depth=1)).state_dict(), d / "depth1.pt")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": Evil(d / "PWNED")}, d / "evil.pt")
    assert not (d / "PWNED").exists()
    return d


# ------------------------------------------------------------------------------------------- happy path


@dataclass
class Scenario:
    root: Path
    project: Path
    files: Path
    results: dict[str, subprocess.CompletedProcess[str]]
    checkpoint_model: torch.nn.Module

    def __getitem__(self, key: str) -> subprocess.CompletedProcess[str]:
        return self.results[key]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, files: Path) -> Scenario:
    """One project driven through every command; each step's CompletedProcess is kept for the tests."""
    root = tmp_path_factory.mktemp("cli")
    proj = root / "proj"
    f = files
    r: dict[str, subprocess.CompletedProcess[str]] = {}
    pool = ThreadPoolExecutor(max_workers=2)  # 2 cores: independent steps run side by side

    def side_commands() -> None:  # independent of the project
        r["version"] = nta("--version")

    side = pool.submit(side_commands)
    r["init"] = nta("init", proj, "--name", "CLI test", "--preset", "tiny_unet", "--json")
    r["add_tif"] = nta("add-pair", proj, "--image", f / "img.tif", "--mask", f / "mask.tif", "--split", "train", "--json")
    r["add_duplicate"] = nta("add-pair", proj, "--image", f / "img.png", "--mask", f / "mask.png", "--split", "val")
    r["add_png"] = nta(
        "add-pair", proj, "--image", f / "img.png", "--mask", f / "mask.png", "--split", "val", "--allow-duplicate", "--json"
    )  # fmt: skip  (the same pixels as img.tif / mask.tif)
    r["add_label_map"] = nta(
        "add-pair", proj, "--image", f / "img.tif", "--mask", f / "labels.tif",
        "--mask-mode", "label-map", "--label-map", "1:1, 2:1, 5:0", "--json",
    )  # fmt: skip
    r["add_slice"] = nta(
        "add-pair", proj, "--image", f / "stack.tif", "--mask", f / "stack_mask.tif", "--slice", "2",
        "--split", "benchmark",
    )  # fmt: skip  (human output)
    r["status_after_adds"] = nta("status", proj, "--json")
    r["set_split"] = nta("set-split", proj, "pair_0003", "benchmark")
    r["remove"] = nta("remove-pair", proj, "pair_0004", "--json")
    pairs_text = pool.submit(nta, "pairs", proj)
    r["pairs"] = nta("pairs", proj, "--json")
    r["pairs_text"] = pairs_text.result()
    r["import"] = nta("import-weights", proj, f / "my weights (1).pt", "--json")
    r["start"] = nta("start", proj, "imported:imported_001")

    # a real training result, registered in-process, and a benchmark row
    project = TrainingProject.open(proj)
    arch = project.architecture.model_dump(mode="json")
    torch.manual_seed(1)
    model = build_model(arch).eval()
    checkpoint_id, path = project.checkpoints.reserve()
    save_checkpoint(path, model, arch, {"checkpoint_id": checkpoint_id})
    project.checkpoints.register(
        checkpoint_id,
        architecture=arch,
        dataset_pair_ids=project.dataset.ids(),
        metrics={"dice": 0.81, "iou": 0.69},
        parent_id=None,
        starting_weights=project.starting_weights.model_dump(mode="json"),
        architecture_summary=describe(arch),
    )
    project.history.append_benchmark({"checkpoint_id": checkpoint_id, "n_images": 2, "dice": 0.8, "iou": 0.7})

    read_only = {
        "checkpoints": ("checkpoints", proj, "--json"),
        "checkpoints_text": ("checkpoints", proj),
        "status_text": ("status", proj),
        "status_final": ("status", proj, "--json"),
    }
    futures = {key: pool.submit(nta, *argv) for key, argv in read_only.items()}
    r.update({key: future.result() for key, future in futures.items()})
    (proj / "checkpoints" / "latest.pt").write_bytes(b"damaged")
    r["doctor_check"] = nta("doctor", proj, "--check", "--json")
    r["doctor_repair"] = nta("doctor", proj, "--json")
    r["doctor_text"] = nta("doctor", proj)
    side.result()
    pool.shutdown()
    return Scenario(root, proj, files, r, model)


def test_version(scenario):
    assert_ok(scenario["version"])
    assert "napari-training-assistant" in scenario["version"].stdout


def test_init_json_reports_the_new_project(scenario):
    info = last_json(scenario["init"])
    assert info["project_name"] == "CLI test"
    assert info["dataset_count"] == 0
    assert info["latest_checkpoint"] is None
    assert info["latest_benchmark"] is None
    assert info["architecture"]["preset"] == "tiny_unet"
    assert (info["architecture"]["depth"], info["architecture"]["base_channels"]) == (2, 8)
    assert TrainingProject.is_project(scenario.project)


def test_add_pair_from_tiff(scenario):
    pair = last_json(scenario["add_tif"])
    assert pair["pair_id"] == "pair_0001"
    assert pair["split"] == "train" and pair["split_assigned_by"] == "user"
    assert pair["image_shape"] == [32, 32] and pair["mask_shape"] == [32, 32]
    assert pair["saved_labels"] == [0, 1]
    assert pair["source_files"]["image"].endswith("img.tif")
    assert (scenario.project / pair["image_path"]).is_file()
    assert (scenario.project / pair["mask_path"]).is_file()


def test_add_pair_refuses_a_duplicate_unless_allowed(scenario):
    result = scenario["add_duplicate"]
    assert_user_error(result.returncode, result.stdout, result.stderr, "already in the dataset as pair_0001", "--allow-duplicate")


def test_add_pair_from_png(scenario):
    pair = last_json(scenario["add_png"])
    assert pair["pair_id"] == "pair_0002"
    assert pair["split"] == "val"
    assert pair["source_labels"] == [0, 255] and pair["saved_labels"] == [0, 1]
    saved = tifffile.imread(scenario.project / pair["mask_path"])
    assert set(np.unique(saved)) == {0, 1}


def test_add_pair_with_label_map_and_auto_split(scenario):
    pair = last_json(scenario["add_label_map"])
    assert pair["pair_id"] == "pair_0003"
    assert pair["mask_mode"] == "label-map"
    assert pair["source_labels"] == [0, 1, 2, 5] and pair["saved_labels"] == [0, 1]
    assert pair["split_assigned_by"] == "auto"
    saved = tifffile.imread(scenario.project / pair["mask_path"])
    assert saved[12, 12] == 1 and saved[22, 22] == 0  # 2 -> 1, 5 -> 0


def test_add_pair_slice_of_a_stack_prints_one_line(scenario):
    result = scenario["add_slice"]
    assert_ok(result)
    assert result.stdout.startswith("added pair_0004 (benchmark)")


def test_status_after_adds_reflects_counts(scenario):
    info = last_json(scenario["status_after_adds"])
    assert info["dataset_count"] == 4
    expected = {"train": 1, "val": 1, "benchmark": 1}  # pair_0001, pair_0002, pair_0004 (user splits)
    expected[last_json(scenario["add_label_map"])["split"]] += 1  # pair_0003: automatic
    assert info["split_counts"] == expected
    assert info["latest_checkpoint"] is None and info["latest_benchmark"] is None
    assert info["checkpoint_count"] == 0
    assert info["state"].startswith("ready to train")
    assert info["architecture_summary"]["encoder_levels"] == 2
    for key in ("project_name", "dataset_count", "latest_checkpoint", "latest_benchmark", "architecture"):
        assert key in info


def test_set_split_remove_pair_and_pairs(scenario):
    assert_ok(scenario["set_split"])
    assert "pair_0003 is now in benchmark" in scenario["set_split"].stdout
    tombstone = last_json(scenario["remove"])
    assert tombstone["pair_id"] == "pair_0004" and tombstone["split"] == "benchmark"
    assert not (scenario.project / "dataset" / "images" / "pair_0004.tif").exists()
    pairs = last_json(scenario["pairs"])["pairs"]
    assert [(p["pair_id"], p["split"]) for p in pairs] == [("pair_0001", "train"), ("pair_0002", "val"), ("pair_0003", "benchmark")]
    assert_ok(scenario["pairs_text"])
    assert "pair_0003" in scenario["pairs_text"].stdout and "pair_0004" not in scenario["pairs_text"].stdout


def test_import_weights_json(scenario):
    record = last_json(scenario["import"])
    assert record["model_id"] == "imported_001"
    assert record["source_filename"] == "my weights (1).pt"
    assert record["format"] == "pt" and record["key_prefix_stripped"] == ""
    assert record["sha256"] == hashlib.sha256((scenario.files / "my weights (1).pt").read_bytes()).hexdigest()
    copied = scenario.project / record["path"]
    assert copied.parent == scenario.project / "models" / "imported"
    assert " " not in copied.name and "(" not in copied.name
    assert copied.read_bytes() == (scenario.files / "my weights (1).pt").read_bytes()
    assert_ok(scenario["start"])
    assert "imported:imported_001" in scenario["start"].stdout


def test_checkpoints_json_lists_the_registered_checkpoint(scenario):
    listing = last_json(scenario["checkpoints"])
    assert listing["latest"] == "unet_run_001"
    [record] = listing["checkpoints"]
    assert record["checkpoint_id"] == "unet_run_001" and record["parent_id"] is None
    assert record["metrics"] == {"dice": 0.81, "iou": 0.69}
    assert record["dataset_pair_ids"] == ["pair_0001", "pair_0002", "pair_0003"]
    assert record["starting_weights"]["choice"] == "imported"
    assert record["architecture_summary"]["encoder_levels"] == 2
    assert_ok(scenario["checkpoints_text"])
    assert "unet_run_001 *" in scenario["checkpoints_text"].stdout
    assert "0.810" in scenario["checkpoints_text"].stdout


def test_status_after_training(scenario):
    info = last_json(scenario["status_final"])
    assert info["dataset_count"] == 3 and info["removed_pairs"] == 1
    assert info["latest_checkpoint"] == "unet_run_001"
    assert info["latest_benchmark"]["checkpoint_id"] == "unet_run_001"
    assert info["latest_benchmark"]["dice"] == pytest.approx(0.8)
    assert info["imported_models"] == ["imported_001"]
    assert info["starting_weights"] == "imported:imported_001"
    text = scenario["status_text"]
    assert_ok(text)
    assert "unet_run_001" in text.stdout and "Dice 0.800" in text.stdout
    assert "CLI test" in text.stdout


def test_doctor_reports_then_repairs_latest(scenario):
    check = scenario["doctor_check"]
    no_traceback(check)
    assert check.returncode == 1
    report = json.loads(check.stdout.strip().splitlines()[-1])
    assert report["healthy"] is False and report["repaired"] is False
    assert any("latest.pt" in finding["file"] for finding in report["findings"])
    repaired = last_json(scenario["doctor_repair"])
    assert repaired["healthy"] is True
    assert any(finding["level"] == "fixed" for finding in repaired["findings"])
    assert_ok(scenario["doctor_text"])
    assert "healthy" in scenario["doctor_text"].stdout
    latest = scenario.project / "checkpoints" / "latest.pt"
    assert latest.read_bytes() == (scenario.project / "checkpoints" / "unet_run_001.pt").read_bytes()
    x = torch.randn(1, 1, 24, 24)
    with torch.no_grad():
        assert torch.equal(load_model(latest)(x), scenario.checkpoint_model(x))


# ------------------------------------------------------------------------------------------- user errors


def _add(c: Scenario, image: str, mask: str, *extra: str) -> list[Any]:
    return ["add-pair", c.project, "--image", c.files / image, "--mask", c.files / mask, *extra]


ERROR_CASES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "missing_project": (lambda c: ["status", c.root / "nowhere"], ("does not exist",)),
    "not_a_project": (lambda c: ["pairs", c.files], ("not a Training Project Folder",)),
    "bad_mask_file": (lambda c: _add(c, "img.tif", "bad.tif"), ("bad.tif", "cannot read as TIFF")),
    "unknown_extension": (lambda c: _add(c, "img.xyz", "mask.tif"), ("unknown file extension '.xyz'",)),
    "2d_mask_for_3d_stack": (lambda c: _add(c, "stack.tif", "mask.tif"), ("(4, 32, 32)", "slice")),
    "wrong_split": (lambda c: _add(c, "img.tif", "mask.tif", "--split", "test"), ("--split", "invalid choice")),
    "unknown_pair_id": (lambda c: ["remove-pair", c.project, "pair_9999"], ("pair_9999",)),
    "multiclass_without_num_classes": (
        lambda c: ["init", c.root / "multiclass", "--output-mode", "multiclass"],
        ("--num-classes",),
    ),
    "bad_label_map": (
        lambda c: _add(c, "img.tif", "labels.tif", "--mask-mode", "label-map", "--label-map", "1:one"),
        ("--label-map", "'1:one'"),
    ),
    "malicious_weights": (lambda c: ["import-weights", c.project, c.files / "evil.pt"], ("refusing", "system")),
    "incompatible_weights": (
        lambda c: ["import-weights", c.project, c.files / "depth1.pt"],
        ("does not fit", "missing key(s)"),
    ),
    "init_existing_project": (lambda c: ["init", c.project], ("already a Training Project Folder",)),
    "unknown_command": (lambda c: ["frobnicate", c.project], ("invalid choice", "frobnicate")),
    "missing_required_option": (lambda c: ["add-pair", c.project, "--image", c.files / "img.tif"], ("--mask",)),
    "demo_refuses_non_demo_folder": (lambda c: ["demo", "--dir", c.files], ("not a demo project",)),
}


@dataclass
class ErrorRun:
    results: dict[str, subprocess.CompletedProcess[str]]
    files_before: dict[str, bytes]
    project_files_before: dict[str, bytes]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def error_runs(scenario: Scenario) -> ErrorRun:
    """All error subprocesses, two at a time (they only read the scenario's finished project)."""
    files_before = _snapshot(scenario.files)
    project_before = {k: v for k, v in _snapshot(scenario.project).items() if not k.endswith(".lock")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(nta, *make(scenario)) for name, (make, _) in ERROR_CASES.items()}
        results = {name: future.result() for name, future in futures.items()}
    return ErrorRun(results, files_before, project_before)


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_user_error_exits_2_with_one_line(error_runs, case):
    result = error_runs.results[case]
    assert_user_error(result.returncode, result.stdout, result.stderr, *ERROR_CASES[case][1])
    assert result.stdout.strip() == ""


def test_user_errors_change_nothing(scenario, error_runs):
    assert not (scenario.files / "PWNED").exists()  # the malicious pickle never ran
    assert _snapshot(scenario.files) == error_runs.files_before  # the demo refusal left the folder alone
    after = {k: v for k, v in _snapshot(scenario.project).items() if not k.endswith(".lock")}
    assert after == error_runs.project_files_before
    assert not (scenario.root / "multiclass").exists()
    imported = sorted(p.name for p in (scenario.project / "models" / "imported").iterdir())
    assert imported and all(name.startswith("imported_001_") for name in imported)  # no second import


def test_subprocess_budget(scenario, error_runs):
    assert len(SUBPROCESS_CALLS) < 40


# ------------------------------------------------------------------------------------------- in-process errors


def run_main(argv: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str, str]:
    capsys.readouterr()
    try:
        rc: int | None = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code if isinstance(exc.code, int) else 2 if exc.code else 0
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def inproc(tmp_path_factory: pytest.TempPathFactory, files: Path) -> dict[str, Path]:
    """A 2D tiny project with one imported model and one pair, and a 3D project; made in-process."""
    root = tmp_path_factory.mktemp("inproc")
    p2 = TrainingProject.create(root / "p2", architecture={"preset": "tiny_unet"})
    p2.dataset.add_files(files / "img.tif", files / "mask.tif", split="train")
    from napari_training_assistant.model.weights_import import import_weights

    import_weights(p2, files / "my weights (1).pt")
    TrainingProject.create(root / "p3", spatial_dims="3d", architecture={"preset": "tiny_unet"})
    (root / "notempty").mkdir()
    (root / "notempty" / "keep.txt").write_text("mine")
    (root / "folder.pt").mkdir()
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes((files / "my weights (1).pt").read_bytes()[:600])
    (root / "garbage.safetensors").write_bytes(b"\xff" * 40)
    (root / "same bytes.pt").write_bytes((files / "my weights (1).pt").read_bytes())
    torch.save(torch.zeros(3), root / "tensor.pt")
    torch.save({"epochs": 3}, root / "notensors.pt")
    torch.save({"w": Evil(root / "PWNED_LEGACY")}, root / "evil_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(build_model(tiny_architecture()).state_dict(), root / "legacy.pt", _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, TorchScript files exist
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(root / "scripted.pt"))
    return {"root": root, "p2": root / "p2", "p3": root / "p3", "files": files}


def _inproc_cases(c: dict[str, Path]) -> dict[str, tuple[list[Any], tuple[str, ...]]]:
    f, p2, p3, root = c["files"], c["p2"], c["p3"], c["root"]

    def add(project: Path, image: str, mask: str, *extra: str) -> list[Any]:
        return ["add-pair", project, "--image", f / image, "--mask", f / mask, *extra]

    return {
        "no_command": ([], ("required",)),
        "init_under_a_file": (["init", f / "img.tif" / "sub"], ("cannot create",)),
        "init_into_file": (["init", f / "img.tif"], ("is a file",)),
        "init_not_empty": (["init", root / "notempty"], ("not empty", "--force")),
        "init_bad_spatial_dims": (["init", root / "x1", "--spatial-dims", "4d"], ("--spatial-dims",)),
        "init_num_classes_one": (["init", root / "x2", "--output-mode", "multiclass", "--num-classes", "1"], ("--num-classes",)),
        "init_num_classes_zero": (["init", root / "x3", "--output-mode", "multiclass", "--num-classes", "0"], ("--num-classes",)),
        "init_num_classes_not_int": (["init", root / "x4", "--num-classes", "three"], ("--num-classes",)),
        "init_num_classes_for_binary": (["init", root / "x5", "--num-classes", "3"], ("--num-classes", "multiclass")),
        "init_output_channels_for_binary": (["init", root / "x6", "--output-channels", "3"], ("--output-channels",)),
        "init_output_channels_zero": (
            ["init", root / "x7", "--output-mode", "multilabel", "--output-channels", "0"],
            ("--output-channels",),
        ),
        "init_class_names_mismatch": (
            ["init", root / "x8", "--output-mode", "multiclass", "--num-classes", "4", "--class-names", "bg,a"],
            ("class name",),
        ),
        "status_missing": (["status", root / "nowhere"], ("does not exist",)),
        "status_of_a_file": (["status", f / "img.tif"], ("is a file",)),
        "doctor_not_a_project": (["doctor", root / "notempty"], ("not a Training Project Folder",)),
        "add_pair_missing_image": (add(p2, "nope.tif", "mask.tif"), ("file not found",)),
        "add_pair_mask_is_folder": (["add-pair", p2, "--image", f / "img.tif", "--mask", root], ("folder",)),
        "add_pair_2d_mask_for_3d_stack_3d_project": (add(p3, "stack.tif", "mask.tif"), ("(32, 32)",)),
        "add_pair_2d_pair_in_3d_project": (add(p3, "img.tif", "mask.tif"), ("3D",)),
        "add_pair_slice_out_of_range": (add(p2, "stack.tif", "stack_mask.tif", "--slice", "9"), ("--slice 9 is outside",)),
        "add_pair_channel_axis_out_of_range": (add(p2, "img.tif", "mask.tif", "--channel-axis", "5"), ("--channel-axis 5",)),
        "add_pair_several_masks": (
            ["add-pair", p2, "--image", f / "img.tif", "--mask", f / "mask.tif", f / "mask.tif"],
            ("multilabel",),
        ),
        "add_pair_bad_mask_mode": (add(p2, "img.tif", "mask.tif", "--mask-mode", "rainbow"), ("--mask-mode",)),
        "add_pair_unknown_target_class": (
            add(p2, "img.tif", "labels.tif", "--mask-mode", "target-class", "--target-class", "zebra"),
            ("zebra",),
        ),
        "add_pair_instance_map_as_multiclass": (add(p2, "img.tif", "labels.tif", "--mask-mode", "multiclass"), ("labels",)),
        "label_map_not_numbers": (add(p2, "img.tif", "labels.tif", "--mask-mode", "label-map", "--label-map", "a:b"), ("--label-map",)),
        "label_map_no_colon": (add(p2, "img.tif", "labels.tif", "--mask-mode", "label-map", "--label-map", "1"), ("'1'",)),
        "label_map_three_parts": (add(p2, "img.tif", "labels.tif", "--mask-mode", "label-map", "--label-map", "1:1:1"), ("1:1:1",)),
        "label_map_empty": (add(p2, "img.tif", "labels.tif", "--mask-mode", "label-map", "--label-map", ","), ("label",)),
        "zarr_dataset_on_tiff": (add(p2, "img.tif", "mask.tif", "--image-dataset", "x"), ("not a Zarr",)),
        "set_split_unknown_pair": (["set-split", p2, "pair_9999", "val"], ("pair_9999",)),
        "set_split_bad_split": (["set-split", p2, "pair_0001", "test"], ("invalid choice",)),
        "remove_pair_missing_id_argument": (["remove-pair", p2], ("pair_id",)),
        "start_not_understood": (["start", p2, "bogus"], ("bogus",)),
        "start_unknown_imported": (["start", p2, "imported:imported_999"], ("imported_999",)),
        "start_unknown_checkpoint": (["start", p2, "checkpoint:unet_run_999"], ("unet_run_999",)),
        "weights_missing": (["import-weights", p2, root / "nope.pt"], ("not found",)),
        "weights_unknown_extension": (["import-weights", p2, f / "img.tif"], ("unsupported",)),
        "weights_folder": (["import-weights", p2, root / "folder.pt"], ("folder",)),
        "weights_empty": (["import-weights", p2, root / "empty.pt"], ("empty",)),
        "weights_truncated": (["import-weights", p2, root / "truncated.pt"], ("corrupt",)),
        "weights_garbage_safetensors": (["import-weights", p2, root / "garbage.safetensors"], ("corrupt",)),
        "weights_duplicate": (["import-weights", p2, root / "same bytes.pt"], ("already imported", "imported_001")),
        "weights_a_bare_tensor": (["import-weights", p2, root / "tensor.pt"], ("not a state dict",)),
        "weights_without_tensors": (["import-weights", p2, root / "notensors.pt"], ("no state dict",)),
        "weights_malicious_legacy_pickle": (["import-weights", p2, root / "evil_legacy.pt"], ("refusing",)),
        "weights_legacy_format": (["import-weights", p2, root / "legacy.pt"], ("legacy",)),
        "weights_torchscript": (["import-weights", p2, root / "scripted.pt"], ("TorchScript",)),
        "weights_other_depth": (["import-weights", p2, f / "depth1.pt"], ("missing key(s)",)),
        "checkpoints_not_a_project": (["checkpoints", root / "notempty"], ("not a Training Project Folder",)),
        "demo_dir_is_a_file": (["demo", "--dir", f / "img.tif"], ("not a demo project",)),
    }


IN_PROCESS_CASES = list(_inproc_cases({k: Path(k) for k in ("files", "p2", "p3", "root")}))


@pytest.mark.parametrize("case", IN_PROCESS_CASES)
def test_user_error_in_process(inproc, capsys, case):
    argv, fragments = _inproc_cases(inproc)[case]
    rc, out, err = run_main(argv, capsys)
    assert_user_error(rc, out, err, *fragments)


def test_in_process_errors_left_projects_unchanged(inproc, capsys):
    """Runs after the parametrized cases: nothing they refused was written."""
    for case in IN_PROCESS_CASES:
        argv, _ = _inproc_cases(inproc)[case]
        if argv and argv[0] == "init":
            target = Path(argv[1])
            assert not target.exists() or target in (inproc["root"] / "notempty", inproc["files"] / "img.tif")
    assert (inproc["root"] / "notempty" / "keep.txt").read_text() == "mine"
    assert not (inproc["root"] / "PWNED_LEGACY").exists()
    p2 = TrainingProject.open(inproc["p2"])
    assert [m.model_id for m in p2.imported_models.registry.models] == ["imported_001"]
    assert all(p.name.startswith("imported_001_") for p in (inproc["p2"] / "models" / "imported").iterdir())
    assert p2.dataset.ids() == ["pair_0001"]
    assert len(TrainingProject.open(inproc["p3"]).dataset) == 0


def test_in_process_success_paths(tmp_path, files, capsys):
    """init variants accepted on the command line (the subprocess scenario covers the rest)."""
    rc, out, err = run_main(["init", tmp_path / "mc", "--output-mode", "multiclass", "--num-classes", "3",
                             "--class-names", "bg, cell, nucleus", "--preset", "tiny_unet", "--json"], capsys)  # fmt: skip
    assert (rc, err) == (0, "")
    info = json.loads(out.strip().splitlines()[-1])
    assert info["class_names"] == ["bg", "cell", "nucleus"]
    assert (info["architecture"]["num_classes"], info["architecture"]["output_channels"]) == (3, 3)
    rc, out, err = run_main(
        ["add-pair", tmp_path / "mc", "--image", files / "img.tif", "--mask", files / "labels.tif",
         "--mask-mode", "target-class", "--target-class", "nucleus", "--json"], capsys)  # fmt: skip
    assert (rc, err) == (0, ""), err
    pair = json.loads(out.strip().splitlines()[-1])
    assert pair["target_class_name"] == "nucleus"
    rc, out, err = run_main(["init", tmp_path / "ml", "--output-mode", "multilabel", "--output-channels", "3"], capsys)
    assert (rc, err) == (0, "")
    assert TrainingProject.open(tmp_path / "ml").architecture.output_channels == 3
    rc, out, err = run_main(["init", tmp_path / "vol", "--spatial-dims", "3d", "--preset", "tiny_unet"], capsys)
    assert (rc, err) == (0, "")
    rc, out, err = run_main(["add-pair", tmp_path / "vol", "--image", files / "stack.tif", "--mask", files / "stack_mask.tif"], capsys)
    assert (rc, err) == (0, ""), err
    assert out.startswith("added pair_0001")
    (tmp_path / "nonempty").mkdir()
    (tmp_path / "nonempty" / "notes.txt").write_text("x")
    rc, out, err = run_main(["init", tmp_path / "nonempty", "--force"], capsys)
    assert (rc, err) == (0, "")
    assert (tmp_path / "nonempty" / "notes.txt").read_text() == "x"


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`nta status P | head -1`: no BrokenPipeError traceback when the reader closes the pipe."""
    project = TrainingProject.create(tmp_path / "p")
    done = subprocess.run(
        f"{shlex.join(NTA)} status {shlex.quote(str(project.root))} | (head -c 7; exec 0<&-; sleep 0.1)",
        shell=True, capture_output=True, text=True, timeout=120, executable="/bin/bash",
    )
    assert done.stdout == "project"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
