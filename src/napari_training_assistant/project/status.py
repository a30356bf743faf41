"""One summary of a project's state, shared by `nta status` and the widget's status bar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .training_project import TrainingProject


def project_state(dataset_count: int, checkpoint_count: int, benchmarked: bool, training_mode: str = "pairs") -> str:
    """In words; a point-windowed project (trained on synapse windows, no pairs) is never "empty"."""
    if training_mode == "point_windows" and dataset_count == 0:
        if checkpoint_count == 0:
            return "point-windowed: train from a spec or from layers"
        return "trained on point windows" + (", partners benchmarked" if benchmarked else "")
    if dataset_count == 0:
        return "empty: add image/mask pairs"
    if checkpoint_count == 0:
        return "ready to train"
    return "trained and benchmarked" if benchmarked else "trained"


def project_status(project: TrainingProject) -> dict[str, Any]:
    """Everything `nta status --json` reports (plain JSON types)."""
    config = project.config
    manifest = project.manifest
    registry = project.checkpoints.registry
    latest_benchmark = project.history.latest_benchmark()
    counts = project.dataset.split_counts()
    completed = [c for c in registry.checkpoints if c.status == "completed"]
    runs = _runs(project)
    return {
        "project_name": config.project_name,
        "project_path": str(project.root.resolve()),
        "state": project_state(
            len(manifest.pairs), len(completed), bool(latest_benchmark or project.history.benchmarks(kind="assignment")), config.training.training_mode
        ),
        "dataset_count": len(manifest.pairs),
        "split_counts": counts,
        "removed_pairs": len(manifest.removed_pairs),
        "latest_checkpoint": registry.latest,
        "best_checkpoint": project.checkpoints.best_id,
        "checkpoint_count": len(registry.checkpoints),
        "running_runs": [r["run_id"] for r in runs if r["status"] == "running"],
        "interrupted_runs": [r["run_id"] for r in runs if r["status"] == "interrupted"],
        "runs": runs,
        "latest_benchmark": latest_benchmark,
        "architecture": project.architecture.model_dump(mode="json"),
        "starting_weights": project.starting_weights.describe(),
        "imported_models": [m.model_id for m in project.imported_models.registry.models],
        "class_names": config.class_names,
        "training": config.training.model_dump(mode="json"),
        "auto_configuration_decisions": [d.model_dump(mode="json") for d in config.auto_configuration_decisions],
        "selected_layers": config.ui.selected_layers,
        "created_at": config.created_at.isoformat(),
        "notes": config.notes,
    }


def _runs(project: TrainingProject) -> list[dict[str, Any]]:
    """Each run with its effective status: `running` only while its process is alive, else `interrupted`."""
    from .clock import now
    from .run_control import progress_summary
    from .runs import describe_process, effective_status

    moment = now()
    runs = []
    for run in project.history.runs:
        status = effective_status(run, moment)
        runs.append(
            {
                "run_id": run.run_id,
                "status": status,
                "checkpoint_id": run.checkpoint_id,
                "process": describe_process(run),
                "started_at": run.started_at.isoformat(timespec="seconds"),
                "progress": progress_summary(project, run.run_id) if status == "running" else None,
            }
        )
    return runs
