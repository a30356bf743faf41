"""Two OS processes writing to one project at the same time never lose or mix up each other's work."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.doctor import run_doctor
from napari_training_assistant.project.image_io import array_sha256, read_tiff

pytestmark = pytest.mark.slow

ADD_PAIRS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from napari_training_assistant.project import TrainingProject

    root, go, worker, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    project = TrainingProject.open(root)
    rng = np.random.default_rng(worker)
    (root.parent / f"ready_{worker}").touch()
    while not go.exists():
        time.sleep(0.005)
    for i in range(count):
        image = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        mask = (rng.random((16, 16)) > 0.5).astype(np.uint8)
        project.dataset.add(image, mask, image_layer=f"w{worker}", mask_layer=f"w{worker}_{i}")
    """
)

APPEND_BENCHMARKS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from napari_training_assistant.project import TrainingProject

    root, go, worker, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    project = TrainingProject.open(root)
    (root.parent / f"ready_{worker}").touch()
    while not go.exists():
        time.sleep(0.005)
    for i in range(count):
        project.history.append_benchmark(
            {"checkpoint_id": f"w{worker}_{i:03d}", "n_images": i, "dice": 0.5, "dice_per_class": [0.5, i]}
        )
    """
)

RESERVE_CHECKPOINTS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from napari_training_assistant.project import TrainingProject

    root, go, worker, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    project = TrainingProject.open(root)
    (root.parent / f"ready_{worker}").touch()
    while not go.exists():
        time.sleep(0.005)
    arch = project.architecture.model_dump(mode="json")
    for i in range(count):
        checkpoint_id, path = project.checkpoints.reserve()
        path.write_bytes(f"{worker}-{i}".encode())
        project.checkpoints.register(checkpoint_id, architecture=arch, run_id=f"w{worker}_{i}")
    """
)


def _run_together(script: str, root, count: int, workers: int = 2, timeout: float = 120) -> None:
    go = root.parent / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(go), str(w), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    try:
        deadline = time.monotonic() + timeout
        while not all((root.parent / f"ready_{w}").exists() for w in range(workers)):
            if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        go.touch()  # both start at the same moment
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, f"worker failed:\n{out}\n{err}"


def test_two_processes_adding_pairs_at_once(tmp_path):
    project = TrainingProject.create(tmp_path / "shared")
    _run_together(ADD_PAIRS, project.root, count=100)

    manifest = TrainingProject.open(project.root).manifest  # validates the whole manifest
    ids = [p.pair_id for p in manifest.pairs]
    assert len(ids) == 200
    assert len(set(ids)) == 200
    assert sorted(ids) == [f"pair_{i:04d}" for i in range(1, 201)]
    assert manifest.next_pair_number == 201
    for worker in (0, 1):
        # each worker's pairs are all there, in the order it added them
        layers = [p.mask_layer for p in manifest.pairs if p.image_layer == f"w{worker}"]
        assert layers == [f"w{worker}_{i}" for i in range(100)]
    for pair in manifest.pairs:
        image_path, mask_path = project.root / pair.image_path, project.root / pair.mask_path
        assert image_path.is_file() and mask_path.is_file()
        assert array_sha256(read_tiff(mask_path)) == pair.mask_sha256
    assert len(list(project.layout.images_dir.iterdir())) == 200
    assert len(list(project.layout.masks_dir.iterdir())) == 200
    # the split bookkeeping stayed consistent under contention: one in five is benchmark
    assert project.dataset.split_counts()["benchmark"] == 40
    report = run_doctor(project.root, repair=False)
    assert report.findings == [], [f.line() for f in report.findings]


def test_two_processes_appending_benchmark_rows_at_once(tmp_path):
    project = TrainingProject.create(tmp_path / "shared")
    _run_together(APPEND_BENCHMARKS, project.root, count=20)

    rows = project.history.benchmarks()
    assert len(rows) == 40
    ids = [r["checkpoint_id"] for r in rows]
    assert len(set(ids)) == 40
    for worker in (0, 1):
        assert [i for i in ids if i.startswith(f"w{worker}_")] == [f"w{worker}_{i:03d}" for i in range(20)]
    assert all(r["dice_per_class"][0] == 0.5 for r in rows)
    lines = project.layout.benchmark_history.read_text().splitlines()
    assert len(lines) == 41
    assert lines[0].startswith("checkpoint_id,")
    assert list(project.layout.history_dir.glob(".*.tmp")) == []


def test_two_processes_reserving_and_registering_checkpoints_at_once(tmp_path):
    project = TrainingProject.create(tmp_path / "shared")
    _run_together(RESERVE_CHECKPOINTS, project.root, count=15)

    records = project.checkpoints.records
    assert sorted(r.checkpoint_id for r in records) == [f"unet_run_{i:03d}" for i in range(1, 31)]
    assert sorted(r.run_id for r in records) == sorted(f"w{w}_{i}" for w in (0, 1) for i in range(15))
    for record in records:
        worker, i = record.run_id[1:].split("_")
        assert project.checkpoints.path_of(record.checkpoint_id).read_bytes() == f"{worker}-{i}".encode()
    assert project.checkpoints.latest_file_matches()
    assert run_doctor(project.root, repair=False).findings == []
