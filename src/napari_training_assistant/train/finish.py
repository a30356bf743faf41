"""After `fit`: save and register the checkpoint, benchmark it, draw curves, record the run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..model import save_checkpoint
from ..project import TrainingProject
from .curves import write_curves_off_thread
from .run import TrainResult, _record_end

if TYPE_CHECKING:
    import lightning as L

    from .plan import PreparedRun


def final_metrics(run: PreparedRun, trainer: L.Trainer) -> dict[str, Any]:
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    scores = getattr(run.module, "last_val_scores", None) or {}
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
    names = getattr(run.module, "channel_names", None)
    if names:  # point windows: per output channel (pre, post)
        constant = scores.get("constant_dice_per_class") or [None] * len(names)
        metrics["per_channel"] = {
            name: {"dice": dice, "iou": iou, "constant_predictor_dice": _float(base)}
            for name, dice, iou, base in zip(names, metrics["dice_per_class"], metrics["iou_per_class"], constant, strict=False)
        }
    if run.val_note:
        metrics["validation"] = run.val_note
    return metrics


def finish_run(project: TrainingProject, run: PreparedRun, trainer: L.Trainer, run_id: str, status: str, started: float, reason: str = "") -> TrainResult:
    metrics = final_metrics(run, trainer)
    run_dir = project.layout.run_dir(run_id)
    checkpoint_id = checkpoint_path = None
    benchmark = None
    timings: dict[str, float] = {"fit_s": round(time.perf_counter() - started, 2)}
    if trainer.global_step > 0:
        checkpoint_id, path = project.checkpoints.reserve()
        metadata = {
            "checkpoint_id": checkpoint_id,
            "parent_id": run.start.parent_id,
            "run_id": run_id,
            "metrics": metrics,
            **run.checkpoint_metadata(),
        }
        save_checkpoint(path, run.module.model, run.architecture, metadata)
        samples = trainer.global_step * run.batch_size * trainer.world_size
        project.checkpoints.register(
            checkpoint_id,
            architecture=run.architecture,
            status=status,
            parent_id=run.start.parent_id,
            patch_count=samples,
            metrics=metrics,
            **run.registration_fields(),
            starting_weights=run.start.snapshot,
            architecture_summary=run.extra["architecture_summary"],
            run_id=run_id,
            settings=run.settings_record(),
        )
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
    _record_end(project, run_id, status, started, run, reason=reason, checkpoint_id=checkpoint_id, timings=timings)
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
        decisions=[d.model_dump(mode="json") for d in run.decisions],
        points=run.point_counts() if hasattr(run, "point_counts") else None,
    )


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value  # NaN (class absent everywhere) -> None
