"""`nta train`, `nta predict`, `nta benchmark`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..project import TrainingProject
from ..project.devices import DEVICE_HELP
from ..project.run_options import PredictOptions, TrainOptions
from .dataset_commands import require_zarr_for_dataset
from .output import JSON_HELP, emit_json, fmt_metric
from .validation import schema_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the project's U-Net (registers a checkpoint and benchmarks it)")
    p.add_argument("project", type=Path, help="Training Project Folder")
    _add_run_arguments(p, start_default="the project's choice")
    train_option(p, "--patch-size", "patch_size", "training patch, one value per spatial axis or one for all (default: auto)")
    train_option(p, "--samples-per-epoch", "samples_per_epoch", "patches per epoch (default: auto)")
    train_option(p, "--num-workers", "num_workers", "DataLoader worker processes")
    train_option(p, "--seed", "seed", "random seed of weights, patches and shuffling (default: the project's)")
    p.add_argument("--keep-architecture", action="store_true", help="never let auto-configuration change depth or width")
    p.add_argument("--no-benchmark", action="store_true", help="skip evaluating on the benchmark pairs")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=train)

    p = sub.add_parser("train-points", help="point-windowed 3D training from a YAML spec (synapse partner assignment)")
    p.add_argument("spec", type=Path, help="YAML training spec (paths relative to it)")
    _add_run_arguments(p, start_default="scratch")
    p.add_argument("--dry-run", action="store_true", help="resolve the spec, count points, estimate the cache; no training")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=train_points)

    p = sub.add_parser("predict", help="predict an image with a checkpoint and save it into the project")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--image", required=True, type=Path, help="TIFF, PNG, NPY, Zarr or OME-Zarr")
    p.add_argument("--image-dataset", help="array inside a Zarr group")
    p.add_argument("--checkpoint", default="latest", help="checkpoint id (default: latest)")
    p.add_argument("--channel-axis", type=int, default=None, help="channel axis of the image (default: none)")
    predict_option(p, "--tile-size", "tile_size", "tile edge, one value per spatial axis or one for all (default: from the model)")
    predict_option(p, "--overlap", "overlap", "share of a tile overlapping its neighbour")
    predict_option(p, "--batch-size", "batch_size", "tiles per forward pass (default: by tile size)")
    predict_option(p, "--device", "device", f"{DEVICE_HELP} (default: auto)")
    p.add_argument("--save-probabilities", action="store_true", help="also save the probabilities (float32 TIFF)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=predict)

    p = sub.add_parser("benchmark", help="evaluate a checkpoint on the frozen benchmark pairs")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--checkpoint", default="latest", help="checkpoint id (default: latest)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=benchmark)


def train_option(p: argparse.ArgumentParser, flag: str, field: str, help: str, **kwargs: Any) -> None:
    schema_option(p, flag, schema=(TrainOptions, field), dest=field, help=help, **kwargs)


def predict_option(p: argparse.ArgumentParser, flag: str, field: str, help: str) -> None:
    schema_option(p, flag, schema=(PredictOptions, field), dest=field, help=help)


RUN_OPTIONS = ("epochs", "batch_size", "learning_rate", "start", "device", "devices", "num_nodes", "precision", "resume")


def _add_run_arguments(p: argparse.ArgumentParser, start_default: str) -> None:
    """Options every training command shares (`TrainOptions` fields of the same names)."""
    train_option(p, "--epochs", "epochs", "passes over the training data (default: the project's setting)")
    train_option(p, "--batch-size", "batch_size", "patches per step (default: auto)")
    train_option(p, "--lr", "learning_rate", "learning rate (default: the project's setting)")
    train_option(p, "--start", "start", f"scratch, latest, checkpoint:ID or imported:ID (default: {start_default})")
    train_option(p, "--device", "device", DEVICE_HELP)
    train_option(p, "--devices", "devices", "processes/GPUs per machine; >1 trains with DDP")
    train_option(p, "--num-nodes", "num_nodes", "machines (DDP across nodes, e.g. under SLURM/torchrun)")
    train_option(p, "--precision", "precision", "numeric precision (default: auto)")
    p.add_argument("--resume", action="store_true", help="continue the last interrupted, cancelled or failed run")


def _run_options(args: argparse.Namespace, **extra) -> TrainOptions:
    return TrainOptions(**{name: getattr(args, name) for name in RUN_OPTIONS}, **extra)


def _progress_printer(quiet: bool):
    from ..train.events import EventKind

    def show(event) -> None:
        if quiet and event.kind != EventKind.FINISHED:
            return
        if event.kind == EventKind.STARTED:
            print(event.message, flush=True)
        elif event.kind == EventKind.STEP and sys.stdout.isatty():
            eta = f" ETA {event.eta_s:.0f}s" if event.eta_s is not None else ""
            print(f"\r  epoch {event.epoch}/{event.epochs} step {event.step}/{event.steps} loss {event.loss:.4f}{eta}   ", end="", flush=True)
        elif event.kind == EventKind.EPOCH:
            m = event.metrics
            eta = f", ETA {event.eta_s:.0f}s" if event.eta_s is not None else ""
            print(
                f"\r  epoch {event.epoch}/{event.epochs}: train loss {fmt_metric(m.get('train_loss'))}, "
                f"val loss {fmt_metric(m.get('val_loss'))}, val Dice {fmt_metric(m.get('val_dice'))}, "
                f"IoU {fmt_metric(m.get('val_iou'))}{eta}",
                flush=True,
            )

    return show


def train(args: argparse.Namespace) -> int:
    from ..train import train_project

    project = TrainingProject.open(args.project)
    options = _run_options(
        args,
        patch_size=args.patch_size,
        samples_per_epoch=args.samples_per_epoch,
        num_workers=args.num_workers,
        seed=args.seed,
        run_benchmark=not args.no_benchmark,
        keep_architecture=args.keep_architecture,
    )
    options.patch_size_for(project.architecture.spatial_dims)  # a count that does not fit: refused before the run
    result = train_project(project, options, listener=_progress_printer(quiet=args.json), launcher="cli")
    return _report(result, args.json)


def train_points(args: argparse.Namespace) -> int:
    from ..train.point_run import dry_run
    from ..train.point_run import train_points as run_points

    if args.dry_run:
        report = dry_run(args.spec)
        if args.json:
            emit_json(report)
        else:
            points = report["points"]
            print(f"project   {report['project']}")
            print(f"points    train {points['train']}, val {points['val']}, dropped {points['dropped']} {report['dropped_reasons'] or ''}")
            print(f"regions   train {', '.join(report['regions']['train'])}; val {', '.join(report['regions']['val'])}")
            print(f"cache     {report['cache_gib_estimate']:.3f} GiB estimated")
        return 0
    options = _run_options(args, run_benchmark=False)
    result = run_points(args.spec, options, listener=_progress_printer(quiet=args.json), launcher="cli")
    return _report(result, args.json)


def _report(result, as_json: bool) -> int:
    if result is None:  # a DDP worker process
        return 0
    payload = {
        "run_id": result.run_id,
        "status": result.status,
        "checkpoint_id": result.checkpoint_id,
        "checkpoint_path": result.checkpoint_path,
        "parent_id": result.parent_id,
        "metrics": result.metrics,
        "benchmark": result.benchmark,
        "points": result.points,
        "curves_path": result.curves_path,
        "metrics_csv": result.metrics_csv,
        "duration_s": result.duration_s,
    }
    if as_json:
        emit_json(payload)
    else:
        bench = result.benchmark
        print(f"{result.status}: {result.checkpoint_id} -> {result.checkpoint_path}")
        print(f"val Dice {fmt_metric(result.metrics.get('dice'))}, IoU {fmt_metric(result.metrics.get('iou'))}")
        for name, scores in (result.metrics.get("per_channel") or {}).items():
            print(f"  {name}: Dice {fmt_metric(scores['dice'])}, IoU {fmt_metric(scores['iou'])}")
        if bench:
            print(f"benchmark ({bench['n_images']} pairs): Dice {fmt_metric(bench['dice'])}, IoU {fmt_metric(bench['iou'])}")
        print(f"curves: {result.curves_path}")
    return 0 if result.status == "completed" else 1


def predict(args: argparse.Namespace) -> int:
    from ..predict.project_prediction import predict_file

    project = TrainingProject.open(args.project)
    require_zarr_for_dataset(args.image, args.image_dataset, "--image-dataset")
    record = predict_file(
        project,
        args.image,
        dataset=args.image_dataset,
        checkpoint_id=args.checkpoint,
        channel_axis=args.channel_axis,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        save_probabilities=args.save_probabilities,
    )
    path = str(project.layout.absolute(record.path).resolve())
    if args.json:
        emit_json({"prediction_path": path, **record.model_dump(mode="json")})
    else:
        print(f"{record.prediction_id}: {path} (checkpoint {record.checkpoint_id}, {record.duration_s:.1f} s)")
    return 0


def benchmark(args: argparse.Namespace) -> int:
    from ..train.benchmark import benchmark_checkpoint

    project = TrainingProject.open(args.project)
    row = benchmark_checkpoint(project, args.checkpoint)
    if args.json:
        emit_json(row)
    else:
        print(f"{row['checkpoint_id']}: Dice {fmt_metric(row['dice'])}, IoU {fmt_metric(row['iou'])} on {row['n_images']} benchmark pairs")
    return 0
