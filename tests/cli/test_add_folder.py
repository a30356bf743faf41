"""`nta add-folder PROJECT DIR`: every pair of images/ + masks/ or nothing, unmatched files named (or skipped
with --skip-unmatched), duplicates skipped and listed per file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_training_assistant.cli.main import main
from napari_training_assistant.project import TrainingProject


def run(argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(rc: int, out: str, err: str) -> str:
    assert rc == 2 and out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nta add-folder: error: ")
    return lines[0]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """(a new 2D project, a folder with images/ a.tif, b.tif and masks/ a.tif, b_labels.tif)."""
    folder = tmp_path / "incoming"
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 1
    for seed, (image, mask_name) in enumerate((("a.tif", "a.tif"), ("b.tif", "b_labels.tif"))):
        tifffile.imwrite(folder / "images" / image, np.random.default_rng(seed).integers(0, 255, (32, 32), dtype=np.uint8))
        tifffile.imwrite(folder / "masks" / mask_name, mask)
    project = TrainingProject.create(tmp_path / "proj", architecture={"preset": "tiny_unet"})
    return project.root, folder


def test_adds_every_pair_and_prints_them(world, capsys):
    root, folder = world
    rc, out, err = run(["add-folder", root, folder, "--split", "train"], capsys)
    assert rc == 0 and err == ""
    assert out.splitlines() == [f"added 2 pair(s) from {folder}: pair_0001 (train), pair_0002 (train)"]
    records = TrainingProject.open(root).dataset.pairs
    assert [Path(r.source_files["mask"]).name for r in records] == ["a.tif", "b_labels.tif"]


def test_json_lists_added_pairs_duplicates_and_skipped_files(world, capsys):
    root, folder = world
    assert run(["add-folder", root, folder], capsys)[0] == 0
    tifffile.imwrite(folder / "images" / "c.tif", np.zeros((32, 32), np.uint8))
    rc, out, _ = run(["add-folder", root, folder, "--skip-unmatched", "--json"], capsys)
    report = json.loads(out.splitlines()[-1])
    assert rc == 0 and report["added"] == [] and report["unmatched"] == ["images/c.tif"]
    assert report["duplicates"] == [{"image": "a.tif", "held_by": "pair_0001"}, {"image": "b.tif", "held_by": "pair_0002"}]
    rc, out, _ = run(["add-folder", root, folder, "--skip-unmatched"], capsys)
    assert "skipped images/a.tif: the same image and mask as pair_0001 (add it anyway with --allow-duplicate)" in out
    assert "skipped images/c.tif: no partner" in out


def test_unmatched_files_refuse_the_folder_in_one_line(world, capsys):
    root, folder = world
    tifffile.imwrite(folder / "masks" / "z.tif", np.zeros((32, 32), np.uint8))
    line = one_error_line(*run(["add-folder", root, folder], capsys))
    assert "masks/z.tif" in line and "--skip-unmatched" in line
    assert TrainingProject.open(root).dataset.pairs == []


def test_a_bad_pair_adds_nothing_and_names_the_file_and_flag(world, capsys):
    root, folder = world
    line = one_error_line(*run(["add-folder", root, folder, "--mask-mode", "label-map", "--label-map", "1:1", "--channel-axis", "2"], capsys))
    assert line.count("--channel-axis 2") == 2 and "a.tif + a.tif" in line and "none was" in line
    (folder / "masks" / "b_labels.tif").write_bytes(b"junk")
    line = one_error_line(*run(["add-folder", root, folder], capsys))
    assert "b_labels.tif" in line and "cannot read" in line
    assert TrainingProject.open(root).dataset.pairs == []


def test_a_folder_without_images_and_masks_is_refused(world, capsys):
    root, folder = world
    assert "images/ and a masks/" in one_error_line(*run(["add-folder", root, folder / "images"], capsys))
