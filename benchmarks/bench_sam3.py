"""SAM3 speed through the plugin's own paths (`Annotator`, transformers backend), on this machine's device.

The questions a user asks: after the image embedding, how fast is the next click? How long does a text
prompt take the first time and once its features are cached? How fast does 3D propagation go on a CPU? How
many tiles per second does a scan of a large image manage? Measured: loading the model, the first preview of
an image (embedding + prompt), cached prompts (box, points, exemplar, text) on the same image (medians over
`--repeats`), switching back to a cached image; propagation of one point through a `--stack`-slice stack
(the SAM3.0 tracker, per slice); a text-prompt scan of a `--scan-size` square image on the tile grid.

Without `--folder`, a full-size SAM3 (transformers' default `Sam3VideoConfig`, the facebook/sam3 sizes) with
random weights is written once into `--workdir` (about 3.4 GB): timings do not depend on weight values, and
no weights can be downloaded here. Prints one JSON object.

    python benchmarks/bench_sam3.py                       # full-size random SAM3, CPU
    python benchmarks/bench_sam3.py --folder models/sam3  # a real facebook/sam3 folder
    python benchmarks/bench_sam3.py --device cuda         # the same on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_training_assistant.annotate.annotator import Annotator
from napari_training_assistant.annotate.model_folder import validate_model_folder
from napari_training_assistant.annotate.prompts import Box, FramePrompts, Point, Prompts
from napari_training_assistant.annotate.tiling import PlaneSource, TileGrid, model_input_size
from napari_training_assistant.data.synthetic_nuclei import make_nuclei


def full_size_random_folder(workdir: Path) -> Path:
    """A full-size random SAM3 and a CLIP tokenizer (the real vocabulary is not here: a letters-only one
    gives text prompts of realistic token counts, which is all the timing depends on)."""
    folder = workdir / "sam3_full_random"
    if not (folder / "model.safetensors").is_file():
        from transformers import Sam3VideoConfig, Sam3VideoModel

        torch.manual_seed(0)
        Sam3VideoModel(Sam3VideoConfig()).save_pretrained(folder, safe_serialization=True)
    if not (folder / "tokenizer.json").is_file():
        write_letters_tokenizer(folder)
    return folder


def write_letters_tokenizer(folder: Path) -> None:
    import string
    import tempfile

    from transformers import CLIPTokenizer

    vocab = {c: i for i, c in enumerate(string.ascii_lowercase)} | {c + "</w>": 26 + i for i, c in enumerate(string.ascii_lowercase)}
    vocab |= {"<|startoftext|>": 49406, "<|endoftext|>": 49407}
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "vocab.json").write_text(json.dumps(vocab))
        (Path(scratch) / "merges.txt").write_text("#version: 0.2\n")
        CLIPTokenizer(str(Path(scratch) / "vocab.json"), str(Path(scratch) / "merges.txt")).save_pretrained(folder)


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
    parser.add_argument("--stack", type=int, default=8, help="slices of the propagation stack (0: skip)")
    parser.add_argument("--scan-size", type=int, default=4096, help="edge of the scanned image (0: skip the scan)")
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
    text_first = annotator.preview(folder, image, "image", Prompts(text="nucleus"))
    text_s = cached(Prompts(text="nucleus"))
    annotator.preview(folder, other, "other", box)
    switch_back_s, again = timed(lambda: annotator.preview(folder, image, "image", box))
    report = {
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
        "first_text_prompt_s (text encoder)": round(text_first.segment_s, 3),
        "cached_text_prompt_s_median": round(text_s, 3),
    }
    if args.stack:
        report |= propagation(folder_path, args.device, args.size, args.stack)
    if args.scan_size:
        report |= scan(annotator, folder, args.scan_size)
    print(json.dumps(report))


def propagation(folder_path: Path, device: str, size: int, depth: int) -> dict:
    """One point on the middle slice of a generated stack, propagated through every slice (SAM3.0 tracker)."""
    folder = validate_model_folder(folder_path, "3d", device)
    annotator = Annotator()
    load_s, backend = timed(lambda: annotator.propagation_backend(folder))
    volume = np.stack([make_nuclei((size, size), n_nuclei=40, seed=z)[0] for z in range(depth)])
    middle = depth // 2
    stamps = [time.perf_counter()]
    for _ in backend.propagate(volume, FramePrompts({middle: Prompts(points=(Point(size / 2, size / 2),))})):
        stamps.append(time.perf_counter())
    per_slice = np.diff(stamps)
    return {"propagation_backend": folder.describe(), "propagation_load_s": round(load_s, 2), "stack": [depth, size, size],
            "propagation_first_slice_s": round(float(per_slice[0]), 2),
            "propagation_per_slice_s_median": round(float(np.median(per_slice[1:])), 2),
            "propagation_total_s": round(stamps[-1] - stamps[0], 1)}


def scan(annotator: Annotator, folder, size: int) -> dict:
    """A text prompt on every tile of a generated `size` x `size` image (tiles of the model's input)."""
    image, _ = make_nuclei((size, size), n_nuclei=max(40, size * size // 20000), seed=2)
    grid = TileGrid.for_model(image.shape, model_input_size(folder.path))
    windows = grid.windows()
    scan_s, found = timed(lambda: annotator.scan(folder, PlaneSource(image), "scan", windows, Prompts(text="nucleus")))
    stitch_s, labels = timed(lambda: found.labels(0.5))
    return {"scan_image": [size, size], "scan_tile": grid.tile, "scan_tiles": len(windows), "scan_s": round(scan_s, 1),
            "scan_tiles_per_s": round(len(windows) / scan_s, 3), "scan_instances": found.instances,
            "scan_restitch_s": round(stitch_s, 2)}


if __name__ == "__main__":
    main()
