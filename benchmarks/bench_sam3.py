"""SAM3 preview latency through the plugin's own path (`Annotator.preview`, transformers backend).

The question a user asks: after the image embedding, how fast is the next click? Measured: loading the
model, the first preview of an image (embedding + prompt), then cached prompts (box, points, exemplar) on the
same image, medians over `--repeats`; and switching back to an image still in the embedding cache.

Without `--folder`, a full-size SAM3 (transformers' default `Sam3VideoConfig`, the facebook/sam3 sizes) with
random weights is written once into `--workdir` (about 3.4 GB): timings do not depend on weight values, and
no weights can be downloaded here. Prints one JSON object.

    python benchmarks/bench_sam3.py                       # full-size random SAM3, CPU
    python benchmarks/bench_sam3.py --folder models/sam3  # a real facebook/sam3 folder
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from napari_training_assistant.annotate.annotator import Annotator
from napari_training_assistant.annotate.model_folder import validate_model_folder
from napari_training_assistant.annotate.prompts import Box, Point, Prompts
from napari_training_assistant.data.synthetic_nuclei import make_nuclei


def full_size_random_folder(workdir: Path) -> Path:
    folder = workdir / "sam3_full_random"
    if not (folder / "model.safetensors").is_file():
        from transformers import Sam3VideoConfig, Sam3VideoModel

        torch.manual_seed(0)
        Sam3VideoModel(Sam3VideoConfig()).save_pretrained(folder, safe_serialization=True)
    return folder


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="a SAM3 folder (model.safetensors + config.json)")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "nta-bench")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=1024, help="edge of the generated test image")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    folder_path = args.folder or full_size_random_folder(args.workdir)
    folder = validate_model_folder(folder_path, "2d", args.device)
    image, _ = make_nuclei((args.size, args.size), n_nuclei=40, seed=0)
    other, _ = make_nuclei((args.size, args.size), n_nuclei=40, seed=1)
    quarter = args.size / 4
    box = Prompts(boxes=(Box(quarter, quarter, 2 * quarter, 2 * quarter),))
    points = Prompts(points=(Point(1.5 * quarter, 1.5 * quarter), Point(3 * quarter, 3 * quarter, positive=False)))
    exemplar = Prompts(exemplars=(Box(quarter, quarter, 1.3 * quarter, 1.3 * quarter),))
    annotator = Annotator()

    load_s, _ = timed(lambda: annotator.image_backend(folder))
    first = annotator.preview(folder, image, "image", box)

    def cached(prompts: Prompts) -> float:
        return statistics.median(annotator.preview(folder, image, "image", prompts).segment_s for _ in range(args.repeats))

    box_s, points_s = cached(box), cached(points)
    exemplar_first = annotator.preview(folder, image, "image", exemplar)  # loads the detector
    exemplar_s = cached(exemplar)
    annotator.preview(folder, other, "other", box)
    switch_back_s, again = timed(lambda: annotator.preview(folder, image, "image", box))
    print(json.dumps({
        "model": "facebook/sam3 folder" if args.folder else "full-size SAM3, random weights (default Sam3VideoConfig)",
        "parameters_m": round(sum(p.numel() for p in annotator.image_backend(folder).tracker.parameters()) / 1e6, 1),
        "device": folder.device, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "image": [args.size, args.size], "repeats": args.repeats,
        "load_tracker_s": round(load_s, 2),
        "first_preview_embed_s": round(first.embed_s, 2), "first_preview_prompt_s": round(first.segment_s, 3),
        "cached_box_prompt_s_median": round(box_s, 3), "cached_points_prompt_s_median": round(points_s, 3),
        "first_exemplar_s (detector load + neck)": round(exemplar_first.segment_s, 2),
        "cached_exemplar_prompt_s_median": round(exemplar_s, 3),
        "switch_back_to_cached_image_s": round(switch_back_s, 3), "switch_back_reembedded": again.embedded,
        "embed_over_cached_box_ratio": round(first.embed_s / box_s, 1),
    }))


if __name__ == "__main__":
    main()
