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
def unlabeled_images(tmp_path):
    """unlabeled_images(project, count): a folder of `count` TIFFs, the project's first image at random brightness."""

    def _write(project, count: int):
        import numpy as np
        import tifffile

        folder = tmp_path / "unlabeled"
        folder.mkdir()
        image, _ = project.dataset.load(project.dataset.pairs[0].pair_id)
        rng = np.random.default_rng(0)
        for index in range(count):
            tifffile.imwrite(folder / f"img_{index}.tif", (image * rng.uniform(0.5, 1.5)).astype(image.dtype))
        return folder

    return _write


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


@pytest.fixture
def volume_source():
    """volume_source(kind, image (y, x), folder) -> (source, predict options, the voxels it holds): `image` stored
    by the format's own writer (tifffile, zarr v2/v3, ome-zarr 0.4/0.5, tensorstore precomputed) or as dask /
    napari multiscale data."""
    import numpy as np
    import zarr

    def _write(kind, image, folder):
        """`image` (y, x) stored by the format's own writer: (source, options, the voxels the source holds there)."""
        import tifffile

        if kind == "tiff":
            tifffile.imwrite(folder / "a.tif", image)
            return str(folder / "a.tif"), {}, image
        if kind == "bigtiff":
            tifffile.imwrite(folder / "a.tif", image, bigtiff=True)  # contiguous: read memory-mapped
            return str(folder / "a.tif"), {}, image
        if kind == "tiled-tiff":
            tifffile.imwrite(folder / "a.tif", image, tile=(64, 64), compression="zlib")
            return str(folder / "a.tif"), {}, image
        if kind in ("zarr-v2", "zarr-v3"):
            array = zarr.create_array(str(folder / "a.zarr"), shape=image.shape, chunks=(50, 50), dtype=image.dtype, zarr_format=int(kind[-1]))
            array[...] = image
            return str(folder / "a.zarr"), {}, image
        if kind == "zarr-group-dataset":
            group = zarr.open_group(str(folder / "g.zarr"), mode="w")
            group.create_array("raw", shape=image.shape, chunks=(64, 64), dtype=image.dtype)[...] = image
            group.create_array("other", shape=(3,), dtype="uint8")
            return str(folder / "g.zarr"), {"dataset": "raw"}, image
        if kind.startswith("ome-zarr"):
            writer = pytest.importorskip("ome_zarr.writer")
            from ome_zarr.format import FormatV04, FormatV05

            fmt = FormatV04() if kind.startswith("ome-zarr-0.4") else FormatV05()
            group = zarr.open_group(str(folder / "o.zarr"), mode="w", zarr_format=fmt.zarr_format)
            writer.write_image(image, group, axes="yx", fmt=fmt, scale_factors=[2])
            level = 1 if kind.endswith("level1") else 0
            multiscales = group.attrs.get("multiscales") or group.attrs["ome"]["multiscales"]
            return str(folder / "o.zarr"), {"scale": level}, np.asarray(group[multiscales[0]["datasets"][level]["path"]][...])
        if kind == "precomputed":
            ts = pytest.importorskip("tensorstore")
            store = ts.open(
                {
                    "driver": "neuroglancer_precomputed",
                    "kvstore": {"driver": "file", "path": str(folder / "pre")},
                    "scale_metadata": {"resolution": [4, 4, 40], "size": [image.shape[1], image.shape[0], 1], "encoding": "raw", "chunk_size": [64, 64, 1]},
                    "multiscale_metadata": {"type": "image", "data_type": "uint16", "num_channels": 1},
                    "create": True,
                }
            ).result()
            store[:, :, 0, 0].write(image.T).result()  # stored x, y, z, c
            return str(folder / "pre"), {}, image
        if kind == "dask":
            import dask.array as da

            return da.from_array(image, chunks=(64, 64)), {}, image
        if kind == "napari-multiscale":
            return [image, image[::2, ::2]], {"scale": 1}, image[::2, ::2]
        raise AssertionError(kind)


    return _write
