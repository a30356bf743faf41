"""What an exported model carries about where it came from: its ancestry, data, training and benchmark history,
as one JSON-ready dict (`lineage`) and as the package's documentation (`documentation`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .._version import __version__
from ..project import TrainingProject
from ..project.clock import now
from ..project.schemas import CheckpointRecord
from ..train.module import OPTIMIZER

TOOL = "napari-training-assistant"
BENCHMARK_KEYS = ("checkpoint_id", "parent_id", "timestamp", "n_images", "dice", "iou", "delta_dice", "benchmark_sha256")


def lineage(project: TrainingProject, record: CheckpointRecord) -> dict[str, Any]:
    """Ancestry (parents, then what the first run started from), dataset, training, auto-configuration and
    benchmark rows of `record` and its ancestors."""
    chain = _ancestors(project, record)
    ids = {c.checkpoint_id for c in chain}
    settings = record.settings
    pairs = {p.pair_id: p for p in project.dataset.pairs}
    used = [pairs[p] for p in record.dataset_pair_ids if p in pairs]
    return {
        "tool": TOOL,
        "tool_version": __version__,
        "exported_at": now().isoformat(),
        "project": project.config.project_name,
        "checkpoint": {"id": record.checkpoint_id, "sha256": record.file_sha256, "timestamp": record.timestamp.isoformat()},
        "ancestry": [
            {"checkpoint_id": c.checkpoint_id, "parent_id": c.parent_id, "timestamp": c.timestamp.isoformat(), "dice": c.metrics.get("dice")}
            for c in chain
        ],
        "started_from": _start(project, chain[-1]),
        "dataset": {
            "manifest_sha256": record.manifest_sha256,
            "pairs": len(record.dataset_pair_ids),
            "images": record.image_count,
            "patches": record.patch_count,
            "split": {name: len(ids_) for name, ids_ in record.split.items()},
            "sources": dict(Counter(p.source for p in used)),
        },
        "training": {
            "mode": record.training_mode,
            "epochs": record.metrics.get("epochs_completed"),
            "steps": record.metrics.get("steps"),
            "loss": _loss(project, record),
            "optimizer": OPTIMIZER,
            "settings": settings.get("training", {}),
            "resolved": settings.get("resolved", {}),
        },
        "validation": {k: v for k, v in record.metrics.items() if k not in ("epochs_completed", "steps")},
        "auto_configuration": [d.model_dump(mode="json") for d in project.config.auto_configuration_decisions],
        "benchmark_history": [
            {k: row.get(k) for k in (*BENCHMARK_KEYS, *sorted(k for k in row if k.startswith("instance_")))}
            for row in project.history.benchmarks()
            if row.get("checkpoint_id") in ids
        ],
    }


def _ancestors(project: TrainingProject, record: CheckpointRecord) -> list[CheckpointRecord]:
    """`record`, its parent, ... (stops at a parent no longer registered or a loop)."""
    known = {c.checkpoint_id: c for c in project.checkpoints.records}
    chain, seen = [record], {record.checkpoint_id}
    while chain[-1].parent_id in known and chain[-1].parent_id not in seen:
        chain.append(known[chain[-1].parent_id])
        seen.add(chain[-1].checkpoint_id)
    return chain


def _start(project: TrainingProject, first: CheckpointRecord) -> dict[str, Any]:
    """What the oldest run of the chain started from; an imported model with its own recorded lineage."""
    start = dict(first.starting_weights) or {"choice": "scratch"}
    if start.get("choice") == "imported" and start.get("source_id"):
        model = project.imported_models.registry.get(str(start["source_id"]))
        if model is not None:
            start["imported"] = model.model_dump(mode="json", exclude={"architecture"})
    return start


def _loss(project: TrainingProject, record: CheckpointRecord) -> dict[str, Any]:
    architecture = record.architecture
    return {"name": architecture.get("loss"), "output_mode": architecture.get("output_mode"), "activation": architecture.get("activation")}


def documentation(project: TrainingProject, record: CheckpointRecord, facts: dict[str, Any], how_to_apply: list[str]) -> str:
    """The package's README: what it segments, how it was trained and on what, how it scores, how to apply it."""
    arch = record.architecture
    config = project.config
    classes = ", ".join(config.class_names)
    training, data = facts["training"], facts["dataset"]
    lines = [
        f"# {config.project_name}: {arch['spatial_dims'].upper()} U-Net ({arch['output_mode']})",
        "",
        f"Exported by {TOOL} {__version__} from checkpoint `{record.checkpoint_id}` of the project "
        f"'{config.project_name}'.",
        "",
        "## What it segments",
        "",
        f"- Classes: {classes}. Output mode: **{arch['output_mode']}** ({_output_text(arch)}).",
        f"- Input: {arch['input_channels']} channel(s), {arch['spatial_dims']}; {record.architecture_summary.get('text', '')}",
        *([f"- Notes: {config.notes}"] if config.notes else []),
        "",
        "## How to apply it",
        "",
        *(f"- {line}" for line in how_to_apply),
        "",
        "## Training data",
        "",
        f"- {data['pairs']} image/mask pairs ({data['images']} images, {data['patches']} patches seen), "
        f"split {', '.join(f'{k}: {v}' for k, v in data['split'].items()) or 'not recorded'}; "
        f"sources {', '.join(f'{k}: {v}' for k, v in data['sources'].items()) or 'not recorded'}.",
        f"- Dataset manifest sha256: `{data['manifest_sha256']}`.",
        "",
        "## How it was trained",
        "",
        f"- {training['epochs']} epochs ({training['steps']} steps), loss {training['loss']['name']}, optimizer {training['optimizer']}.",
        f"- Settings: {_inline(training['settings'])}.",
        f"- Resolved by the auto-configuration: {_inline(training['resolved'])}.",
        *(f"- {d['setting']} = {d['value']}: {d['reason']}" for d in facts["auto_configuration"]),
        "",
        "## Lineage",
        "",
        *(f"- `{a['checkpoint_id']}` (parent {a['parent_id'] or 'none'}, {a['timestamp']})" for a in facts["ancestry"]),
        f"- The first run started from: {_inline(facts['started_from'])}.",
        "",
        "## Scores",
        "",
        f"- Validation: {_inline({k: v for k, v in facts['validation'].items() if not isinstance(v, list)})}.",
        *_benchmark_table(facts["benchmark_history"]),
        "",
    ]
    return "\n".join(lines)


def _output_text(arch: dict[str, Any]) -> str:
    mode = arch["output_mode"]
    if mode == "instance":
        return (
            "two sigmoid channels, foreground and object boundary; objects are made by a seeded watershed: seeds "
            "where foreground > 0.5 and boundary < 0.5, grown over the boundary probability within the foreground, "
            "small objects removed"
        )
    if mode == "multiclass":
        return f"softmax over {arch['output_channels']} classes; labels are the argmax"
    if mode == "multilabel":
        return f"{arch['output_channels']} independent sigmoid channels, thresholded at {arch.get('threshold', 0.5)}"
    return f"one sigmoid channel, foreground where > {arch.get('threshold', 0.5)}"


def _inline(values: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, dict):
            return "{" + _inline(v) + "}"
        return str(v)

    return ", ".join(f"{k} {fmt(v)}" for k, v in values.items()) or "none"


def _benchmark_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["- Benchmark: none recorded (no frozen benchmark pairs when it was trained)."]
    table = ["", "Frozen benchmark history (this checkpoint and its ancestors):", "",
             "| checkpoint | images | Dice | IoU | object accuracy @0.5 |", "|---|---|---|---|---|"]
    for row in rows:
        table.append(
            f"| {row['checkpoint_id']} | {row.get('n_images')} | {_num(row.get('dice'))} | {_num(row.get('iou'))} | "
            f"{_num(row.get('instance_accuracy_50'))} |"
        )
    return table


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"
