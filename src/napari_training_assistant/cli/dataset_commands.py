"""`nta add-pair`, `nta remove-pair`, `nta pairs`, `nta set-split`."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from ..project import TrainingProject
from ..project.image_io import is_zarr
from ..project.schemas import PairRecord, Split
from .errors import UserError
from .output import JSON_HELP, emit_json, table
from .validation import schema_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-pair", help="add an image/mask pair to the dataset")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--image", required=True, type=Path, help="TIFF, PNG, NPY, Zarr or OME-Zarr")
    p.add_argument("--mask", required=True, type=Path, nargs="+", help="mask file (several for multilabel)")
    schema_option(p, "--mask-mode", schema=(PairRecord, "mask_mode"), default="binary", help="how mask labels become training labels")
    p.add_argument("--target-class", help="class name or id (target-class mode)")
    p.add_argument("--label-map", help="source:target pairs, e.g. '1:1,2:1,5:2' (label-map mode)")
    p.add_argument("--channel-axis", type=int, default=None, help="channel axis of the image (default: none)")
    p.add_argument("--mask-channel-axis", type=int, default=None, help="channel axis of a multilabel mask")
    p.add_argument("--slice", type=int, default=None, dest="slice_index", help="take this slice of a 3D image")
    schema_option(p, "--split", schema=(PairRecord, "split"), default=None, help="default: automatic")
    p.add_argument("--image-dataset", help="array inside a Zarr group")
    p.add_argument("--mask-dataset", help="array inside a Zarr group")
    p.add_argument("--allow-duplicate", action="store_true", help="add it even when the dataset already holds this image and mask")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=add_pair)

    p = sub.add_parser("remove-pair", help="remove a pair (files and manifest entry)")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("pair_id", help="e.g. pair_0003 (see nta pairs)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=remove_pair)

    p = sub.add_parser("pairs", help="list the dataset's pairs")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=list_pairs)

    p = sub.add_parser("set-split", help="move a pair to train, val or benchmark")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("pair_id", help="e.g. pair_0003 (see nta pairs)")
    p.add_argument("split", choices=typing.get_args(Split), help="the pair's new split")
    p.set_defaults(handler=set_split)


def parse_label_map(text: str) -> dict[int, int]:
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = item.partition(":")
        try:
            mapping[int(source)] = int(target)
        except ValueError:
            raise UserError(f"--label-map item {item!r} is not 'source:target' with whole numbers, e.g. '1:1,2:1,5:2'") from None
        if not sep:
            raise UserError(f"--label-map item {item!r} needs a colon, e.g. '1:1'")
    return mapping


def require_zarr_for_dataset(path: Path, dataset: str | None, flag: str) -> None:
    """A dataset name only applies to a Zarr store."""
    if dataset is not None and path.exists() and not is_zarr(path):
        raise UserError(f"{flag} {dataset!r} applies to a Zarr store, but {path} is not a Zarr store: drop {flag}")


def add_pair(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    require_zarr_for_dataset(args.image, args.image_dataset, "--image-dataset")
    for mask in args.mask:
        require_zarr_for_dataset(mask, args.mask_dataset, "--mask-dataset")
    if len(args.mask) > 1 and args.mask_mode != "multilabel":
        raise UserError("several --mask files are only for --mask-mode multilabel (one binary mask per channel)")
    target: str | int | None = args.target_class
    if target is not None and target.isdigit():
        target = int(target)
    record = project.dataset.add_files(
        args.image,
        args.mask[0] if len(args.mask) == 1 else args.mask,
        image_dataset=args.image_dataset,
        mask_dataset=args.mask_dataset,
        mask_mode=args.mask_mode,
        channel_axis=args.channel_axis,
        mask_channel_axis=args.mask_channel_axis,
        slice_index=args.slice_index,
        split=args.split,
        target_class=target,
        label_map=parse_label_map(args.label_map) if args.label_map else None,
        allow_duplicate=args.allow_duplicate,
    )
    if args.json:
        emit_json(record.model_dump(mode="json"))
    else:
        print(
            f"added {record.pair_id} ({record.split}): image {tuple(record.image_shape)}, "
            f"labels {record.source_labels} -> {record.saved_labels} [{record.label_transform}]"
        )
    return 0


def remove_pair(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    tombstone = project.dataset.remove(args.pair_id)
    if args.json:
        emit_json(tombstone.model_dump(mode="json"))
    else:
        used = ", ".join(tombstone.used_by_checkpoints) or "no checkpoint"
        print(f"removed {tombstone.pair_id} (it was used by {used}; the history keeps its record)")
    return 0


def list_pairs(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    pairs = project.dataset.pairs
    if args.json:
        emit_json({"pairs": [p.model_dump(mode="json") for p in pairs]})
        return 0
    rows = [
        (p.pair_id, p.split, "x".join(map(str, p.image_shape)), p.mask_mode, p.source, ",".join(p.used_by_checkpoints) or "-")
        for p in pairs
    ]
    print(table(rows, ["pair", "split", "image shape", "mask mode", "source", "used by"]) if rows else "no pairs yet")
    return 0


def set_split(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    record = project.dataset.set_split(args.pair_id, args.split)
    print(f"{record.pair_id} is now in {record.split}")
    return 0
