"""`nta sam3-check`: the backend a folder needs, refusals as exit 2 with one line, and --load timing one prompt
(2d) or one propagation (3d)."""

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


def test_sam3_1_weights_on_cpu_are_refused_with_what_runs_there(tmp_path, capsys):
    (tmp_path / "sam3.1_multiplex.pt").write_bytes(b"")
    assert main(["sam3-check", str(tmp_path), "--mode", "3d", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs CUDA; on CPU choose a SAM3.0 Hugging Face folder (model.safetensors + config.json)" in err


def test_3d_load_on_cpu_propagates_through_a_generated_stack_with_the_sam3_0_tracker(tiny_sam3_folder, capsys):
    assert main(["sam3-check", str(tiny_sam3_folder), "--mode", "3d", "--device", "cpu", "--load", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["backend"], report["runs"]) == ("tracker_video", "SAM3.0 tracker (transformers) on cpu")
    assert report["slices"] == 8 and report["load_s"] > 0 and report["per_slice_s"] > 0


def test_load_times_a_box_and_a_point_prompt(tiny_sam3_folder, capsys):
    assert main(["sam3-check", str(tiny_sam3_folder), "--device", "cpu", "--load", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["backend"] == "transformers" and report["weights"] == "model.safetensors" and report["device"] == "cpu"
    assert report["embed_s"] > 0 and report["box_prompt_s"] > 0 and report["point_reused_embedding"] is True


def test_load_with_text_times_a_concept_prompt_and_a_tiled_scan(tiny_sam3_folder, capsys):
    args = ["sam3-check", str(tiny_sam3_folder), "--device", "cpu", "--load", "--text", "nucleus", "--scan-size", "500", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["text"] == "nucleus" and report["text_first_s"] > 0 and report["text_cached_s"] > 0
    assert (report["scan_tile"], report["scan_tiles"]) == (224, 9) and report["scan_tiles_per_s"] > 0


def test_a_tile_smaller_than_the_model_input_is_refused_before_loading(tiny_sam3_folder, capsys):
    args = ["sam3-check", str(tiny_sam3_folder), "--device", "cpu", "--load", "--text", "cell", "--scan-size", "900", "--tile-size", "100"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tile size 100 is smaller than the model's input of 224 px" in err


def test_a_text_prompt_to_a_folder_without_a_tokenizer_is_refused_before_loading(tiny_sam3_folder, tmp_path, capsys):
    import shutil

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_sam3_folder / name, tmp_path)
    assert main(["sam3-check", str(tmp_path), "--device", "cpu", "--load", "--text", "cell"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no text tokenizer (tokenizer.json, or vocab.json + merges.txt)" in err
