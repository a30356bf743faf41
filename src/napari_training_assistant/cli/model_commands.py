"""`nta import-weights`, `nta checkpoints`, `nta start`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..project import TrainingProject
from .output import JSON_HELP, emit_json, fmt_metric, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-weights", help="import pretrained U-Net weights (.pt, .pth, .safetensors)")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("file", type=Path, help="weights file: a state dict saved with torch.save, or .safetensors")
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


def import_weights(args: argparse.Namespace) -> int:
    from ..model.weights_import import import_weights as do_import

    project = TrainingProject.open(args.project)
    record = do_import(project, args.file)
    if args.json:
        emit_json(record.model_dump(mode="json"))
    else:
        print(f"imported {record.source_filename} as {record.model_id} ({record.tensor_count} tensors) -> {record.path}")
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
