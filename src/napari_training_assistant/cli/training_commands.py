"""`nta train`, `nta predict`, `nta benchmark`, `nta suggest`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..project import TrainingProject
from ..project.devices import DEVICE_HELP
from ..project.run_options import InstanceOptions, PredictOptions, TrainOptions, VolumeOptions
from .dataset_commands import require_zarr_for_dataset
from .errors import UserError
from .output import JSON_HELP, ProgressBar, emit_json, fmt_metric, table
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

    p = sub.add_parser(
        "predict",
        help="predict an image or volume of any size with a checkpoint and save it into the project",
        description="Small images are predicted in memory into a TIFF. Volumes larger than memory, remote or "
        "precomputed sources, and any of the block-wise options predict block by block on Dask into OME-Zarr.",
    )
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--image", required=True, help="TIFF, PNG, NPY, Zarr, OME-Zarr, or a Neuroglancer precomputed folder or URL")
    p.add_argument("--image-dataset", help="array inside a Zarr group")
    p.add_argument("--checkpoint", default="latest", help="checkpoint id, latest or best (default: latest)")
    p.add_argument("--channel-axis", type=int, default=None, help="channel axis of the image (default: none)")
    predict_option(p, "--tile-size", "tile_size", "tile edge, one value per spatial axis or one for all (default: from the model)")
    predict_option(p, "--overlap", "overlap", "share of a tile overlapping its neighbour")
    predict_option(p, "--batch-size", "batch_size", "tiles per forward pass (default: by tile size)")
    predict_option(p, "--device", "device", f"{DEVICE_HELP} (default: auto)")
    predict_option(p, "--runtime", "runtime", "torch, or onnx: the network exported to ONNX and run by onnxruntime, CUDA or CPU (the 'share' extra) (default: torch)")
    p.add_argument("--save-probabilities", action="store_true", help="in-memory path: also save the probabilities (float32 TIFF)")
    objects = p.add_argument_group(
        "instance models (seeded watershed of the foreground and boundary channels; tuned on the validation pairs after training)"
    )
    instance_option(objects, "--min-size", "min_size", "objects smaller than this many voxels are removed (default: the checkpoint's tuned value, else 12 in 2D, 40 in 3D)")
    instance_option(objects, "--foreground-threshold", "foreground_threshold", "foreground probability above which a voxel is inside an object (default: the checkpoint's tuned value, else 0.5)")
    instance_option(objects, "--boundary-threshold", "boundary_threshold", "boundary probability below which a foreground voxel seeds an object (default: the checkpoint's tuned value, else 0.5)")
    instance_option(objects, "--split-depth", "split_depth", "split an object core where its distance map dips deeper than this many pixels; 0: never (default: the checkpoint's tuned value, else 2 in 2D, 0 in 3D)")
    blocks = p.add_argument_group("block-wise prediction (OME-Zarr output, Dask)")
    blocks.add_argument("--output", type=Path, help="output .zarr folder inside the project (default: predictions/prediction_NNN.zarr)")
    volume_option(blocks, "--block-shape", "block_shape", "output voxels per block, per axis or one for all (default: ~4096^2 in 2D, 384^3 in 3D)")
    volume_option(blocks, "--halo", "halo", "voxels each block reads beyond its edges = tile overlap in voxels (default: tile x overlap)")
    volume_option(blocks, "--roi", "roi", "region to predict, start:stop per axis (z0:z1,y0:y1,x0:x1)")
    blocks.add_argument("--mask", help="volume (any resolution, same extent): blocks where it is all zero are skipped")
    blocks.add_argument("--mask-dataset", help="array inside the mask's Zarr group")
    volume_option(blocks, "--probabilities", "probabilities", "also write probabilities with this dtype (uint8: x255)")
    blocks.add_argument("--no-labels", dest="labels", action="store_false", help="write no labels (needs --probabilities)")
    volume_option(blocks, "--scale", "scale", "resolution level of a multiscale source: index or dataset path / precomputed key")
    volume_option(blocks, "--scheduler", "scheduler", "'local' (default: a local Dask cluster), 'in-process', or a scheduler address (tcp://host:8786)")
    volume_option(blocks, "--workers", "workers", "local Dask worker processes (default: one per GPU, else one per 8 cores)")
    blocks.add_argument("--overwrite", action="store_true", help="replace what --output holds (without it only the same prediction is resumed)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=predict)

    p = sub.add_parser("benchmark", help="evaluate a checkpoint on the frozen benchmark pairs")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--checkpoint", default="latest", help="checkpoint id, latest or best (default: latest)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=benchmark)

    p = sub.add_parser("suggest", help="rank unlabeled images by the model's uncertainty: what to label next")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--images", required=True, type=Path, help="folder of unlabeled images")
    p.add_argument("--checkpoint", default="latest", help="checkpoint id, latest or best (default: latest)")
    p.add_argument("--top", type=int, default=10, help="how many to list (default: 10)")
    p.add_argument("--no-tta", action="store_true", help="entropy only: skip the flipped predictions (3x faster)")
    p.add_argument("--tile", type=int, help="rank tiles of this many pixels (y, x) of images larger than that")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=suggest_images)


def train_option(p: argparse.ArgumentParser, flag: str, field: str, help: str, **kwargs: Any) -> None:
    schema_option(p, flag, schema=(TrainOptions, field), dest=field, help=help, **kwargs)


def predict_option(p: argparse.ArgumentParser, flag: str, field: str, help: str) -> None:
    schema_option(p, flag, schema=(PredictOptions, field), dest=field, help=help)


def volume_option(p: Any, flag: str, field: str, help: str) -> None:
    schema_option(p, flag, schema=(VolumeOptions, field), dest=field, help=help)


def instance_option(p: Any, flag: str, field: str, help: str) -> None:
    schema_option(p, flag, schema=(InstanceOptions, field), dest=field, help=help)


INSTANCE_OPTIONS = {
    "min_size": "--min-size",
    "foreground_threshold": "--foreground-threshold",
    "boundary_threshold": "--boundary-threshold",
    "split_depth": "--split-depth",
}


def _instance_settings(project: TrainingProject, args: argparse.Namespace):
    """The `InstanceSettings` the instance options ask (None when none is given); refused for other models."""
    given = {name: getattr(args, name) for name in INSTANCE_OPTIONS if getattr(args, name) is not None}
    if not given:
        return None
    record = project.checkpoints.get(args.checkpoint)
    mode = record.architecture.get("output_mode", "binary")
    if mode != "instance":
        flags = " and ".join(INSTANCE_OPTIONS[name] for name in given)
        raise UserError(f"{flags} apply to instance models; checkpoint {record.checkpoint_id} is a {mode} model")
    from ..predict.instances import InstanceSettings

    return InstanceSettings(**given)


RUN_OPTIONS = ("epochs", "batch_size", "learning_rate", "start", "device", "devices", "num_nodes", "precision", "resume")


def _add_run_arguments(p: argparse.ArgumentParser, start_default: str) -> None:
    """Options every training command shares (`TrainOptions` fields of the same names)."""
    train_option(p, "--epochs", "epochs", "passes over the training data (default: the project's setting)")
    train_option(p, "--batch-size", "batch_size", "patches per step (default: auto)")
    train_option(p, "--lr", "learning_rate", "learning rate (default: the project's setting)")
    train_option(p, "--start", "start", f"scratch, latest, best, checkpoint:ID or imported:ID (default: {start_default})")
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
        if event.kind in (EventKind.STARTED, EventKind.MESSAGE):
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


BLOCKWISE_OPTIONS = ("output", "block_shape", "halo", "roi", "mask", "probabilities", "scheduler", "workers")


def predict(args: argparse.Namespace) -> int:
    from ..predict.project_prediction import predict_file

    project = TrainingProject.open(args.project)
    if args.mask_dataset is not None and args.mask is None:
        raise UserError("--mask-dataset names an array of the --mask store: give --mask too")
    instance = _instance_settings(project, args)
    if _blockwise(args):
        return _predict_blocks(project, args, instance)
    require_zarr_for_dataset(Path(args.image), args.image_dataset, "--image-dataset")
    record = predict_file(
        project,
        Path(args.image),
        dataset=args.image_dataset,
        checkpoint_id=args.checkpoint,
        channel_axis=args.channel_axis,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        runtime=args.runtime,
        save_probabilities=args.save_probabilities,
        instance=instance,
    )
    path = str(project.layout.absolute(record.path).resolve())
    if args.json:
        emit_json({"prediction_path": path, **record.model_dump(mode="json")})
    else:
        objects = record.parameters.get("objects")
        found = f", {objects} objects" if objects is not None else ""
        found += " (post-processing tuned on its validation pairs)" if record.parameters.get("instance_tuned") else ""
        print(f"{record.prediction_id}: {path} (checkpoint {record.checkpoint_id}{found}, {record.duration_s:.1f} s)")
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


def suggest_images(args: argparse.Namespace) -> int:
    from ..predict.suggest import image_files, suggest

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    if args.tile is not None and args.tile < 16:
        raise UserError(f"--tile {args.tile}: give a tile size of at least 16 pixels")
    project = TrainingProject.open(args.project)
    ranked = suggest(project, image_files(args.images), checkpoint_id=args.checkpoint, tta=not args.no_tta, tile=args.tile)[: args.top]
    if args.json:
        emit_json({"checkpoint": project.checkpoints.get(args.checkpoint).checkpoint_id, "suggestions": [s.as_dict() for s in ranked]})
    else:
        rows = [(i + 1, Path(s.path).name + _region_text(s.region), f"{s.score:.3f}", f"{s.entropy:.3f}", f"{s.disagreement:.3f}") for i, s in enumerate(ranked)]
        print(table(rows, ("rank", "image", "score", "entropy", "flip disagreement")))
    return 0


def _region_text(region: list[list[int]] | None) -> str:
    return "" if not region else " [" + ", ".join(f"{a}:{b}" for a, b in region) + "]"


def _blockwise(args: argparse.Namespace) -> bool:
    """Block-wise when asked (any block-wise option) or when the source is remote, precomputed or too big for memory."""
    from ..predict.volume_inputs import needs_blocks

    asked = any(getattr(args, name) is not None for name in BLOCKWISE_OPTIONS) or args.overwrite or not args.labels or args.scale != "0"
    if asked and args.save_probabilities:
        raise UserError("--save-probabilities is for in-memory TIFF predictions: use --probabilities float16|uint8|float32 with block-wise options")
    return asked or needs_blocks(args.image, args.image_dataset)


def _predict_blocks(project: TrainingProject, args: argparse.Namespace, instance: Any = None) -> int:
    from ..predict.project_prediction import predict_volume_into_project

    options = VolumeOptions(
        block_shape=args.block_shape, halo=args.halo, roi=args.roi, probabilities=args.probabilities, labels=args.labels,
        scale=args.scale, scheduler=args.scheduler, workers=args.workers, overwrite=args.overwrite,
    )
    if not options.labels and options.probabilities is None:
        raise UserError("--no-labels leaves nothing to write: add --probabilities float16|uint8|float32")
    with ProgressBar("block", quiet=args.json) as listener:
        record, result = predict_volume_into_project(
            project,
            args.image,
            checkpoint_id=args.checkpoint,
            output=args.output,
            dataset=args.image_dataset,
            scale=options.scale_level(),
            channel_axis=args.channel_axis,
            tile_size=args.tile_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
            device=args.device,
            runtime=args.runtime,
            block_shape=options.block_shape,
            halo=options.halo,
            roi=options.roi,
            mask=args.mask,
            mask_dataset=args.mask_dataset,
            probabilities=options.probabilities,
            labels=options.labels,
            scheduler=options.scheduler,
            workers=options.workers,
            overwrite=options.overwrite,
            listener=listener,
            instance=instance,
        )
    output = str(result.output.resolve())
    summary = {
        "prediction_path": output,
        "status": result.status,
        "blocks": result.blocks,
        "blocks_before": result.blocks_before,
        "blocks_predicted": result.blocks_predicted,
        "blocks_skipped": result.blocks_skipped,
        "seconds": result.seconds,
        "objects": result.parameters.get("objects"),
        "record": record.model_dump(mode="json") if record else None,
    }
    if args.json:
        emit_json(summary)
    else:
        name = record.prediction_id if record else "prediction"
        rate = result.voxels_per_s
        print(
            f"{name}: {output} ({', '.join(n for n in ('labels', 'probabilities') if result.parameters.get(n))}; "
            f"{result.blocks} blocks: {result.blocks_predicted} predicted, {result.blocks_before} from an earlier run, "
            f"{result.blocks_skipped} skipped by the mask; "
            + (f"{result.parameters['objects']} objects stitched across blocks; " if result.parameters.get("objects") is not None else "")
            + f"{result.seconds:.1f} s"
            + (f", {rate:,.0f} voxels/s" if rate else "")
            + ")"
        )
    return 0 if result.status == "completed" else 1
