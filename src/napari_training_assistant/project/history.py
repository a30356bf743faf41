"""`history/` and `logs/`: training runs, benchmark history CSV, the training log."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from .clock import now
from .layout import ASSIGNMENT_COLUMNS, BENCHMARK_COLUMNS
from .schemas import RunHeartbeat, TrainingRun, TrainingRunHistory
from .storage import write_model, write_with_backup

if TYPE_CHECKING:
    from pathlib import Path

    from .handle import ProjectFiles


def write_benchmark_header(path: Path) -> None:
    write_with_backup(path, (",".join(BENCHMARK_COLUMNS) + "\n").encode())


def _decode(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value in ("", None):
            if key not in ASSIGNMENT_COLUMNS:  # a segmentation row reads as it always has
                out[key] = None
        elif key in ("dice", "iou", "delta_dice", "delta_iou") or key.endswith("_accuracy") or key.startswith("instance_"):
            out[key] = float(value)
        elif key in ("n_images", "n_synapses"):
            out[key] = int(value)
        elif key.endswith("_per_class"):
            out[key] = json.loads(value)
        else:
            out[key] = value
    return out


class History:
    def __init__(self, project: ProjectFiles):
        self._project = project
        self._layout = project.layout

    # ----------------------------------------------------------------- benchmark history
    def benchmarks(self, kind: str | None = "segmentation") -> list[dict[str, Any]]:
        """Rows of one kind: "segmentation" (Dice/IoU on the benchmark pairs; also rows without a kind) or
        "assignment" (synapse partner accuracy); None: every row."""
        path = self._layout.benchmark_history
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [_decode(row) for row in csv.DictReader(handle)]
        return [r for r in rows if kind is None or (r.get("kind") or "segmentation") == kind]

    def latest_benchmark(self) -> dict[str, Any] | None:
        rows = self.benchmarks()
        return rows[-1] if rows else None

    def append_benchmark(self, row: dict[str, Any]) -> None:
        """Add one row (unknown keys refused, per-class lists stored as JSON), rewriting atomically (and
        its `.bak` mirror). A file with fewer columns (an older version) gets the new header; its rows
        keep their values, new columns empty."""
        unknown = set(row) - set(BENCHMARK_COLUMNS)
        if unknown:
            raise ValueError(f"unknown benchmark columns {sorted(unknown)}; known: {BENCHMARK_COLUMNS}")
        with self._project.locked():
            path = self._layout.benchmark_history
            old = path.read_bytes() if path.exists() else b""
            header = old.split(b"\n", 1)[0].decode("utf-8", "replace")
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=BENCHMARK_COLUMNS, lineterminator="\n", extrasaction="ignore")
            if header == ",".join(BENCHMARK_COLUMNS):
                buffer.write(old.decode("utf-8"))
            else:
                writer.writeheader()
                for earlier in csv.DictReader(io.StringIO(old.decode("utf-8", "replace"))) if old else []:
                    writer.writerow({k: v for k, v in earlier.items() if k in BENCHMARK_COLUMNS})
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
            write_with_backup(path, buffer.getvalue().encode())

    # ----------------------------------------------------------------- training runs
    @property
    def runs(self) -> list[TrainingRun]:
        return self._project.read(self._layout.training_runs, TrainingRunHistory).runs

    def record_run(self, run: TrainingRun) -> None:
        """Insert or replace the run with the same id."""
        with self._project.locked():
            history = self._project.read(self._layout.training_runs, TrainingRunHistory)
            history.runs = [r for r in history.runs if r.run_id != run.run_id] + [run]
            write_model(self._layout.training_runs, history)

    def beat(self, run_id: str, heartbeat: RunHeartbeat) -> None:
        """Renew a running run's heartbeat (nothing changes once the run has ended)."""
        with self._project.locked():
            history = self._project.read(self._layout.training_runs, TrainingRunHistory)
            run = next((r for r in history.runs if r.run_id == run_id), None)
            if run is not None and run.status == "running":
                run.heartbeat = heartbeat
                write_model(self._layout.training_runs, history)

    def live_runs(self) -> list[TrainingRun]:
        """Runs whose process is still training (see `runs.is_alive`)."""
        from .runs import is_alive
        moment = now()
        return [run for run in self.runs if is_alive(run, moment)]

    def holder_of(self, pair_id: str) -> TrainingRun | None:
        """The live run that trains or validates on `pair_id`, if any."""
        return next((run for run in self.live_runs() if pair_id in run.held_pairs), None)

    # ----------------------------------------------------------------- log
    def log(self, message: str) -> None:
        self._layout.logs_dir.mkdir(exist_ok=True)
        with open(self._layout.training_log, "a", encoding="utf-8") as handle:
            handle.write(f"{now().isoformat(timespec='seconds')} {message}\n")
