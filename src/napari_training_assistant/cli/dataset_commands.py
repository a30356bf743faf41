"""`nta add-pair`, `nta add-folder`, `nta remove-pair`, `nta pairs`, `nta set-split`."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any

from ..project import TrainingProject
from ..project.image_io import is_zarr
from ..project.label_maps import parse_label_map
from ..project.schemas import PairRecord, Split
from .errors import UserError
from .output import JSON_HELP, emit_json, table
from .validation import schema_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-pair", help="add an image/mask pair to the dataset")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("--image", type=Path, help="TIFF, PNG, NPY, Zarr or OME-Zarr (with --from-prediction: default the file it was predicted from)")
    p.add_argument("--from-prediction", metavar="ID", help="the mask corrects this prediction (nta predict): recorded with its checkpoint and what changed")
    p.add_argument("--mask", required=True, type=Path, nargs="+", help="mask file (several for multilabel)")
    _preparation_options(p)
    p.add_argument("--slice", type=int, default=None, dest="slice_index", help="take this slice of a 3D image")
    p.add_argument("--image-dataset", help="array inside a Zarr group")
    p.add_argument("--mask-dataset", help="array inside a Zarr group")
    p.add_argument("--allow-duplicate", action="store_true", help="add it even when the dataset already holds this image and mask")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=add_pair)

    p = sub.add_parser("add-folder", help="add every pair of a folder's images/ and masks/ (matched by file name)")
    p.add_argument("project", type=Path, help="Training Project Folder")
    p.add_argument("folder", type=Path, help="folder with images/ and masks/: images/NAME.ext pairs with masks/NAME.*, NAME_mask.* or NAME_labels.*")
    _preparation_options(p)
    p.add_argument("--skip-unmatched", action="store_true", help="skip files without a partner (listed) instead of refusing the folder")
    p.add_argument("--allow-duplicate", action="store_true", help="also add pairs the dataset already holds (default: skipped and listed)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(handler=add_folder)

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


def _preparation_options(p: argparse.ArgumentParser) -> None:
    """How a mask becomes training labels, the channel axes and the split (`add-pair`, `add-folder`)."""
    schema_option(p, "--mask-mode", schema=(PairRecord, "mask_mode"), default="binary", help="how mask labels become training labels")
    p.add_argument("--target-class", help="class name or id (target-class mode)")
    p.add_argument("--label-map", help="source:target pairs, e.g. '1:1,2:1,5:2' (label-map mode)")
    p.add_argument("--channel-axis", type=int, default=None, help="channel axis of the image (default: none)")
    p.add_argument("--mask-channel-axis", type=int, default=None, help="channel axis of a multilabel mask")
    schema_option(p, "--split", schema=(PairRecord, "split"), default=None, help="default: automatic")


def _preparation(args: argparse.Namespace) -> dict[str, Any]:
    """`Dataset.add` keyword arguments of `_preparation_options`."""
    target: str | int | None = args.target_class
    if target is not None and target.isdigit():
        target = int(target)
    return {
        "mask_mode": args.mask_mode,
        "channel_axis": args.channel_axis,
        "mask_channel_axis": args.mask_channel_axis,
        "split": args.split,
        "target_class": target,
        "label_map": None if args.label_map is None else parse_label_map(args.label_map),
    }


def require_zarr_for_dataset(path: Path, dataset: str | None, flag: str) -> None:
    """A dataset name only applies to a Zarr store."""
    if dataset is not None and path.exists() and not is_zarr(path):
        raise UserError(f"{flag} {dataset!r} applies to a Zarr store, but {path} is not a Zarr store: drop {flag}")


def add_pair(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    if args.from_prediction is not None:
        return _add_corrected(project, args)
    if args.image is None:
        raise UserError("--image is required (or --from-prediction ID to add a corrected prediction)")
    require_zarr_for_dataset(args.image, args.image_dataset, "--image-dataset")
    for mask in args.mask:
        require_zarr_for_dataset(mask, args.mask_dataset, "--mask-dataset")
    if len(args.mask) > 1 and args.mask_mode != "multilabel":
        raise UserError("several --mask files are only for --mask-mode multilabel (one binary mask per channel)")
    record = project.dataset.add_files(
        args.image,
        args.mask[0] if len(args.mask) == 1 else args.mask,
        image_dataset=args.image_dataset,
        mask_dataset=args.mask_dataset,
        slice_index=args.slice_index,
        allow_duplicate=args.allow_duplicate,
        **_preparation(args),
    )
    if args.json:
        emit_json(record.model_dump(mode="json"))
    else:
        print(
            f"added {record.pair_id} ({record.split}): image {tuple(record.image_shape)}, "
            f"labels {record.source_labels} -> {record.saved_labels} [{record.label_transform}]"
        )
    return 0


def _add_corrected(project: TrainingProject, args: argparse.Namespace) -> int:
    from ..project.corrections import add_corrected_prediction
    from ..project.image_io import read_array

    if len(args.mask) != 1:
        raise UserError("--from-prediction takes one --mask: the corrected labels")
    image = read_array(args.image, dataset=args.image_dataset) if args.image is not None else None
    record = add_corrected_prediction(
        project, args.from_prediction, read_array(args.mask[0], dataset=args.mask_dataset), image=image,
        allow_duplicate=args.allow_duplicate, **_preparation(args),
    )  # fmt: skip
    if args.json:
        emit_json(record.model_dump(mode="json"))
    else:
        c = record.correction or {}
        print(
            f"added {record.pair_id} ({record.split}) from {c.get('prediction_id')} of {c.get('checkpoint_id')}: "
            f"{c.get('changed_pixels')} pixels ({c.get('changed_fraction', 0):.2%}) and {c.get('objects_edited')} of "
            f"{c.get('objects_predicted')} objects corrected"
        )
    return 0


def add_folder(args: argparse.Namespace) -> int:
    project = TrainingProject.open(args.project)
    result = project.dataset.add_folder(
        args.folder, skip_unmatched=args.skip_unmatched, allow_duplicate=args.allow_duplicate, **_preparation(args)
    )
    if args.json:
        emit_json(result.as_dict())
        return 0
    added = ", ".join(f"{r.pair_id} ({r.split})" for r in result.added)
    print(f"added {len(result.added)} pair(s) from {args.folder}" + (f": {added}" if added else ""))
    for image, holder in result.duplicates:
        print(f"skipped images/{image}: the same image and mask as {holder} (add it anyway with --allow-duplicate)")
    for name in result.unmatched:
        print(f"skipped {name}: no partner")
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
