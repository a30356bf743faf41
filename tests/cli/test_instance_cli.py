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


def test_an_instance_project_from_the_command_line(tmp_path, capsys):
    import json

    from napari_training_assistant.data.synthetic_nuclei import make_nuclei

    root = str(tmp_path / "nuclei")
    assert main(["init", root, "--output-mode", "instance", "--preset", "tiny_unet"]) == 0
    for seed, split in enumerate(("train", "train", "val", "benchmark")):
        image, labels = make_nuclei((48, 48), n_nuclei=4, radius_range=(4.0, 7.0), seed=seed, touching=0.5)
        tifffile.imwrite(tmp_path / f"i{seed}.tif", image)
        tifffile.imwrite(tmp_path / f"m{seed}.tif", labels)
        assert main(["add-pair", root, "--image", str(tmp_path / f"i{seed}.tif"), "--mask", str(tmp_path / f"m{seed}.tif"), "--split", split]) == 0
    capsys.readouterr()
    assert main(["train", root, "--epochs", "1", "--samples-per-epoch", "4", "--batch-size", "2", "--device", "cpu", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "accuracy_50" in trained["metrics"]["objects"] and "instance_accuracy_50" in trained["benchmark"]
    assert main(["predict", root, "--image", str(tmp_path / "i0.tif"), "--min-size", "2", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert predicted["parameters"]["output_mode"] == "instance" and predicted["parameters"]["instance_min_size"] == 2
    assert predicted["parameters"]["objects"] == int(tifffile.imread(predicted["prediction_path"]).max())
    assert main(["benchmark", root, "--json"]) == 0
    assert "instance_panoptic_quality_50" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
