"""What the device offers: kind, usable memory, bf16 support and CPU cores (the device a name means is
`model.device`'s answer)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from ...model.device import torch_device
from .constants import DEFAULT_MEMORY_BYTES


@dataclass(frozen=True)
class DeviceInfo:
    """What planning needs to know about a device. Build one by hand to plan for another machine."""

    device: str  # torch device string: "cpu", "cuda:0", "mps"
    kind: Literal["cpu", "cuda", "mps"]
    memory_bytes: int  # usable memory (see `device_memory`)
    bf16_supported: bool = False
    cpu_cores: int = 1
    name: str = ""


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _available_ram() -> int:
    """Available system memory: MemAvailable from /proc/meminfo (Linux), else os.sysconf pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * page)
        except (ValueError, OSError):
            return int(os.sysconf("SC_PHYS_PAGES") * page // 2)  # assume half of physical is free
    except (AttributeError, ValueError, OSError):
        return DEFAULT_MEMORY_BYTES


def device_memory(device: Any) -> int:
    """Bytes of memory a training run may use on `device`.

    CUDA: the free memory `torch.cuda.mem_get_info` reports (what other processes left).
    MPS: `torch.mps.recommended_max_memory()` where available, capped by available RAM
    (unified memory). CPU: available RAM (/proc/meminfo MemAvailable on Linux, else
    os.sysconf available pages, else half of physical memory, else 8 GiB). No psutil.
    """
    import torch

    dev = torch_device(None if device is None else str(device))
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(
            dev.index if dev.index is not None else torch.cuda.current_device()
        )
        return int(free)
    ram = _available_ram()
    if dev.type == "mps":
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        if recommended is not None:
            try:
                return int(min(recommended(), ram))
            except RuntimeError:
                pass
    return int(ram)


def describe_device(device: Any = "auto") -> DeviceInfo:
    """The `DeviceInfo` of a real device ("auto", "cpu", "cuda", "cuda:N", "mps")."""
    import torch

    dev = torch_device(None if device is None else str(device))
    cores = cpu_cores()
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return DeviceInfo(
            device=f"cuda:{index}",
            kind="cuda",
            memory_bytes=device_memory(f"cuda:{index}"),
            bf16_supported=bool(torch.cuda.is_bf16_supported()),
            cpu_cores=cores,
            name=torch.cuda.get_device_name(index),
        )
    if dev.type == "mps":
        return DeviceInfo("mps", "mps", device_memory("mps"), False, cores, "Apple MPS")
    return DeviceInfo("cpu", "cpu", device_memory("cpu"), False, cores, "CPU")
