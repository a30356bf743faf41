"""SAM3 on a CUDA GPU (skipped without one, as in CI): the tiny model's text prompt, tiled scan and SAM3.0
tracker propagation agree with the CPU, and the benchmark's GPU figures (full-size random SAM3, or the
facebook/sam3 folder in NTA_SAM3_FOLDER) print as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
pytest.importorskip("transformers")


def test_concepts_scans_and_propagation_on_cuda_match_the_cpu(tiny_sam3_folder):
    from napari_training_assistant.annotate.annotator import Annotator
    from napari_training_assistant.annotate.model_folder import validate_model_folder
    from napari_training_assistant.annotate.prompts import FramePrompts, Point, Prompts
    from napari_training_assistant.annotate.tiling import PlaneSource, TileGrid

    image = np.random.default_rng(0).integers(0, 4000, (500, 400)).astype(np.uint16)
    windows = TileGrid.for_model(image.shape, 224).windows()
    results = {}
    for device in ("cpu", "cuda"):
        annotator = Annotator()
        folder = validate_model_folder(tiny_sam3_folder, "2d", device)
        text = annotator.preview(folder, image[:224, :224], "img", Prompts(text="nucleus"), score_threshold=0.05)
        scan = annotator.scan(folder, PlaneSource(image), "img", windows, Prompts(text="nucleus"))
        tracker = annotator.propagation_backend(validate_model_folder(tiny_sam3_folder, "3d", device))
        stack = np.stack([image[:128, :128]] * 4)
        slices = dict(tracker.propagate(stack, FramePrompts({1: Prompts(points=(Point(60, 60),))})))
        results[device] = (text.detections.instances, scan.instances, slices)
    cpu, cuda = results["cpu"], results["cuda"]
    assert [round(i.score, 2) for i in cpu[0]] == pytest.approx([round(i.score, 2) for i in cuda[0]], abs=0.02)
    assert abs(cpu[1] - cuda[1]) <= max(2, cpu[1] // 10) and sorted(cpu[2]) == sorted(cuda[2]) == [0, 1, 2, 3]


def test_the_sam3_benchmark_on_cuda_prints_its_figures(tmp_path):
    folder = os.environ.get("NTA_SAM3_FOLDER")
    script = Path(__file__).parents[2] / "benchmarks" / "bench_sam3.py"
    args = [sys.executable, str(script), "--device", "cuda", "--workdir", str(tmp_path), "--repeats", "3"]
    done = subprocess.run(args + (["--folder", folder] if folder else []), capture_output=True, text=True, timeout=3600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report))
    assert report["device"].startswith("cuda") and report["scan_tiles_per_s"] > 0 and report["propagation_per_slice_s_median"] > 0
