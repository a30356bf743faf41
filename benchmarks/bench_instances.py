"""Instance accuracy on generated touching nuclei: an instance model (foreground + boundary, seeded watershed)
against the connected components of a binary model, each trained on the same pairs for the same epochs and
scored on freshly generated images (other seeds than training).

    python benchmarks/bench_instances.py [--epochs 25] [--lr 0.003] [--pairs 10] [--test-seeds 7000 7001 ...]
                                         [--variant] [--real] [--modes instance binary] [--keep DIR]

Prints one JSON object: per mode the training time, validation and benchmark figures, and object matching
(accuracy, F1, PQ at IoU 0.5 and mean 0.5:0.95) over the unseen images; instance models with the post-processing
tuned on their validation pairs (what every prediction uses) and with the untuned defaults.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_training_assistant.data.synthetic_nuclei import make_nuclei
from napari_training_assistant.demo import DEMO_EPOCHS, DEMO_LR, TOUCHING_NUCLEI
from napari_training_assistant.predict.instances import InstanceSettings
from napari_training_assistant.predict.project_prediction import predict_array
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.image_io import read_tiff
from napari_training_assistant.train import TrainOptions, train_project
from napari_training_assistant.train.instance_metrics import connected_components, match_dataset, summary

# a generator setting never trained on: denser, more of the nuclei touching, a wider range of sizes
DEFAULTS = InstanceSettings().resolved(2)  # every field given: the checkpoint's tuned post-processing is not used
VARIANT = {"n_nuclei": 36, "radius_range": (5.0, 15.0), "touching": 0.7, "brightness_range": (0.25, 1.0)}


def _train(root: Path, mode: str, pairs: int, epochs: int, seed: int, lr: float | None) -> tuple[TrainingProject, dict]:
    project = TrainingProject.create(root / mode, f"bench-{mode}", class_names=["background", "nucleus"], output_mode=mode)
    for i in range(pairs):
        image, labels = make_nuclei(seed=seed + i, **TOUCHING_NUCLEI)
        project.dataset.add(image, labels, source="imported")
    started = time.perf_counter()
    result = train_project(project, TrainOptions(epochs=epochs, learning_rate=lr))
    return project, {"train_s": round(time.perf_counter() - started, 1), "val": result.metrics, "benchmark": result.benchmark}


def _objects(project: TrainingProject, mode: str, seeds: list[int], generator: dict, instance: InstanceSettings | None = None) -> dict:
    found = []
    for seed in seeds:
        image, truth = make_nuclei(seed=seed, **generator)
        record = predict_array(project, image, source=f"seed {seed}", instance=instance)
        labels = read_tiff(project.layout.absolute(record.path))
        found.append((truth, labels if mode == "instance" else connected_components(labels)))
    scores = summary(match_dataset(found))
    return {k: round(v, 4) for k, v in scores.items()}


REAL = Path(__file__).parent / "data" / "dsb2018_nuclei_2d"
QUADRANTS = [(slice(0, 256), slice(0, 256)), (slice(0, 256), slice(256, 512)), (slice(256, 512), slice(0, 256)), (slice(256, 512), slice(256, 512))]


def _real(root: Path, models: dict[str, TrainingProject], epochs: int, lr: float) -> dict:
    """The real image (see benchmarks/data/dsb2018_nuclei_2d): each generated-data model on the whole image, and
    an instance model trained on three of its quadrants (2 train, 1 val) scored on the fourth."""
    import tifffile

    image, truth = tifffile.imread(REAL / "image.tif"), tifffile.imread(REAL / "labels.tif")
    out: dict = {"objects": int(np.count_nonzero(np.unique(truth)))}
    for mode, project in models.items():
        for suffix, instance in (("", None), ("_default_postprocessing", DEFAULTS)) if mode == "instance" else (("", None),):
            labels = read_tiff(project.layout.absolute(predict_array(project, image, source="dsb2018", instance=instance).path))
            found = labels if mode == "instance" else connected_components(labels)
            out[f"{mode}_trained_on_generated{suffix}"] = {k: round(v, 4) for k, v in summary(match_dataset([(truth, found)])).items()}
    project = TrainingProject.create(root / "real", "bench-real", class_names=["background", "nucleus"], output_mode="instance")
    for piece, split in zip(QUADRANTS[:3], ("train", "train", "val"), strict=True):
        project.dataset.add(image[piece], truth[piece], split=split, source="imported")
    started = time.perf_counter()
    tuning = train_project(project, TrainOptions(epochs=epochs, learning_rate=lr)).metrics.get("instance_postprocessing")
    train_s = round(time.perf_counter() - started, 1)
    held_out = QUADRANTS[3]

    def scores(instance: InstanceSettings | None) -> dict:
        record = predict_array(project, image[held_out], source="dsb2018 quadrant 4", instance=instance)
        labels = read_tiff(project.layout.absolute(record.path))
        return {k: round(v, 4) for k, v in summary(match_dataset([(truth[held_out], labels)])).items()}

    out["instance_trained_on_3_quadrants"] = {
        "train_s": train_s,  # with the tuning of the post-processing on the val quadrant
        "held_out_objects": int(np.count_nonzero(np.unique(truth[held_out]))),
        "postprocessing_tuned_on_val_quadrant": tuning,
        **scores(None),  # the checkpoint's tuned post-processing, as every prediction uses it
        "with_default_postprocessing": scores(DEFAULTS),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--train-seed", type=int, default=100)
    parser.add_argument("--test-seeds", type=int, nargs="+", default=list(range(7000, 7008)))
    parser.add_argument("--lr", type=float, default=DEMO_LR, help="learning rate (default: the demo's)")
    parser.add_argument("--variant", action="store_true", help="also score images of another generator setting (denser, more touching, wider sizes)")
    parser.add_argument("--real", action="store_true", help="also score the bundled real image (benchmarks/data/dsb2018_nuclei_2d)")
    parser.add_argument("--modes", nargs="+", default=["instance", "binary"])
    parser.add_argument("--keep", type=Path, help="keep the projects in this folder")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-instances-"))
    out: dict = {"pairs": args.pairs, "epochs": args.epochs, "test_seeds": args.test_seeds, "generator": TOUCHING_NUCLEI}
    out["unseen_objects"] = int(np.sum([make_nuclei(seed=s, **TOUCHING_NUCLEI)[1].max() for s in args.test_seeds]))
    if args.variant:
        out["variant"] = VARIANT
        out["variant_objects"] = int(np.sum([make_nuclei(seed=s, **VARIANT)[1].max() for s in args.test_seeds]))
    models: dict[str, TrainingProject] = {}
    try:
        for mode in args.modes:
            project, trained = _train(root, mode, args.pairs, args.epochs, args.train_seed, args.lr)
            trained["unseen"] = _objects(project, mode, args.test_seeds, TOUCHING_NUCLEI)
            if mode == "instance":  # the same model with the untuned defaults
                trained["unseen_default_postprocessing"] = _objects(project, mode, args.test_seeds, TOUCHING_NUCLEI, DEFAULTS)
            if args.variant:
                trained["unseen_variant"] = _objects(project, mode, args.test_seeds, VARIANT)
                if mode == "instance":
                    trained["unseen_variant_default_postprocessing"] = _objects(project, mode, args.test_seeds, VARIANT, DEFAULTS)
            out[mode] = trained
            models[mode] = project
        if args.real:
            out["real"] = _real(root, models, args.epochs, args.lr)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
