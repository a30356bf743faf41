"""Is a training run still going? Heartbeats (pid, host, time) and the liveness rule that status, doctor,
resume and the dataset guard share.

A run record says `running` from its start until its process writes the end. A process killed with
`kill -9`, a power cut or a lost node never writes that end, so `running` alone proves nothing: the
run's process beats (rewrites its heartbeat) every `HEARTBEAT_EVERY_S`, and a run is alive only while
its process exists on its own host (same boot) and its last beat is younger than `STALE_AFTER_S`; on
another host only the age of the beat can tell.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from functools import cache

from .schemas import RunHeartbeat, TrainingRun

HEARTBEAT_EVERY_S = 30.0
STALE_AFTER_S = 300.0  # a beat older than this: the process is gone, frozen or on a lost node


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def this_process(now: datetime) -> RunHeartbeat:
    return RunHeartbeat(pid=os.getpid(), host=socket.gethostname(), boot_id=_boot_id(), updated_at=now)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def is_alive(run: TrainingRun, now: datetime) -> bool:
    """True while a `running` run's process is still there and beating."""
    beat = run.heartbeat
    if run.status != "running" or beat is None:
        return False
    if (now - beat.updated_at).total_seconds() > STALE_AFTER_S:
        return False
    same_machine = beat.host == socket.gethostname() and (not beat.boot_id or beat.boot_id == _boot_id())
    if beat.host == socket.gethostname() and not same_machine:
        return False  # the machine rebooted since the beat: that process is gone
    return _pid_exists(beat.pid) if same_machine else True


def effective_status(run: TrainingRun, now: datetime) -> str:
    """The record's status, except that a `running` run whose process is gone is `interrupted`."""
    if run.status == "running" and not is_alive(run, now):
        return "interrupted"
    return run.status


def describe_process(run: TrainingRun) -> str:
    beat = run.heartbeat
    return f"pid {beat.pid} on {beat.host}" if beat else "no heartbeat recorded"
