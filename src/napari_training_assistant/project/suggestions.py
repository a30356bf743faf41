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


MAX_BYTES = 16 * 2**20  # a ranking of ~100,000 images; a bigger file is not one `nta suggest` wrote
SCORES = {"score": float, "entropy": float, "disagreement": float, "rank": int, "of": int, "checkpoint_id": str, "suggested_at": str}


def read_suggestions(project: TrainingProject) -> dict[str, dict[str, Any]]:
    """The recorded rankings; entries that are not what `record_suggestions` writes are left out (a file edited
    by hand or by a stranger never stops a pair from being added, nor puts anything else into the manifest)."""
    path = _path(project)
    try:
        if path.stat().st_size > MAX_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: entry for k, v in data.items() if isinstance(k, str) and (entry := _entry(v)) is not None}


def _entry(value: Any) -> dict[str, Any] | None:
    """The known fields of one recorded suggestion with their types checked, or None."""
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for name, kind in SCORES.items():
        found = value.get(name)
        if isinstance(found, bool) or not isinstance(found, (int, float) if kind is float else kind):
            return None
        out[name] = found
    region = value.get("region")
    if region is not None:
        if not (isinstance(region, list) and all(isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r) for r in region)):
            return None
        out["region"] = region
    return out


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
    return max(found, key=lambda v: (v["suggested_at"], -v["rank"]), default=None)
