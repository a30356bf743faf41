"""`nta assign-synapses`: pre- and postsynaptic partners of every synapse, with a point-trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..project.run_options import AssignOptions
from .output import JSON_HELP, ProgressBar, emit_json
from .validation import schema_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "assign-synapses",
        help="assign pre/post partner segments to every synapse (point-trained checkpoint + segmentation)",
        description="The spec is the point-training spec with a `segmentation` layer. Writes assignments.csv/.parquet, "
        "Neuroglancer line annotations (lines/) and summary.json; resumable by chunk.",
    )
    p.add_argument("spec", type=Path, help="YAML point spec (nta train-points) naming img, points and segmentation")
    p.add_argument("--checkpoint", default="latest", help="checkpoint id of the spec's project (default: latest)")
    p.add_argument("--project", type=Path, help="Training Project Folder holding the checkpoint (default: the spec's project)")
    p.add_argument("--output", type=Path, help="output folder (default: <project>/assignments/<checkpoint>_<mode>)")
    option(p, "--mode", "mode", "max: most summed probability; threshold; dilate_nearest: no-network baseline")
    option(p, "--contact-radius", "contact_radius", "candidate segments within this many voxels per axis (default: 40 nm, at least 1 voxel)")
    option(p, "--dilation", "dilation", "grow the contact box by this many voxels")
    option(p, "--threshold", "threshold", "threshold mode: probability a voxel must exceed")
    option(p, "--chunk-points", "chunk_points", "synapses per Dask task")
    option(p, "--scheduler", "scheduler", "'local' (default), 'in-process', or a scheduler address")
    option(p, "--workers", "workers", "local Dask worker processes (default: one per GPU, else one per 8 cores)")
    option(p, "--device", "device", "auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--evaluate", action="store_true", help="compare with ground-truth partners (properties, lines or label0/label1)")
    p.add_argument("--overwrite", action="store_true", help="replace what --output holds")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=assign)


def option(p: argparse.ArgumentParser, flag: str, field: str, help: str) -> None:
    schema_option(p, flag, schema=(AssignOptions, field), dest=field, help=help)


def assign(args: argparse.Namespace) -> int:
    from ..assign.run import assign_synapses

    options = AssignOptions(
        mode=args.mode, contact_radius=args.contact_radius, dilation=args.dilation, threshold=args.threshold,
        chunk_points=args.chunk_points, scheduler=args.scheduler, workers=args.workers, device=args.device,
    )
    with ProgressBar("synapse", quiet=args.json) as listener:
        result = assign_synapses(
            args.spec, checkpoint_id=args.checkpoint, project=args.project, output=args.output, overwrite=args.overwrite, evaluate=args.evaluate,
            listener=listener, **options.model_dump(),
        )
    if args.json:
        emit_json({"output": str(result.output.resolve()), **result.summary})
        return 0 if result.status == "completed" else 1
    summary = result.summary
    print(
        f"{result.status}: {result.synapses} synapses -> {result.output / 'assignments.csv'} "
        f"({result.outside} outside the volume, {result.chunks} chunks, {result.chunks_before} from an earlier run; {result.seconds:.1f} s)"
    )
    figures = (summary.get("evaluation") or {}).get("overall")
    if figures and figures.get("n"):
        print(
            f"ground truth for {figures['n']}: pre {figures['pre']['accuracy']:.3f}, post {figures['post']['accuracy']:.3f}, "
            f"both correct {figures['both']['accuracy']:.3f} (accuracy)"
        )
    return 0 if result.status == "completed" else 1
