"""Smoke test of benchmarks/bench_predict_volume.py: its generated volumes and its memory-measuring child
process, on a tiny volume (the benchmark itself takes minutes)."""

from __future__ import annotations

import importlib.util
import resource
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_predict_volume.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_predict_volume", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_volume_is_reproducible_and_written_strip_by_strip(bench, tmp_path):
    import zarr

    shape = (bench.STRIP_ROWS + 100, 300)  # two strips, the last one partial
    first = bench.write_volume(tmp_path / "a.zarr", shape, dtype="float32")
    bench.write_volume(tmp_path / "b.zarr", shape, dtype="float32")
    a = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...]
    b = zarr.open_array(str(tmp_path / "b.zarr"), mode="r")[...]
    assert first == {
        "shape": list(shape),
        "dtype": "float32",
        "voxels": a.size,
        "bytes": a.nbytes,
        "generated_s": first["generated_s"],
    }
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 150 and a.max() > 600  # noise around 200 plus blobs
    np.testing.assert_array_equal(
        a[: bench.STRIP_ROWS], bench.blob_strip(bench.STRIP_ROWS, 300, bench.SEED, 0, "float32")
    )


@pytest.mark.slow
def test_memory_child_predicts_and_reports_its_peaks(bench, tmp_path):
    checkpoint = tmp_path / "net.pt"
    bench.write_checkpoint(checkpoint, bench.MEMORY_ARCH)
    source = tmp_path / "volume.zarr"
    bench.write_volume(source, (256, 512))
    spec = {
        "kind": "predict",
        "checkpoint": str(checkpoint),
        "source": str(source),
        "target": str(tmp_path / "out.zarr"),
        "block": 256,
        "tile": 128,
        "halo": 16,
    }
    report = bench.run_child(spec, (resource.RLIMIT_DATA, 4 << 30))
    assert report["status"] == "completed", report
    assert report["blocks"] == 2
    assert 0 < report["rss_after_imports_mib"] <= report["peak_rss_mib"]
    assert report["peak_rss_setup_mib"] is not None and report["peak_rss_blocks_mib"] is not None
    control = bench.run_child({"kind": "load", "source": str(source)}, None)
    assert control["held_whole"] is True and control["bytes"] == 256 * 512 * 2
