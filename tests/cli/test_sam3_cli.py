"""`nta sam3-check`: the backend a folder needs, refusals as exit 2 with one line, and --load timing one prompt."""

from __future__ import annotations

import json
import subprocess
import sys

from napari_training_assistant.cli import main


def test_a_folder_without_weights_is_exit_2_with_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "napari_training_assistant.cli", "sam3-check", str(tmp_path), "--device", "cpu"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "neither model.safetensors" in done.stderr


def test_3d_on_cpu_is_refused(tmp_path, capsys):
    (tmp_path / "sam3.1_multiplex.pt").write_bytes(b"")
    assert main(["sam3-check", str(tmp_path), "--mode", "3d", "--device", "cpu"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_load_times_a_box_and_a_point_prompt(tiny_sam3_folder, capsys):
    assert main(["sam3-check", str(tiny_sam3_folder), "--device", "cpu", "--load", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["backend"] == "transformers" and report["weights"] == "model.safetensors" and report["device"] == "cpu"
    assert report["embed_s"] > 0 and report["box_prompt_s"] > 0 and report["point_reused_embedding"] is True
