"""The local Dask cluster leaves this process's environment as it was and keeps glibc's malloc defaults in
its workers (Dask's MALLOC_TRIM_THRESHOLD_ made prediction a third slower)."""

from __future__ import annotations

import os

from napari_training_assistant.predict.dask_cluster import dask_cluster


def test_local_workers_keep_malloc_defaults_and_the_environment_is_restored():
    before = dict(os.environ)
    with dask_cluster("local", 1, gpus=0) as cluster:
        seen = cluster.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert cluster.workers == 1 and cluster.threads >= 1
    assert list(seen.values()) == [None]
    assert dict(os.environ) == before
