"""`Dataset.add_folder`: images/ + masks/ matched by stem, everything checked before the first write,
unmatched files named (or skipped), duplicates skipped and reported per file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_training_assistant.project import DatasetError, TrainingProject
from napari_training_assistant.project.folder_import import file_stem, find_folder_pairs
from napari_training_assistant.project.user_input import NamesInputs


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)


def _mask(value: int = 1) -> np.ndarray:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:10, 4:10] = value
    return mask


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """images/ a.tif, b.png, c.npy; masks/ a.tif, b_mask.tif, c_labels.npy."""
    root = tmp_path / "incoming"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    tifffile.imwrite(root / "images" / "a.tif", _image(0))
    Image.fromarray(_image(1)).save(root / "images" / "b.png")
    np.save(root / "images" / "c.npy", _image(2))
    tifffile.imwrite(root / "masks" / "a.tif", _mask())
    tifffile.imwrite(root / "masks" / "b_mask.tif", _mask())
    np.save(root / "masks" / "c_labels.npy", _mask())
    (root / "images" / ".hidden.tif").write_bytes(b"ignored")
    (root / "images" / "notes.txt").write_text("ignored")
    return root


def _project_files(project: TrainingProject) -> dict[str, bytes]:
    return {p.relative_to(project.root).as_posix(): p.read_bytes() for p in sorted(project.root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def test_files_are_matched_by_stem_in_any_readable_format(folder):
    found = find_folder_pairs(folder)
    assert [(i.name, m.name) for i, m in found.pairs] == [("a.tif", "a.tif"), ("b.png", "b_mask.tif"), ("c.npy", "c_labels.npy")]
    assert found.images_without_mask == [] and found.masks_without_image == [] and found.unmatched == []
    assert file_stem(Path("x.ome.zarr")) == "x" and file_stem(Path("x.OME.TIF")) == "x" and file_stem(Path("x.tif")) == "x"


def test_a_folder_without_images_and_masks_or_without_any_pair_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="images/ and a masks/"):
        find_folder_pairs(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", _image(0))
    with pytest.raises(DatasetError, match="no image"):
        find_folder_pairs(tmp_path)


def test_add_folder_adds_every_pair_with_the_same_options(project, folder):
    result = project.dataset.add_folder(folder, split="val")
    assert [r.pair_id for r in result.added] == ["pair_0001", "pair_0002", "pair_0003"]
    assert {r.split for r in result.added} == {"val"} and {r.source for r in result.added} == {"imported"}
    assert result.added[1].source_files == {"image": str(folder / "images" / "b.png"), "mask": str(folder / "masks" / "b_mask.tif")}
    assert result.duplicates == [] and result.unmatched == []
    assert project.dataset.ids() == ["pair_0001", "pair_0002", "pair_0003"]
    assert result.as_dict()["added"][0]["pair_id"] == "pair_0001"


def test_unmatched_files_are_named_and_nothing_is_added(project, folder):
    tifffile.imwrite(folder / "images" / "lonely.tif", _image(3))
    tifffile.imwrite(folder / "masks" / "d_seg.tif", _mask())
    before = _project_files(project)
    with pytest.raises(DatasetError) as info:
        project.dataset.add_folder(folder)
    message = str(info.value)
    assert "images/lonely.tif" in message and "masks/d_seg.tif" in message and "\n" not in message
    assert isinstance(info.value, NamesInputs) and "--skip-unmatched" in info.value.render({"skip_unmatched": "--skip-unmatched"})
    assert _project_files(project) == before

    result = project.dataset.add_folder(folder, skip_unmatched=True)
    assert len(result.added) == 3 and result.unmatched == ["images/lonely.tif", "masks/d_seg.tif"]


def test_one_bad_file_adds_nothing_and_each_problem_is_named(project, folder):
    (folder / "masks" / "b_mask.tif").write_bytes(b"not a TIFF")
    tifffile.imwrite(folder / "masks" / "a.tif", np.zeros((8, 8), np.uint8))  # not the image's shape
    before = _project_files(project)
    with pytest.raises(DatasetError) as info:
        project.dataset.add_folder(folder)
    message = str(info.value)
    assert message.startswith("2 of 3 pair(s)") and "none was" in message and "\n" not in message
    assert "a.tif + a.tif: " in message and "(8, 8)" in message
    assert "b.png + b_mask.tif: " in message and "cannot read as TIFF" in message
    assert _project_files(project) == before


def test_each_problem_keeps_the_field_it_names(project, folder):
    with pytest.raises(DatasetError) as info:
        project.dataset.add_folder(folder, channel_axis=5)
    rendered = info.value.render({"channel_axis": "--channel-axis"})
    assert rendered.startswith("3 of 3 pair(s)") and rendered.count("--channel-axis 5") == 3


def test_duplicates_are_skipped_and_reported_per_file(project, folder):
    project.dataset.add_folder(folder)
    tifffile.imwrite(folder / "images" / "a2.tif", _image(0))  # the same content as a.tif + a.tif
    tifffile.imwrite(folder / "masks" / "a2.tif", _mask())
    tifffile.imwrite(folder / "images" / "e.tif", _image(4))
    tifffile.imwrite(folder / "masks" / "e.tif", _mask())
    tifffile.imwrite(folder / "images" / "e2.tif", _image(4))  # a copy of e inside the folder
    tifffile.imwrite(folder / "masks" / "e2.tif", _mask())
    result = project.dataset.add_folder(folder)
    assert [r.source_files["image"].rsplit("/", 1)[-1] for r in result.added] == ["e.tif"]
    assert result.duplicates == [
        ("a.tif", "pair_0001"), ("a2.tif", "pair_0001"), ("b.png", "pair_0002"), ("c.npy", "pair_0003"), ("e2.tif", "images/e.tif")
    ]
    assert result.as_dict()["duplicates"][0] == {"image": "a.tif", "held_by": "pair_0001"}

    again = project.dataset.add_folder(folder, allow_duplicate=True)
    assert len(again.added) == 6 and again.duplicates == []
