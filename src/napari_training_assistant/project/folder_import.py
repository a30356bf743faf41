"""A folder of pairs: `images/` and `masks/` matched by file stem (`Dataset.add_folder`, `nta add-folder`, the
Dataset tab's Import folder). A mask of `images/a.tif` is `masks/a.*`, `masks/a_mask.*` or `masks/a_labels.*`
in any format `read_array` reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DatasetError
from .image_io import READABLE_SUFFIXES, is_zarr
from .schemas import PairRecord

MASK_NAME_SUFFIXES = ("", "_mask", "_labels")
"""What a mask's stem may add to its image's stem."""


def file_stem(path: Path) -> str:
    """The name without its format suffix (`a.ome.zarr` and `a.ome.tif` -> `a`)."""
    name = path.name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass(frozen=True)
class FolderPairs:
    """(image, mask) files of a folder, and the files of `images/` and `masks/` without a partner (names)."""

    pairs: list[tuple[Path, Path]]
    images_without_mask: list[str]
    masks_without_image: list[str]

    @property
    def unmatched(self) -> list[str]:
        """Every file without a partner, as `images/NAME` or `masks/NAME`."""
        return [f"images/{n}" for n in self.images_without_mask] + [f"masks/{n}" for n in self.masks_without_image]


def find_folder_pairs(folder: str | Path) -> FolderPairs:
    """The pairs of `folder`/images and `folder`/masks, matched by stem; a `DatasetError` when a subfolder is
    missing or no image has a mask. Hidden files and files `read_array` does not read are ignored."""
    root = Path(folder).expanduser()
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DatasetError(f"{root} needs an images/ and a masks/ subfolder holding files of the same name (or NAME_mask, NAME_labels)")
    masks = _entries(masks_dir)
    by_key: dict[str, Path] = {}
    for mask in masks:
        by_key.setdefault(mask.name, mask)
        by_key.setdefault(file_stem(mask), mask)
    pairs, lonely = [], []
    for image in _entries(images_dir):
        keys = (image.name, *(file_stem(image) + suffix for suffix in MASK_NAME_SUFFIXES))
        mask = next((by_key[k] for k in keys if k in by_key), None)
        if mask is None:
            lonely.append(image.name)
        else:
            pairs.append((image, mask))
    if not pairs:
        raise DatasetError(f"no image in {images_dir} has a mask of the same name (or NAME_mask, NAME_labels) in {masks_dir}")
    used = {mask for _, mask in pairs}
    return FolderPairs(pairs, lonely, [m.name for m in masks if m not in used])


def _entries(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir()
        if not p.name.startswith(".") and (p.suffix.lower() in READABLE_SUFFIXES if p.is_file() else is_zarr(p))
    )


@dataclass
class FolderImport:
    """What `Dataset.add_folder` did: pairs added, pairs skipped as duplicates (with the pair id, or the earlier
    `images/NAME` of the folder, that holds the same content), files without a partner (skipped when asked)."""

    folder: str
    added: list[PairRecord] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (image file name, what holds it)
    unmatched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "added": [record.model_dump(mode="json") for record in self.added],
            "duplicates": [{"image": image, "held_by": holder} for image, holder in self.duplicates],
            "unmatched": self.unmatched,
        }
