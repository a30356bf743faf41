"""What `nta suggest` ranked, kept in `history/suggestions.json`, so that a pair added from a suggested image
records its rank and scores (`PairRecord.suggestion`): how well the model's uncertainty picked what to label.

The file maps an image (its resolved path) to the newest ranking it appeared in. It is written under the
project lock with an atomic replace, and read leniently: an unreadable file only means no suggestion is
recorded (never an error while adding a pair).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .clock import now
from .storage import atomic_write_bytes

TrainingProject = Any  # a TrainingProject (not imported: the project's dataset imports this module)

SUGGESTIONS_FILE = "suggestions.json"


def _path(project: TrainingProject) -> Path:
    return project.layout.history_dir / SUGGESTIONS_FILE


def _key(image: str | Path, region: list[list[int]] | None = None) -> str:
    path = str(Path(image).expanduser().resolve())
    return path if not region else path + "#" + ",".join(f"{a}:{b}" for a, b in region)


def read_suggestions(project: TrainingProject) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_path(project).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def record_suggestions(project: TrainingProject, checkpoint_id: str, ranked: list[dict[str, Any]]) -> None:
    """Remember a ranking (most uncertain first; each entry has `path` and its scores)."""
    when = now().isoformat()
    with project.locked():
        known = read_suggestions(project)
        for rank, entry in enumerate(ranked, start=1):
            known[_key(entry["path"], entry.get("region"))] = {
                **{k: v for k, v in entry.items() if k != "path"},
                "rank": rank,
                "of": len(ranked),
                "checkpoint_id": checkpoint_id,
                "suggested_at": when,
            }
        atomic_write_bytes(_path(project), (json.dumps(known, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def suggestion_for(project: TrainingProject, image: str | Path | None) -> dict[str, Any] | None:
    """The newest ranking of `image` (a file path; for a tiled image its best-ranked tile), or None when it
    was never suggested."""
    if not image:
        return None
    path = _key(image)
    found = [v for k, v in read_suggestions(project).items() if k == path or k.startswith(path + "#")]
    # newest ranking first (ISO times of one clock sort as text), then its best rank
    return max(found, key=lambda v: (str(v.get("suggested_at", "")), -int(v.get("rank", 0))), default=None)
