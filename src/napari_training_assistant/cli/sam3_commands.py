"""`nta sam3-check`: which backend a SAM3 model folder needs, and (with --load) whether it loads and segments
(2d: one box and one point prompt; 3d: one point propagated through a generated stack)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..annotate.model_folder import SAM3_DEVICE_HELP, SAM3_SPATIAL, validate_model_folder
from .output import JSON_HELP, emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sam3-check", help="validate a SAM3 model folder (and with --load, load it and time one prompt)")
    p.add_argument("folder", type=Path, help="SAM3 model folder")
    p.add_argument("--mode", choices=SAM3_SPATIAL, default="2d", help="2d: image modes; 3d: propagation (SAM3.1 multiplex on CUDA, else the SAM3.0 tracker of a Hugging Face folder)")
    p.add_argument("--device", default="auto", help=SAM3_DEVICE_HELP)
    p.add_argument("--load", action="store_true", help="load the model; 2d: embed a generated image and time a box and a point prompt; "
                   "3d: propagate one point through a generated 8-slice stack")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=sam3_check)


def sam3_check(args: argparse.Namespace) -> int:
    folder = validate_model_folder(args.folder, args.mode, args.device)
    report = {"folder": str(folder.path), "backend": folder.kind, "runs": folder.describe(), "weights": folder.weights.name,
              "device": folder.device}
    if args.load:
        report |= _time_one_prompt(folder) if args.mode == "2d" else _time_propagation(folder)
    if args.json:
        emit_json(report)
    else:
        for key, value in report.items():
            print(f"{key:<12} {value}")
    return 0


def _time_one_prompt(folder) -> dict:
    import numpy as np

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


def _time_propagation(folder, depth: int = 8, size: int = 128) -> dict:
    """Load the propagation backend and propagate one point on the middle slice of a generated stack (nuclei
    drifting a pixel per slice): load time, the median time per slice and how many slices came back."""
    import statistics
    import time

    import numpy as np

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
