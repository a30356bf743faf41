"""`nta import-weights`, `nta checkpoints`, `nta start`, `nta export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..project import TrainingProject
from ..share.export import EXPORT_FORMATS
from .output import JSON_HELP, emit_json, fmt_metric, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-weights", help="import pretrained U-Net weights (.pt, .pth, .safetensors) or a bioimage.io package")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("file", type=Path, help="weights file (.pt, .pth, .safetensors) or a bioimage.io package (.zip or folder)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=import_weights)

    p = sub.add_parser("checkpoints", help="list checkpoints with lineage and metrics")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=checkpoints)

    p = sub.add_parser("start", help="choose the starting weights of the next training run")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("choice", help="scratch, latest, best (the checkpoint it is now), checkpoint:ID or imported:ID")
    p.set_defaults(handler=choose_start)

    p = sub.add_parser("export", help="export a checkpoint as a bioimage.io package, ONNX or TorchScript, with its lineage")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("checkpoint", nargs="?", default="latest", help="checkpoint id, latest (default) or best")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="bioimageio", help="bioimageio (a .zip package, default), onnx or torchscript")
    p.add_argument("--output", type=Path, required=True, help="file to write: .zip (bioimageio), .onnx, .pt (torchscript)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (only once the new one is complete)")
    p.add_argument("--author", action="append", default=[], help="author named in the package (repeat for several; default: your user name)")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX license id of the package (default CC-BY-4.0)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=export)


def import_weights(args: argparse.Namespace) -> int:
    from ..share.bioimageio_import import describe_import, import_pretrained

    project = TrainingProject.open(args.project)
    record = import_pretrained(project, args.file)
    if args.json:
        emit_json(record.model_dump(mode="json"))
    else:
        print(f"imported {describe_import(project, record)}")
        print(f"use it: nta start {project.root} imported:{record.model_id}")
    return 0


def checkpoints(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    registry = project.checkpoints.registry
    if args.json:
        emit_json({"latest": registry.latest, "checkpoints": [c.model_dump(mode="json") for c in registry.checkpoints]})
        return 0
    rows = [
        (
            c.checkpoint_id + (" *" if c.checkpoint_id == registry.latest else ""),
            c.parent_id or "-",
            c.status,
            c.timestamp.strftime("%Y-%m-%d %H:%M"),
            len(c.dataset_pair_ids),
            fmt_metric(c.metrics.get("dice")),
            fmt_metric(c.metrics.get("iou")),
        )
        for c in registry.checkpoints
    ]
    print(table(rows, ["checkpoint", "parent", "status", "time", "pairs", "dice", "iou"]) if rows else "no checkpoints yet")
    return 0


def choose_start(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    choice = project.set_starting_weights(args.choice)
    print(f"next training run starts from: {choice.describe()}")
    return 0


def export(args: argparse.Namespace) -> int:
    from ..share import export_model

    project = TrainingProject.open(args.project)
    result = export_model(
        project, args.checkpoint, format=args.format, output=args.output, overwrite=args.overwrite,
        authors=args.author, license=args.license,
    )
    if args.json:
        emit_json({"format": result.format, "path": str(result.path), "checkpoint_id": result.checkpoint_id, "seconds": result.seconds, **result.details})
    else:
        print(f"exported {result.checkpoint_id} as {result.format} -> {result.path} ({result.seconds:.1f} s)")
    return 0
