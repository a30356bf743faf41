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
