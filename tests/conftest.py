"""Shared test set-up: GPU-marked tests are skipped where no CUDA device is present."""

from __future__ import annotations

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------- training-engine fixtures
def _sample_pair(spatial_dims: str, output_mode: str, seed: int, shape):
    """(image, mask, mask_mode) from generated nuclei: binary, 3-class (0..2) or 2-channel multilabel."""
    import numpy as np

    from napari_training_assistant.data.synthetic_nuclei import make_nuclei

    plane = tuple(shape[-2:])
    image, labels = make_nuclei(plane, n_nuclei=4, radius_range=(4.0, 7.0), seed=seed)
    if spatial_dims == "3d":
        depth = shape[0]
        image = np.stack(
            [
                (image * (0.6 + 0.4 * np.sin(np.pi * (z + 1) / (depth + 1)))).astype(np.uint16)
                for z in range(depth)
            ]
        )
        labels = np.stack([labels] * depth)
    if output_mode == "multiclass":
        classes = np.where(labels > 0, (labels % 2) + 1, 0).astype(np.uint8)
        return image, classes, "multiclass"
    if output_mode == "multilabel":
        return image, [(labels > 0).astype(np.uint8), (labels % 2 == 1).astype(np.uint8)], "multilabel"
    return image, labels, "binary"


@pytest.fixture
def make_project(tmp_path):
    """make_project(name='proj', spatial_dims='2d', output_mode='binary', splits=(...)): a tiny_unet
    project (depth 2, base 8) with generated nuclei pairs, 48x48 (2D) or 16x32x32 (3D)."""
    from napari_training_assistant.project import TrainingProject

    def _make(
        name: str = "proj",
        *,
        spatial_dims: str = "2d",
        output_mode: str = "binary",
        num_classes: int = 2,
        splits=("train", "train", "val", "benchmark", "train"),
        shape=None,
        architecture: dict | None = None,
    ) -> TrainingProject:
        shape = shape or ((16, 32, 32) if spatial_dims == "3d" else (48, 48))
        arch = {"preset": "tiny_unet", **(architecture or {})}
        if output_mode == "multilabel":
            arch.setdefault("output_channels", 2)
        project = TrainingProject.create(
            tmp_path / name,
            name,
            spatial_dims=spatial_dims,
            output_mode=output_mode,
            num_classes=num_classes,
            architecture=arch,
        )
        for index, split in enumerate(splits):
            image, mask, mode = _sample_pair(spatial_dims, output_mode, index, shape)
            project.dataset.add(image, mask, mask_mode=mode, split=split)
        return project

    return _make


@pytest.fixture
def fast_options():
    """fast_options(**overrides): TrainOptions for a seconds-long CPU run (1 epoch, 2 steps of 2)."""

    def _options(**overrides):
        from napari_training_assistant.train import TrainOptions

        return TrainOptions(
            **({"epochs": 1, "samples_per_epoch": 4, "batch_size": 2, "device": "cpu"} | overrides)
        )

    return _options


# --------------------------------------------------------------------------------- SAM3 fixtures
@pytest.fixture(scope="session")
def tiny_sam3_folder(tmp_path_factory):
    """A tiny random-weight SAM3 model folder in the Hugging Face layout (config.json + model.safetensors)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tiny_sam3", Path(__file__).parent / "annotate" / "tiny_sam3.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_sam3_folder(tmp_path_factory.mktemp("tiny_sam3"))


@pytest.fixture
def kill_cli_training():
    """kill_cli_training(project_root, args, ready, after_s=0.0, within_s=180): `nta train PROJECT *args` in a
    child process, killed with SIGKILL `after_s` seconds after `ready()` first holds; returns its exit code."""
    import signal
    import subprocess
    import sys
    import time

    def _kill(project_root, args, ready, after_s: float = 0.0, within_s: float = 180.0) -> int:
        process = subprocess.Popen(
            [sys.executable, "-m", "napari_training_assistant.cli", "train", str(project_root), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + within_s
            while not ready():
                assert process.poll() is None, f"training ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
                assert time.monotonic() < deadline, f"not ready to be killed within {within_s:.0f} s"
                time.sleep(0.02)
            time.sleep(after_s)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()
        return process.returncode

    return _kill
