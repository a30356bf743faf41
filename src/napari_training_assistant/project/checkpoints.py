"""Checkpoint registry: numbered files never overwritten, `latest.pt` moved only after registration."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clock import now
from .dataset import pairs_sha256
from .errors import CheckpointError
from .schemas import CheckpointRecord, CheckpointRegistry
from .storage import atomic_copy, write_model

if TYPE_CHECKING:
    from .dataset import Dataset
    from .handle import ProjectFiles

CHECKPOINT_PATTERN = re.compile(r"^unet_run_(\d{3,})\.pt$")


def checkpoint_name(number: int) -> str:
    return f"unet_run_{number:03d}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CheckpointStore:
    """`checkpoints/`: `checkpoints.json`, `unet_run_NNN.pt` and `latest.pt`."""

    def __init__(self, project: ProjectFiles, dataset: Dataset):
        self._project = project
        self._dataset = dataset
        self._layout = project.layout

    @property
    def registry(self) -> CheckpointRegistry:
        return self._project.read(self._layout.checkpoint_registry, CheckpointRegistry)

    @property
    def records(self) -> list[CheckpointRecord]:
        return self.registry.checkpoints

    @property
    def latest_id(self) -> str | None:
        return self.registry.latest

    @property
    def best_id(self) -> str | None:
        """The completed checkpoint with the highest benchmark Dice on the current benchmark pairs (same
        pairs, same contents; the newer one on a tie), or None when none was measured on them. Unlike
        `latest`, a worse later run never becomes `best`."""
        benchmark = [p for p in self._dataset.pairs if p.split == "benchmark"]
        if not benchmark:
            return None
        current = pairs_sha256(benchmark)
        completed = {c.checkpoint_id for c in self.records if c.status == "completed"}
        scored = [
            (row["dice"], index, row["checkpoint_id"])
            for index, row in enumerate(self._project.history.benchmarks())
            if row.get("benchmark_sha256") == current and row.get("dice") is not None and row.get("checkpoint_id") in completed
        ]
        return max(scored)[2] if scored else None

    def get(self, checkpoint_id: str) -> CheckpointRecord:
        if checkpoint_id == "latest":
            latest = self.latest_id
            if latest is None:
                raise CheckpointError(f"{self._project.root} has no completed checkpoint yet: train first (nta train)")
            checkpoint_id = latest
        elif checkpoint_id == "best":
            best = self.best_id
            if best is None:
                raise CheckpointError(
                    f"{self._project.root} has no checkpoint benchmarked on its current benchmark pairs: "
                    f"mark benchmark pairs and run `nta benchmark {self._project.root}`"
                )
            checkpoint_id = best
        record = self.registry.get(checkpoint_id)
        if record is None:
            known = ", ".join(c.checkpoint_id for c in self.records[-5:]) or "none"
            raise CheckpointError(f"no checkpoint {checkpoint_id!r} in this project (latest ones: {known})")
        return record

    def path_of(self, checkpoint_id: str) -> Path:
        return self._layout.absolute(self.get(checkpoint_id).path)

    def reserve(self) -> tuple[str, Path]:
        """Claim the next checkpoint number (under the lock) so concurrent runs never collide."""
        with self._project.locked():
            registry = self.registry
            on_disk = [int(m.group(1)) for f in self._layout.checkpoints_dir.glob("unet_run_*.pt") if (m := CHECKPOINT_PATTERN.match(f.name))]
            number = max([registry.next_number, *(n + 1 for n in on_disk)])
            registry.next_number = number + 1
            write_model(self._layout.checkpoint_registry, registry)
        name = checkpoint_name(number)
        return name, self._layout.checkpoints_dir / f"{name}.pt"

    def register(self, checkpoint_id: str, *, architecture: dict[str, Any], status: str = "completed", **fields: Any) -> CheckpointRecord:
        """Record a checkpoint whose file was written at its reserved path.

        Order: the record is saved first; only then, for a completed run, `latest.pt` is replaced
        atomically and the registry's `latest` pointer moves. A crash at any point leaves either the
        old or the new state (`nta doctor` realigns `latest.pt` with the pointer). Idempotent per run:
        a run that already registered its completed checkpoint gets that record back, nothing new.
        """
        path = self._layout.checkpoints_dir / f"{checkpoint_id}.pt"
        if not path.is_file():
            raise CheckpointError(f"cannot register {checkpoint_id}: {path} was not written")
        with self._project.locked():
            registry = self.registry
            if registry.get(checkpoint_id) is not None:
                raise CheckpointError(f"{checkpoint_id} is already registered; checkpoints are never overwritten")
            done = self.completed_by_run(fields.get("run_id"), registry)
            if done is not None and status == "completed":
                return done
            record = CheckpointRecord(
                checkpoint_id=checkpoint_id,
                status=status,
                timestamp=fields.pop("timestamp", None) or now(),
                path=self._layout.relative(path),
                file_sha256=file_sha256(path),
                architecture=architecture,
                manifest_sha256=fields.pop("manifest_sha256", None) or self.manifest_sha256(),
                **fields,
            )
            registry.checkpoints.append(record)
            write_model(self._layout.checkpoint_registry, registry)
            if record.dataset_pair_ids:
                self._dataset.mark_used(record.dataset_pair_ids, checkpoint_id)
            if status == "completed":
                atomic_copy(path, self._layout.latest_checkpoint)
                registry.latest = checkpoint_id
                write_model(self._layout.checkpoint_registry, registry)
        return record

    def completed_by_run(self, run_id: str | None, registry: CheckpointRegistry | None = None) -> CheckpointRecord | None:
        """The completed checkpoint `run_id` registered, if it did."""
        if not run_id:
            return None
        registry = registry or self.registry
        return next((c for c in registry.checkpoints if c.run_id == run_id and c.status == "completed"), None)

    def manifest_sha256(self) -> str:
        return self._dataset.content_sha256()

    def latest_file_matches(self) -> bool:
        latest = self.latest_id
        target = self._layout.latest_checkpoint
        if latest is None:
            return not target.exists()
        return target.is_file() and file_sha256(target) == self.get(latest).file_sha256

