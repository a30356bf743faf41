"""Printing helpers: human tables, or one JSON object as the last line of stdout (`--json`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

JSON_HELP = "print one JSON object as the last line of stdout"


def emit_json(payload: Any) -> None:
    print(json.dumps(payload, default=str, separators=(",", ":")))


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt_metric(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


class ProgressBar:
    """A tqdm bar on stderr fed by progress events (the STARTED line above it); silent when quiet."""

    def __init__(self, unit: str, quiet: bool) -> None:
        self.unit, self.quiet, self.bar = unit, quiet, None

    def __enter__(self):
        return self.show

    def show(self, event) -> None:
        import sys

        from tqdm import tqdm

        from ..progress import EventKind

        if self.quiet:
            return
        if event.kind == EventKind.STARTED:
            print(event.message, file=sys.stderr, flush=True)
            self.bar = tqdm(total=event.steps, initial=event.step, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        elif event.kind == EventKind.STEP and self.bar is not None:
            self.bar.update(event.step - self.bar.n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
