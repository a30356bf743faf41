"""`nta sam3-check`: which backend a SAM3 model folder needs, and (with --load) whether it loads and segments
(2d: one box and one point prompt, a text prompt with --text, a tiled scan with --scan-size; 3d: one point
propagated through a generated stack)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..annotate.errors import Sam3Error
from ..annotate.model_folder import SAM3_DEVICE_HELP, SAM3_SPATIAL, check_reads_text, validate_model_folder
from ..annotate.tiling import TileGrid, model_input_size
from ..project.schemas.sam3 import Sam3Config
from .output import JSON_HELP, emit_json
from .validation import schema_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sam3-check", help="validate a SAM3 model folder (and with --load, load it and time one prompt)")
    p.add_argument("folder", type=Path, help="SAM3 model folder")
    p.add_argument("--mode", choices=SAM3_SPATIAL, default="2d", help="2d: image modes; 3d: propagation (SAM3.1 multiplex on CUDA, else the SAM3.0 tracker of a Hugging Face folder)")
    p.add_argument("--device", default="auto", help=SAM3_DEVICE_HELP)
    p.add_argument("--load", action="store_true", help="load the model; 2d: embed a generated image and time a box and a point prompt; "
                   "3d: propagate one point through a generated 8-slice stack")
    schema_option(p, "--text", schema=(Sam3Config, "text"), default=None,
                  help="2d --load: also run this text (concept) prompt, first and with its features cached")
    schema_option(p, "--tile-size", schema=(Sam3Config, "tile_size"), help="tile edge for --scan-size (0: the model input)")
    p.add_argument("--scan-size", type=int, default=0, metavar="N",
                   help="2d --load --text: scan a generated N x N image tile by tile and report tiles per second")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=sam3_check)


def _check_options(args: argparse.Namespace) -> None:
    if args.text is not None and not args.text.strip():
        raise Sam3Error("--text is empty: give what to find, e.g. --text nucleus")
    if args.scan_size < 0:
        raise Sam3Error(f"--scan-size must be 0 (no scan) or an image edge in pixels, not {args.scan_size}")
    if args.scan_size and not (args.load and args.text and args.mode == "2d"):
        raise Sam3Error("--scan-size scans with a text prompt: give --load and --text (2d mode) too")


def sam3_check(args: argparse.Namespace) -> int:
    _check_options(args)
    folder = validate_model_folder(args.folder, args.mode, args.device)
    report = {"folder": str(folder.path), "backend": folder.kind, "runs": folder.describe(), "weights": folder.weights.name,
              "device": folder.device}
    if args.text and args.mode == "2d":
        check_reads_text(folder)
    grid = None
    if args.scan_size:  # refused (tile smaller than the model input) before anything loads
        grid = TileGrid.for_model((args.scan_size, args.scan_size), model_input_size(folder.path), args.tile_size)
    if args.load:
        report |= _time_one_prompt(folder) if args.mode == "2d" else _time_propagation(folder)
    if args.load and args.text and args.mode == "2d":
        report |= _time_text(folder, args.text.strip())
    if grid is not None:
        report |= _time_scan(folder, args.text.strip(), grid)
    if args.json:
        emit_json(report)
    else:
        for key, value in report.items():
            print(f"{key:<12} {value}")
    return 0


def _time_one_prompt(folder) -> dict:
    from ..annotate.annotator import Annotator
    from ..annotate.prompts import Box, Point, Prompts
    from ..data.synthetic_nuclei import make_nuclei

    image, _ = make_nuclei((256, 256), n_nuclei=6, seed=0)
    annotator = Annotator()
    box = annotator.preview(folder, image, "check", Prompts(boxes=(Box(40, 40, 120, 120),)))
    point = annotator.preview(folder, image, "check", Prompts(points=(Point(80, 80),)))
    return {
        "embed_s": round(box.embed_s, 3),
        "box_prompt_s": round(box.segment_s, 3),
        "point_prompt_s": round(point.segment_s, 3),
        "point_reused_embedding": not point.embedded,
        "box_objects": box.objects,
        "box_foreground_fraction": round(float(np.mean(box.labels > 0)), 4),
    }


def _time_text(folder, text: str) -> dict:
    """A text prompt on a generated image: the first run (text encoder and detector loaded) and a cached one."""
    from ..annotate.annotator import Annotator
    from ..annotate.prompts import Prompts
    from ..data.synthetic_nuclei import make_nuclei

    image, _ = make_nuclei((256, 256), n_nuclei=6, seed=0)
    annotator = Annotator()
    first = annotator.preview(folder, image, "check", Prompts(text=text))
    cached = annotator.preview(folder, image, "check", Prompts(text=text))
    scores = [item.score for item in cached.detections.instances]
    return {"text": text, "text_first_s": round(first.segment_s, 3), "text_cached_s": round(cached.segment_s, 3),
            "text_objects": cached.objects, "text_top_score": round(max(scores, default=0.0), 3)}


def _time_scan(folder, text: str, grid) -> dict:
    """The text prompt on every tile of a generated image of the grid's size."""
    import time

    from ..annotate.annotator import Annotator
    from ..annotate.prompts import Prompts
    from ..annotate.tiling import PlaneSource
    from ..data.synthetic_nuclei import make_nuclei

    image, _ = make_nuclei(grid.shape, n_nuclei=max(6, grid.shape[0] * grid.shape[1] // 20000), seed=1)
    windows = grid.windows()
    start = time.perf_counter()
    found = Annotator().scan(folder, PlaneSource(image), "scan", windows, Prompts(text=text))
    took = time.perf_counter() - start
    labels = found.labels(0.5)
    return {"scan_image": f"{grid.shape[0]}x{grid.shape[1]}", "scan_tile": grid.tile, "scan_tiles": len(windows),
            "scan_s": round(took, 2), "scan_tiles_per_s": round(len(windows) / took, 3),
            "scan_objects": int(len(np.unique(labels)) - 1)}


def _time_propagation(folder, depth: int = 8, size: int = 128) -> dict:
    """Load the propagation backend and propagate one point on the middle slice of a generated stack (nuclei
    drifting a pixel per slice): load time, the median time per slice and how many slices came back."""
    import statistics
    import time

    from ..annotate.loading import load_propagation_backend
    from ..annotate.prompts import FramePrompts, Point, Prompts
    from ..data.synthetic_nuclei import make_nuclei

    image, labels = make_nuclei((size, size), n_nuclei=4, seed=0)
    middle = depth // 2
    volume = np.stack([np.roll(image, z - middle, axis=1) for z in range(depth)])
    ys, xs = np.nonzero(labels == 1)
    prompts = FramePrompts({middle: Prompts(points=(Point(float(xs.mean()), float(ys.mean())),))})
    start = time.perf_counter()
    backend = load_propagation_backend(folder)
    loaded = tick = time.perf_counter()
    times = []
    for _ in backend.propagate(volume, prompts):
        times.append(time.perf_counter() - tick)
        tick = time.perf_counter()
    return {
        "load_s": round(loaded - start, 3),
        "per_slice_s": round(statistics.median(times), 3),
        "slices": len(times),
        "stack": f"{depth}x{size}x{size}, one point on slice {middle}",
    }
