"""The one device resolver (`model.device`): what a device name means on this machine."""

from __future__ import annotations

import pytest
import torch

from napari_training_assistant.model import device as devices
from napari_training_assistant.project.user_input import InputError


def _machine(monkeypatch, cuda: int = 0, mps: bool = False) -> None:
    monkeypatch.setattr(devices, "cuda_available", lambda: cuda > 0)
    monkeypatch.setattr(devices, "mps_available", lambda: mps)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _machine(monkeypatch)
    assert devices.resolve_device("auto") == ("cpu", None) and devices.resolve_device(None) == ("cpu", None)
    _machine(monkeypatch, mps=True)
    assert devices.resolve_device("auto") == ("mps", None)
    _machine(monkeypatch, cuda=2, mps=True)
    assert devices.resolve_device("auto") == ("cuda", None)


def test_explicit_devices(monkeypatch):
    _machine(monkeypatch, cuda=2)
    assert devices.resolve_device("cuda:1") == ("cuda", [1])
    assert devices.resolve_device("GPU") == ("cuda", None)
    assert devices.resolve_device("cpu") == ("cpu", None)
    assert devices.torch_device("cuda:1") == torch.device("cuda:1")
    assert devices.torch_device("cuda") == torch.device("cuda")


def test_a_device_the_machine_lacks_is_refused_naming_the_field(monkeypatch):
    _machine(monkeypatch, cuda=1)
    with pytest.raises(InputError, match="only 1 CUDA device"):
        devices.resolve_device("cuda:3")
    with pytest.raises(InputError, match="MPS is not available"):
        devices.resolve_device("mps")
    with pytest.raises(InputError, match="unsupported device 'meta'"):
        devices.resolve_device("meta")
    _machine(monkeypatch)
    with pytest.raises(InputError, match="no CUDA GPU") as info:
        devices.resolve_device("cuda")
    assert info.value.render({"device": "--device"}).startswith("--device 'cuda' asked for")


def test_cpu_here_is_the_cpu():
    assert devices.torch_device("cpu") == torch.device("cpu")
