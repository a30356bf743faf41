"""The CLI side of instance projects: `nta init --output-mode instance`, a semantic mask warned in one line."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_training_assistant.cli.main import main
from napari_training_assistant.project import TrainingProject


def test_a_semantic_mask_is_added_with_a_one_line_warning(tmp_path, capsys):
    mask = np.zeros((40, 40), np.uint8)
    mask[2:8, 2:8] = 1
    mask[20:30, 20:30] = 1
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    tifffile.imwrite(tmp_path / "image.tif", mask * 100)
    assert main(["init", str(tmp_path / "p"), "--output-mode", "instance"]) == 0
    capsys.readouterr()
    assert main(["add-pair", str(tmp_path / "p"), "--image", str(tmp_path / "image.tif"), "--mask", str(tmp_path / "mask.tif")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nta add-pair: warning: pair_0001 (") and "semantic mask" in err[0]
    assert "Traceback" not in "".join(err)
    pair = TrainingProject.open(tmp_path / "p").dataset.pairs[0]
    assert pair.mask_mode == "instance"
    labels = mask.copy()
    labels[20:30, 20:30] = 2  # a real instance mask: no warning
    tifffile.imwrite(tmp_path / "mask2.tif", labels)
    assert main(["add-pair", str(tmp_path / "p"), "--image", str(tmp_path / "image.tif"), "--mask", str(tmp_path / "mask2.tif")]) == 0
    assert capsys.readouterr().err == ""
