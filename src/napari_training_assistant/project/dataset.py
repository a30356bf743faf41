"""Accepted image/mask pairs: add (arrays or files), split, remove, list."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from .clock import now
from .errors import DatasetError, ProjectError
from .masks import MaskWarning
from .schemas import DatasetManifest, PairRecord, RemovedPair, Split
from .splits import auto_split
from .user_input import DatasetInputError, DuplicatePairError, NamesInputs

if TYPE_CHECKING:
    from .folder_import import FolderImport
    from .handle import ProjectFiles
    from .history import History
    from .pair_preparation import PreparedPair

SPLITS: tuple[str, ...] = get_args(Split)


class Dataset:
    """The project's `dataset/` folder and `manifest.json`."""

    def __init__(self, project: ProjectFiles, history: History):
        self._project = project
        self._history = history
        self._layout = project.layout

    # ----------------------------------------------------------------- queries
    @property
    def pairs(self) -> list[PairRecord]:
        return self._project.manifest.pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, pair_id: str) -> PairRecord:
        return _find(self._project.manifest, pair_id, self._project.root)

    def ids(self, split: str | None = None) -> list[str]:
        return [p.pair_id for p in self.pairs if split is None or p.split == split]

    def split_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SPLITS, 0)
        for pair in self.pairs:
            counts[pair.split] += 1
        return counts

    def content_sha256(self) -> str:
        """Hash of what a run trains on: pair ids, array hashes and splits (not bookkeeping such as
        `used_by_checkpoints`), so it identifies the dataset version a checkpoint saw."""
        return pairs_sha256(self.pairs)

    def load(self, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) as saved: image channel-first when it has channels. Each array is checked against
        the hash recorded when the pair was added, so a file replaced on disk is never trained on."""
        return load_pair_arrays(self._project, self.get(pair_id))

    # ----------------------------------------------------------------- add
    def add_files(
        self,
        image: str | Path,
        mask: str | Path | Sequence[str | Path],
        *,
        image_dataset: str | None = None,
        mask_dataset: str | None = None,
        **options: Any,
    ) -> PairRecord:
        """Read image and mask files (TIFF, PNG, NPY, Zarr, OME-Zarr) and add them as a pair.

        `mask` may be a list of files for `multilabel` (one binary mask per channel).
        """
        from .image_io import read_array

        image_array = read_array(Path(image), dataset=image_dataset)
        if isinstance(mask, (str, Path)):
            mask_array: Any = read_array(Path(mask), dataset=mask_dataset)
            mask_files = str(mask)
        else:
            mask_array = [read_array(Path(m), dataset=mask_dataset) for m in mask]
            mask_files = ";".join(str(m) for m in mask)
        options.setdefault("source_files", {"image": str(image), "mask": mask_files})
        return self.add(image_array, mask_array, **options)

    def add(
        self,
        image: np.ndarray,
        mask: np.ndarray | Sequence[np.ndarray],
        *,
        mask_mode: str = "binary",
        channel_axis: int | None = None,
        mask_channel_axis: int | None = None,
        slice_index: int | None = None,
        split: Split | None = None,
        target_class: str | int | None = None,
        label_map: Mapping[int, int] | None = None,
        image_layer: str | None = None,
        mask_layer: str | None = None,
        source: str = "manual",
        prompts: list[dict[str, Any]] | None = None,
        source_files: dict[str, str] | None = None,
        allow_duplicate: bool = False,
        correction: dict[str, Any] | None = None,
        suggestion: dict[str, Any] | None = None,
    ) -> PairRecord:
        """Prepare the mask, check shapes against each other and the architecture, save, record.

        The same image and mask (by content) twice are refused unless `allow_duplicate`. `suggestion`: how `nta
        suggest` ranked the image (looked up from `source_files["image"]` when not given)."""
        from .image_io import write_tiff

        prepared, image_sha, mask_sha = self.prepare(
            image,
            mask,
            split=split,
            mask_mode=mask_mode,
            channel_axis=channel_axis,
            mask_channel_axis=mask_channel_axis,
            slice_index=slice_index,
            target_class=target_class,
            label_map=label_map,
        )
        config = self._project.config
        if suggestion is None:
            from .suggestions import suggestion_for

            suggestion = suggestion_for(self._project, (source_files or {}).get("image"))
        with self._project.locked():
            manifest = self._project.manifest
            twin = _holding(manifest, image_sha, mask_sha)
            if twin is not None and not allow_duplicate:
                raise DuplicatePairError(
                    f"this image and mask are already in the dataset as {twin.pair_id} ({twin.split}); "
                    "a second copy would count twice in training: skip it, or add it anyway with `allow_duplicate`"
                )
            number = self._free_pair_number(manifest)
            pair_id = f"pair_{number:04d}"
            image_path = self._layout.images_dir / f"{pair_id}.tif"
            mask_path = self._layout.masks_dir / f"{pair_id}.tif"
            chosen = split or auto_split(manifest.pairs, config.benchmark_every, config.training.val_fraction)
            record = PairRecord(
                pair_id=pair_id,
                image_path=self._layout.relative(image_path),
                mask_path=self._layout.relative(mask_path),
                image_layer=image_layer,
                mask_layer=mask_layer,
                source_files=source_files or {},
                spatial_dims=prepared.spatial_dims,
                image_shape=list(prepared.image.shape),
                mask_shape=list(prepared.mask.array.shape),
                image_channels=prepared.image_channels,
                image_dtype=str(prepared.image.dtype),
                mask_dtype=str(prepared.mask.array.dtype),
                slice_index=slice_index,
                mask_mode=prepared.mask_mode,
                source_labels=prepared.mask.source_labels,
                saved_labels=prepared.mask.saved_labels,
                target_class_name=prepared.mask.target_class_name,
                label_transform=prepared.mask.label_transform,
                source=source,
                prompts=prompts or [],
                correction=correction,
                suggestion=suggestion,
                created_at=now(),
                image_sha256=image_sha,
                mask_sha256=mask_sha,
                split=chosen,
                split_assigned_by="user" if split else "auto",
            )
            # arrays first, manifest last: a crash in between leaves only orphan files (nta doctor lists them)
            write_tiff(image_path, prepared.image)
            write_tiff(mask_path, prepared.mask.array)
            manifest.pairs.append(record)
            manifest.next_pair_number = number + 1
            self._save(manifest)
        if prepared.mask.warning:
            name = mask_layer or (source_files or {}).get("mask") or "the mask"
            warnings.warn(f"{pair_id} ({name}): {prepared.mask.warning}", MaskWarning, stacklevel=2)
        return record

    def prepare(self, image: np.ndarray, mask: np.ndarray | Sequence[np.ndarray], *, split: Split | None = None, **options: Any) -> tuple[PreparedPair, str, str]:
        """(the pair as `add` would save it, image sha256, mask sha256): every check of `add`, nothing written."""
        from .image_io import array_sha256
        from .pair_preparation import prepare_pair

        if split is not None and split not in SPLITS:
            raise DatasetError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        prepared = prepare_pair(image, mask, architecture=self._project.architecture, class_names=self._project.config.class_names, **options)
        return prepared, array_sha256(prepared.image), array_sha256(prepared.mask.array)

    def add_folder(self, folder: str | Path, *, skip_unmatched: bool = False, allow_duplicate: bool = False, **options: Any) -> FolderImport:
        """Add every pair of `folder`/images + `folder`/masks (matched by stem, see `folder_import`) with the
        same options (`add`'s: mask mode, channel axes, split, target class, label map).

        Every pair is read and checked before the first is written: one bad file, or a file without a
        partner (unless `skip_unmatched`, which lists it as skipped), adds nothing and the one-line error
        names each. A pair already in the dataset (or earlier in the folder) is skipped and reported with the
        pair holding it, unless `allow_duplicate`."""
        from .folder_import import FolderImport, find_folder_pairs
        from .image_io import read_array

        found = find_folder_pairs(folder)
        if found.unmatched and not skip_unmatched:
            raise DatasetInputError(
                f"{len(found.unmatched)} file(s) of {folder} have no partner: {', '.join(found.unmatched)}; a mask of "
                "images/NAME.ext is masks/NAME.*, NAME_mask.* or NAME_labels.*: rename them, or skip them (`skip_unmatched`)"
            )
        result = FolderImport(str(folder), unmatched=found.unmatched)
        holders = {(p.image_sha256, p.mask_sha256): p.pair_id for p in self.pairs}
        problems, new = [], []
        for image, mask in found.pairs:
            try:
                _, *content = self.prepare(read_array(image), read_array(mask), **options)
            except ProjectError as exc:
                problems.append(f"{image.name} + {mask.name}: {exc.template if isinstance(exc, NamesInputs) else exc}")
                continue
            holder = holders.get(tuple(content))
            if holder is not None and not allow_duplicate:
                result.duplicates.append((image.name, holder))
            else:
                holders.setdefault(tuple(content), f"images/{image.name}")
                new.append((image, mask))
        if problems:
            raise DatasetInputError(f"{len(problems)} of {len(found.pairs)} pair(s) of {folder} cannot be added, so none was: {'; '.join(problems)}")
        for image, mask in new:  # each add reads and checks its files again, under the lock
            try:
                result.added.append(self.add_files(image, mask, source="imported", allow_duplicate=allow_duplicate, **options))
            except ProjectError as exc:  # changed since it was checked (another process, a file replaced)
                done = f"{len(result.added)} pair(s) of the folder were added before it ({', '.join(r.pair_id for r in result.added) or 'none'})"
                raise DatasetError(f"{image.name} + {mask.name}: {exc}; {done}") from None
        return result

    # ----------------------------------------------------------------- change
    def set_split(self, pair_id: str, split: Split) -> PairRecord:
        if split not in SPLITS:
            raise DatasetError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        with self._project.locked():
            manifest = self._project.manifest
            record = _find(manifest, pair_id, self._project.root)
            if record.split != split:
                self._refuse_while_held(pair_id, f"moved to {split}")
            record.split = split
            record.split_assigned_by = "user"
            self._save(manifest)
        return record

    def mark_used(self, pair_ids: Sequence[str], checkpoint_id: str) -> None:
        with self._project.locked():
            manifest = self._project.manifest
            wanted = set(pair_ids)
            for record in manifest.pairs:
                if record.pair_id in wanted and checkpoint_id not in record.used_by_checkpoints:
                    record.used_by_checkpoints = [*record.used_by_checkpoints, checkpoint_id]
            self._save(manifest)

    def remove(self, pair_id: str) -> RemovedPair:
        """Delete the pair's files and manifest entry; a tombstone keeps checkpoint history readable."""
        with self._project.locked():
            manifest = self._project.manifest
            record = _find(manifest, pair_id, self._project.root)
            self._refuse_while_held(pair_id, "removed")
            tombstone = RemovedPair(
                pair_id=record.pair_id,
                removed_at=now(),
                image_sha256=record.image_sha256,
                mask_sha256=record.mask_sha256,
                split=record.split,
                used_by_checkpoints=record.used_by_checkpoints,
            )
            files = [self._layout.removable(r) for r in (record.image_path, record.mask_path)]  # refused before any change
            manifest.pairs = [p for p in manifest.pairs if p.pair_id != pair_id]
            manifest.removed_pairs.append(tombstone)
            self._save(manifest)  # manifest first: files of a pair never vanish while it is listed
            for path in files:
                path.unlink(missing_ok=True)  # a link is removed, never its target
        return tombstone

    def _refuse_while_held(self, pair_id: str, change: str) -> None:
        """A pair a live run trains or validates on cannot change under it (its checkpoint would name
        data it did not see, or be benchmarked on what it trained on)."""
        from .runs import describe_process

        run = self._history.holder_of(pair_id)
        if run is not None:
            raise DatasetError(
                f"{pair_id} cannot be {change}: {run.run_id} is training on it now ({describe_process(run)}); "
                "wait for the run to end or stop it, then try again"
            )

    def _free_pair_number(self, manifest: DatasetManifest) -> int:
        """`next_pair_number`, skipping ids already listed and numbers whose files are on disk: files
        left unlisted (an interrupted add, a manifest restored from its backup) are never overwritten."""
        taken = {p.pair_id for p in manifest.pairs} | {p.pair_id for p in manifest.removed_pairs}
        number = manifest.next_pair_number
        while (
            f"pair_{number:04d}" in taken
            or (self._layout.images_dir / f"pair_{number:04d}.tif").exists()
            or (self._layout.masks_dir / f"pair_{number:04d}.tif").exists()
        ):
            number += 1
        return number

    def _save(self, manifest: DatasetManifest) -> None:
        from .storage import write_model

        write_model(self._layout.manifest, manifest)


def _find(manifest: DatasetManifest, pair_id: str, root: Path) -> PairRecord:
    record = manifest.get(pair_id)
    if record is None:
        raise DatasetError(f"no pair {pair_id!r} in {root}: list pairs with `nta pairs {root}`")
    return record


def pairs_sha256(pairs: Sequence[PairRecord]) -> str:
    """sha256 over (pair id, image hash, mask hash, split) of `pairs`, in id order."""
    import hashlib
    import json

    content = sorted((p.pair_id, p.image_sha256, p.mask_sha256, p.split) for p in pairs)
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _holding(manifest: DatasetManifest, image_sha: str, mask_sha: str) -> PairRecord | None:
    """The pair holding this image and mask content, if any."""
    return next((p for p in manifest.pairs if (p.image_sha256, p.mask_sha256) == (image_sha, mask_sha)), None)


def load_pair_arrays(project: ProjectFiles, record: PairRecord) -> tuple[np.ndarray, np.ndarray]:
    """A pair's saved (image, mask), refused when a file is missing, outside the project, or no longer
    holds what was added (sha256 of dtype, shape and values)."""
    from .image_io import array_sha256, read_tiff

    arrays = []
    for role, relative, expected in (("image", record.image_path, record.image_sha256), ("mask", record.mask_path, record.mask_sha256)):
        array = read_tiff(project.layout.absolute(relative))
        if array_sha256(array) != expected:
            raise DatasetError(
                f"the {role} of {record.pair_id} ({relative}) changed since it was added (shape {tuple(array.shape)}, "
                f"recorded {tuple(record.image_shape if role == 'image' else record.mask_shape)}): "
                f"restore the file, or remove the pair (nta remove-pair {project.root} {record.pair_id}) and add it again"
            )
        arrays.append(array)
    return arrays[0], arrays[1]

