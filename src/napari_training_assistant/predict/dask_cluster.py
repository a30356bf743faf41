"""The Dask cluster a block-wise prediction runs on: one it starts and stops, or one it joins.

`scheduler`:
  * None / "local": a `LocalCluster` sized to the machine: one worker process per GPU (worker N uses
    GPU N), else `workers` CPU processes (default: one per 8 cores, at least 1), each with an equal share
    of the cores as torch threads (set where the model is loaded);
  * "in-process": one worker thread in this process (no start-up cost; tests, notebooks, napari's child);
  * an address ("tcp://host:8786", "host:8786"): a running cluster, e.g. `dask-jobqueue`'s SLURMCluster or
    `dask-cuda`'s LocalCUDACluster; it is left running.

A worker that dies is replaced by Dask and its block retried once (`allowed-failures`); a block that
raises is retried once (`retries=1`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..project.errors import DatasetError

IN_PROCESS = "in-process"
LOCAL = "local"
CORES_PER_CPU_WORKER = 8
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Cluster:
    client: Any
    workers: int
    threads: int | None  # torch threads per worker (CPU)
    dashboard: str | None
    description: str


def default_workers(gpus: int, cores: int) -> int:
    return gpus if gpus else max(1, cores // CORES_PER_CPU_WORKER)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def dask_cluster(scheduler: str | None, workers: int | None, *, gpus: int) -> Iterator[Cluster]:
    """A connected `distributed.Client` (closed afterwards, with the cluster it started)."""
    import dask
    from distributed import Client, LocalCluster

    scheduler = (scheduler or LOCAL).strip()
    cores = _cores()
    settings = {
        "distributed.scheduler.allowed-failures": 1,
        # Dask's default MALLOC_TRIM_THRESHOLD_ for workers makes glibc map and unmap torch's buffers on every
        # batch: a third slower (benchmarks/bench_predict_volume.py); and the nanny writes its variables into
        # this process's environment, where later children would inherit them: restored below
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    }
    saved = dict(os.environ)
    with dask.config.set(settings), _restored_environment(saved):
        if scheduler not in (LOCAL, IN_PROCESS):
            client = _connect(Client, scheduler)
            try:
                count = len(client.scheduler_info().get("workers", {}))
                yield Cluster(client, count, None, _dashboard(client), f"Dask cluster at {scheduler} ({count} workers)")
            finally:
                client.close()
            return
        if scheduler == IN_PROCESS:
            count, threads = 1, None
            cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=_dashboard_port())
        else:
            count = workers or default_workers(gpus, cores)
            threads = max(1, cores // count)
            cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=_dashboard_port())
        client = Client(cluster)
        try:
            kind = f"{count} GPU worker(s)" if gpus else f"{count} CPU worker(s) x {threads or cores} thread(s)"
            where = "in this process" if scheduler == IN_PROCESS else "local Dask cluster"
            yield Cluster(client, count, threads, _dashboard(client), f"{where}: {kind}")
        finally:
            client.close()
            cluster.close()


@contextlib.contextmanager
def _restored_environment(saved: dict[str, str]) -> Iterator[None]:
    """`os.environ` as it was before the cluster started, once it is closed."""
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


def _connect(client_type: Any, address: str) -> Any:
    try:
        return client_type(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise DatasetError(
            f"--scheduler {address}: cannot reach a Dask scheduler there ({type(exc).__name__}): start one "
            "(dask scheduler, SLURMCluster) or leave --scheduler unset for a local cluster"
        ) from exc


def _dashboard_port() -> str | None:
    """A free port for the dashboard when bokeh (which serves it) is installed; no dashboard otherwise."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    return ":0"


def _dashboard(client: Any) -> str | None:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    return getattr(client, "dashboard_link", None)
