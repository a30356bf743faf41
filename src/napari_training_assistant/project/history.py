"""`history/` and `logs/`: training runs, benchmark history CSV, the training log."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from .layout import BENCHMARK_COLUMNS
from .schemas import TrainingRun, TrainingRunHistory
from .storage import atomic_write_bytes, write_model

if TYPE_CHECKING:
    from pathlib import Path

    from .training_project import TrainingProject


def write_benchmark_header(path: Path) -> None:
    atomic_write_bytes(path, (",".join(BENCHMARK_COLUMNS) + "\n").encode())


def _decode(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value in ("", None):
            out[key] = None
        elif key in ("dice", "iou", "delta_dice", "delta_iou"):
            out[key] = float(value)
        elif key == "n_images":
            out[key] = int(value)
        elif key.endswith("_per_class"):
            out[key] = json.loads(value)
        else:
            out[key] = value
    return out


class History:
    def __init__(self, project: TrainingProject):
        self._project = project
        self._layout = project.layout

    # ----------------------------------------------------------------- benchmark history
    def benchmarks(self) -> list[dict[str, Any]]:
        path = self._layout.benchmark_history
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as handle:
            return [_decode(row) for row in csv.DictReader(handle)]

    def latest_benchmark(self) -> dict[str, Any] | None:
        rows = self.benchmarks()
        return rows[-1] if rows else None

    def append_benchmark(self, row: dict[str, Any]) -> None:
        """Add one row (unknown keys refused, per-class lists stored as JSON), rewriting atomically."""
        unknown = set(row) - set(BENCHMARK_COLUMNS)
        if unknown:
            raise ValueError(f"unknown benchmark columns {sorted(unknown)}; known: {BENCHMARK_COLUMNS}")
        with self._project.locked():
            path = self._layout.benchmark_history
            old = path.read_bytes() if path.exists() else (",".join(BENCHMARK_COLUMNS) + "\n").encode()
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=BENCHMARK_COLUMNS, lineterminator="\n")
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
            atomic_write_bytes(path, old + buffer.getvalue().encode())

    # ----------------------------------------------------------------- training runs
    @property
    def runs(self) -> list[TrainingRun]:
        return self._project.read(self._layout.training_runs, TrainingRunHistory).runs

    def record_run(self, run: TrainingRun) -> None:
        """Insert or replace the run with the same id."""
        with self._project.locked():
            history = self._project.read(self._layout.training_runs, TrainingRunHistory)
            history.runs = [r for r in history.runs if r.run_id != run.run_id] + [run]
            write_model(self._layout.training_runs, history, previous_is_valid=True)

    # ----------------------------------------------------------------- log
    def log(self, message: str) -> None:
        from .training_project import now

        self._layout.logs_dir.mkdir(exist_ok=True)
        with open(self._layout.training_log, "a", encoding="utf-8") as handle:
            handle.write(f"{now().isoformat(timespec='seconds')} {message}\n")
