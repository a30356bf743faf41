"""`nta init`, `nta status`, `nta stop`, `nta doctor`, `nta demo`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..progress import duration
from ..project import TrainingProject
from ..project.runs import describe_process
from ..project.schemas import PRESETS, ArchitectureConfig, ProjectConfig
from ..project.status import project_status
from .errors import UserError
from .output import JSON_HELP, emit_json, fmt_metric
from .validation import schema_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create a Training Project Folder")
    p.add_argument("project", type=Path, help="folder to create (an empty or missing folder)")
    schema_option(p, "--name", schema=(ProjectConfig, "project_name"), help="project name (default: the folder name)")
    schema_option(p, "--spatial-dims", schema=(ArchitectureConfig, "spatial_dims"), help="2D images or 3D stacks")
    schema_option(p, "--output-mode", schema=(ArchitectureConfig, "output_mode"), help="what the U-Net predicts")
    schema_option(p, "--num-classes", schema=(ArchitectureConfig, "num_classes"), default=None, help="classes incl. background (multiclass)")
    schema_option(p, "--output-channels", schema=(ArchitectureConfig, "output_channels"), default=None, help="channels (multilabel)")
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="U-Net depth and width (default: standard_unet)")
    p.add_argument("--class-names", help="comma-separated class names, background first")
    p.add_argument("--force", action="store_true", help="allow a folder that is not empty")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=init)

    p = sub.add_parser("status", help="show what a project holds")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=status)

    p = sub.add_parser(
        "stop",
        help="stop a training run from any process or machine sharing the folder (it is saved as cancelled)",
        description="The run ends after its current step and is saved as cancelled, with its checkpoint, like Stop in "
        "the viewer that started it. It sees the request within a second, wherever it runs.",
    )
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--run", dest="run_id", default=None, help="the run to stop (default: the one running)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to this long for the run to end and say how (default: 0, do not wait)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=stop)

    p = sub.add_parser("doctor", help="check a project and repair what can be repaired safely")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--check", action="store_true", help="only report, change nothing")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=doctor)

    p = sub.add_parser("demo", help="the main job on bundled sample data")
    p.add_argument("--dir", type=Path, default=Path("demo_project"), help="demo project folder (replaced)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=demo)


def init(args: argparse.Namespace) -> int:
    overrides = {}
    if args.preset:
        overrides["preset"] = args.preset
    num_classes = args.num_classes
    if args.output_mode == "multiclass" and num_classes is None:
        raise UserError("--output-mode multiclass needs --num-classes K (classes including background, K >= 2)")
    if num_classes not in (None, 2) and args.output_mode != "multiclass":
        raise UserError("--num-classes applies to --output-mode multiclass only")
    if args.output_channels is not None and args.output_mode != "multilabel":
        raise UserError("--output-channels applies to --output-mode multilabel only")
    names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
    project = TrainingProject.create(
        args.project,
        args.name,
        spatial_dims=args.spatial_dims,
        output_mode=args.output_mode,
        num_classes=2 if num_classes is None else num_classes,
        class_names=names,
        architecture=overrides | ({} if args.output_channels is None else {"output_channels": args.output_channels}),
        allow_non_empty=args.force,
    )
    if args.json:
        emit_json(project_status(project))
    else:
        arch = project.architecture
        print(f"created project {project.name!r} at {project.root}")
        print(f"architecture: {arch.spatial_dims} {arch.output_mode} U-Net, depth {arch.depth}, base {arch.base_channels}")
        print(f"next: nta add-pair {project.root} --image IMAGE --mask MASK")
    return 0


def status(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    info = project_status(project)
    summary = _architecture_summary(info["architecture"])
    info["architecture_summary"] = summary
    if args.json:
        emit_json(info)
        return 0
    counts = info["split_counts"]
    bench = info["latest_benchmark"]
    print(f"project      {info['project_name']}  ({info['project_path']})")
    print(f"state        {info['state']}")
    print(f"dataset      {info['dataset_count']} pairs (train {counts['train']}, val {counts['val']}, benchmark {counts['benchmark']})")
    print(f"checkpoints  {info['checkpoint_count']} (latest: {info['latest_checkpoint'] or 'none'}, best: {info['best_checkpoint'] or 'none'})")
    print(
        "benchmark    "
        + (f"{bench['checkpoint_id']}: Dice {fmt_metric(bench['dice'])}, IoU {fmt_metric(bench['iou'])}" if bench else "none yet")
    )
    print(f"architecture {summary['text'] if summary else info['architecture']}")
    print(f"start from   {info['starting_weights']}")
    for run in info["runs"]:
        if run["status"] == "running":
            print(f"running      {run['run_id']} ({run['process']}){_progress_text(run['progress'])}; `nta stop {project.root}` stops it")
        elif run["status"] == "interrupted":
            print(f"interrupted  {run['run_id']}: its process stopped without ending it; continue it with `nta train {project.root} --resume`")
    for decision in info["auto_configuration_decisions"]:
        print(f"auto-config  {decision['setting']} = {decision['value']} ({decision['source']}: {decision['reason']})")
    return 0


def _progress_text(progress: dict | None) -> str:
    if not progress:
        return ""
    if progress["event"] == "started":
        return f": about to take its first step ({progress['epochs']} epochs)"
    parts = [f"epoch {progress['epoch']}/{progress['epochs']}"]
    if progress["steps"]:
        parts.append(f"step {progress['step']}/{progress['steps']}")
    if progress["eta_s"] is not None:
        parts.append(f"about {duration(progress['eta_s'])} left")
    dice = progress["metrics"].get("val_dice")
    if isinstance(dice, int | float):
        parts.append(f"val Dice {dice:.3f}")
    return ": " + ", ".join(parts)


def stop(args: argparse.Namespace) -> int:
    from ..project.run_control import stop_run, wait_for_end

    if not math.isfinite(args.wait) or args.wait < 0:
        raise UserError(f"--wait must be 0 or more seconds, not {args.wait:g}")
    project = TrainingProject.open(args.project)
    run = stop_run(project, args.run_id)
    ended = wait_for_end(project, run.run_id, args.wait) if args.wait > 0 else None
    outcome = {"run_id": run.run_id, "process": describe_process(run), "requested": True, "status": ended.status if ended else "running"}
    if ended is not None:
        outcome |= {"checkpoint_id": ended.checkpoint_id, "reason": ended.reason}
    if args.json:
        emit_json(outcome)
    elif ended is None:
        after = f"; it had not ended after {args.wait:g} s" if args.wait > 0 else ""
        print(f"asked {run.run_id} ({outcome['process']}) to stop: it ends after its current step and is saved as cancelled{after}")
    else:
        kept = f", checkpoint {ended.checkpoint_id}" if ended.checkpoint_id else ""
        print(f"{run.run_id} {ended.status}{kept}")
    return 0


def _architecture_summary(architecture: dict) -> dict | None:
    try:
        from ..model import describe
    except ImportError:  # torch missing: the project still reports
        return None
    return describe(architecture)


def doctor(args: argparse.Namespace) -> int:
    from ..project.doctor import run_doctor

    report = run_doctor(Path(args.project), repair=not args.check)
    if args.json:
        emit_json(report.as_dict())
    else:
        for finding in report.findings:
            print(finding.line())
        print(report.summary())
    return 0 if report.healthy_after else 1


def demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    result = run_demo(args.dir)
    if args.json:  # the summary table is printed above; the JSON object is the last line
        emit_json(result)
    return 0
