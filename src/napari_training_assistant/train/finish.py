"""After `fit`: save and register the checkpoint, benchmark it, draw curves, record the run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..model import save_checkpoint
from ..project import TrainingProject
from ..project.clock import now
from .curves import write_curves_off_thread
from .records import TrainingFailed, TrainResult, record_end

if TYPE_CHECKING:
    import lightning as L

    from .prepared import PreparedRun


def final_metrics(run: PreparedRun, trainer: L.Trainer) -> dict[str, Any]:
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    scores = getattr(run.module, "last_val_scores", None) or {}  # none before the first validation
    metrics: dict[str, Any] = {
        "train_loss": logged.get("train_loss"),
        "val_loss": logged.get("val_loss"),
        "dice": _float(scores.get("dice")),
        "iou": _float(scores.get("iou")),
        "dice_per_class": [_float(v) for v in scores.get("dice_per_class", [])],
        "iou_per_class": [_float(v) for v in scores.get("iou_per_class", [])],
        "epochs_completed": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
    }
    if scores.get("objects"):  # instance models: object matching on the validation tiles
        metrics["objects"] = {k: _float(v) for k, v in scores["objects"].items()}
    names = run.module.channel_names
    if names:  # point windows: per output channel (pre, post)
        constant = scores.get("constant_dice_per_class") or [None] * len(names)
        metrics["per_channel"] = {
            name: {"dice": dice, "iou": iou, "constant_predictor_dice": _float(base)}
            for name, dice, iou, base in zip(names, metrics["dice_per_class"], metrics["iou_per_class"], constant, strict=False)
        }
    if run.val_note:
        metrics["validation"] = run.val_note
    return metrics


def finish_run(
    project: TrainingProject,
    run: PreparedRun,
    trainer: L.Trainer,
    run_id: str,
    status: str,
    started: float,
    reason: str = "",
    log: Callable[[str], None] = lambda line: None,
) -> TrainResult:
    """Register the run's checkpoint (once per run: a run that already registered its completed
    checkpoint gets that one back) with an instance model's post-processing tuned on the validation pairs,
    benchmark it, draw curves, record the run's end; `log` gets a line for each step that takes a while.
    Weights that are not finite are never registered: the run is recorded as failed."""
    metrics = final_metrics(run, trainer)
    run_dir = project.layout.run_dir(run_id)
    checkpoint_id = checkpoint_path = None
    benchmark = None
    timings: dict[str, float] = {"fit_s": round(time.perf_counter() - started, 2)}
    if trainer.global_step > 0:
        _require_finite_weights(project, run, run_id, started)
        done = project.checkpoints.completed_by_run(run_id) if status == "completed" else None
        if status == "completed" and not done:
            _tune_postprocessing(run, metrics, timings, log)
        checkpoint_id, path = (done.checkpoint_id, project.checkpoints.path_of(done.checkpoint_id)) if done else _save(project, run, trainer, run_id, status, metrics)
        checkpoint_path = str(path.resolve())
        if status == "completed" and run.options.run_benchmark and project.dataset.ids("benchmark"):
            from .benchmark import benchmark_checkpoint

            bench_start = time.perf_counter()
            benchmark = benchmark_checkpoint(project, checkpoint_id)
            timings["benchmark_s"] = round(time.perf_counter() - bench_start, 2)
    if status == "completed":
        (run_dir / "last.ckpt").unlink(missing_ok=True)  # resume state is only kept for unfinished runs
    curves = write_curves_off_thread(run_dir / "metrics.csv", run_dir / "curves.png", f"{project.name} {run_id} ({status})")
    duration = round(time.perf_counter() - started, 2)
    record_end(project, run_id, status, started, run.start.parent_id, reason=reason, checkpoint_id=checkpoint_id, timings=timings)
    return TrainResult(
        run_id=run_id,
        status=status,
        checkpoint_id=checkpoint_id,
        checkpoint_path=checkpoint_path,
        parent_id=run.start.parent_id,
        metrics=metrics,
        benchmark=benchmark,
        curves_path=str(curves.resolve()) if curves else None,
        metrics_csv=str((run_dir / "metrics.csv").resolve()) if (run_dir / "metrics.csv").exists() else None,
        duration_s=duration,
        decisions=[d.model_dump(mode="json") for d in run.decisions or []],
        points=run.point_counts(),
    )


def _tune_postprocessing(run: PreparedRun, metrics: dict[str, Any], timings: dict[str, float], log: Callable[[str], None]) -> None:
    """An instance model's seeded-watershed settings chosen on the validation pairs, kept in `metrics`."""
    from .instance_tuning import tune_run

    if run.architecture.get("output_mode") != "instance":
        return
    log("tuning the object post-processing on the validation pairs")
    tuning_start = time.perf_counter()
    try:
        tuning = tune_run(run)
    except Exception as exc:  # noqa: BLE001 - the checkpoint is saved with the defaults rather than lost
        log(f"object post-processing not tuned ({type(exc).__name__}: {exc}): predictions use the defaults")
        return
    if tuning is not None:
        metrics["instance_postprocessing"] = tuning.record()
        timings["tuning_s"] = round(time.perf_counter() - tuning_start, 2)
        log(tuning.summary())


def _save(project: TrainingProject, run: PreparedRun, trainer: L.Trainer, run_id: str, status: str, metrics: dict[str, Any]):
    """Reserve a number, write the self-describing checkpoint (its registration record inside, so
    `nta doctor` can rebuild the registry from the files), then register it."""
    checkpoint_id, path = project.checkpoints.reserve()
    snapshot, _ = run.dataset_hold()
    registration = {
        "status": status,
        "timestamp": now().isoformat(),
        "parent_id": run.start.parent_id,
        "patch_count": trainer.global_step * run.batch_size * trainer.world_size,
        "metrics": metrics,
        **run.registration_fields(),
        "starting_weights": run.start.snapshot,
        "architecture_summary": run.extra["architecture_summary"],
        "run_id": run_id,
        "settings": run.settings_record(),
        "manifest_sha256": snapshot,
    }
    metadata = {
        "checkpoint_id": checkpoint_id,
        "parent_id": run.start.parent_id,
        "run_id": run_id,
        "metrics": metrics,
        **run.checkpoint_metadata(),
        "registration_json": json.dumps(registration, default=str),
    }
    save_checkpoint(path, run.module.model, run.architecture, metadata)
    project.checkpoints.register(checkpoint_id, architecture=run.architecture, **registration)
    return checkpoint_id, path


def _require_finite_weights(project: TrainingProject, run: PreparedRun, run_id: str, started: float) -> None:
    import torch

    bad = [name for name, tensor in run.module.model.state_dict().items() if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        reason = f"NonFiniteWeights: {len(bad)} weight tensor(s) hold NaN or inf (first: {bad[0]}); lower the learning rate (--lr) or check the images"
        record_end(project, run_id, "failed", started, run.start.parent_id, reason=reason)
        raise TrainingFailed(f"training run {run_id} failed: {reason}; no checkpoint was registered")


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value  # NaN (class absent everywhere) -> None
