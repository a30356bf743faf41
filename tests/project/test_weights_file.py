"""`inspect_weights`: shapes, dtypes and metadata of weights files, read without torch and without running them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from napari_training_assistant.project.errors import CheckpointError
from napari_training_assistant.project.weights_file import WeightsInfo, inspect_weights, strip_prefix

ARCH = {"name": "unet", "depth": 3, "base_channels": 8, "input_channels": 1}


def small_state() -> dict[str, torch.Tensor]:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    return model.state_dict()


def torch_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    loaded = torch.load(path, weights_only=True)
    state = loaded.get("state_dict", loaded)
    return {k: tuple(v.shape) for k, v in state.items()}


class _Command:
    """Unpickling this calls `func(arg)`: the classic hostile-pickle payload."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


def hostile_pickle(func, arg, protocol: int = 2) -> bytes:
    return pickle.dumps({"w": _Command(func, arg)}, protocol=protocol)


def torch_style_zip(path: Path, data_pkl: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return path


# ------------------------------------------------------------------------------------------ plain files


def test_state_dict_shapes_dtypes_and_hash(tmp_path: Path) -> None:
    state = small_state()
    state["half"] = torch.zeros(2, 3, dtype=torch.float16)
    state["bf16"] = torch.zeros(5, dtype=torch.bfloat16)
    state["flags"] = torch.zeros(3, dtype=torch.bool)
    state["u16"] = torch.zeros(4, dtype=torch.uint16)  # written via _rebuild_tensor_v3 + UntypedStorage
    state["view"] = torch.arange(24.0).reshape(4, 6)[:, ::2]  # non-contiguous view of a larger storage
    state["scalar"] = torch.tensor(3.0)
    path = tmp_path / "w.pt"
    torch.save(state, path)

    info = inspect_weights(path)

    assert isinstance(info, WeightsInfo)
    assert info.format == "pt"
    assert info.tensors == {k: tuple(v.shape) for k, v in state.items()}
    assert info.tensors == torch_shapes(path)
    assert info.dtypes == {k: str(v.dtype).removeprefix("torch.") for k, v in state.items()}
    assert info.dtypes["1.num_batches_tracked"] == "int64"
    assert info.architecture is None
    assert info.metadata == {}
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("protocol", [4, 5])
def test_newer_pickle_protocols(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "p.pt"
    torch.save(
        {"state_dict": small_state(), "architecture": ARCH, "tags": {"a", "b"}},
        path,
        pickle_protocol=protocol,
    )
    info = inspect_weights(path)  # torch.load(weights_only=True) itself rejects these protocols
    assert info.tensors == {k: tuple(v.shape) for k, v in small_state().items()}
    assert info.architecture == ARCH


def test_pth_suffix_and_parameters(tmp_path: Path) -> None:
    path = tmp_path / "w.PTH"
    torch.save({"p": nn.Parameter(torch.ones(2, 2)), "t": torch.ones(3)}, path)
    info = inspect_weights(str(path))
    assert info.tensors == {"p": (2, 2), "t": (3,)}


def test_our_checkpoint_with_architecture(tmp_path: Path) -> None:
    state = small_state()
    path = tmp_path / "unet_run_001.pt"
    checkpoint = {
        "state_dict": state,
        "architecture": ARCH,
        "epoch": 7,
        "metrics": {"dice": 0.81, "history": [0.5, 0.7]},
        "shape": (64, 64),
        "dtype": torch.float32,
        "device": torch.device("cpu"),
        "blob": b"\x00\xff",  # not JSON-like: dropped
    }
    torch.save(checkpoint, path)

    info = inspect_weights(path)

    assert info.architecture == ARCH
    assert info.tensors == {k: tuple(v.shape) for k, v in state.items()} == torch_shapes(path)
    assert info.metadata == {
        "epoch": 7,
        "metrics": {"dice": 0.81, "history": [0.5, 0.7]},
        "shape": [64, 64],
        "dtype": "float32",
        "device": "cpu",
    }
    json.dumps(info.metadata)


def test_architecture_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    torch.save({"state_dict": small_state(), "architecture": json.dumps(ARCH)}, path)
    assert inspect_weights(path).architecture == ARCH


@pytest.mark.parametrize("key", ["model", "model_state_dict", "state_dict"])
def test_third_party_wrappers(tmp_path: Path, key: str) -> None:
    state = {f"model.{k}": v for k, v in small_state().items()}
    path = tmp_path / "third.pth"
    optimizer = {"state": {0: {"step": torch.tensor(1.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    torch.save({key: state, "epoch": 3, "optimizer": optimizer, "pytorch-lightning_version": "2.4"}, path)

    info = inspect_weights(path)

    assert info.tensors == {k: tuple(v.shape) for k, v in state.items()}
    assert info.metadata["epoch"] == 3
    assert info.metadata["pytorch-lightning_version"] == "2.4"
    assert info.metadata["optimizer"] == {"param_groups": [{"lr": 0.1, "params": [0]}]}  # tensors pruned
    assert strip_prefix(info.tensors, "model.") == {k: tuple(v.shape) for k, v in small_state().items()}


def test_wrapper_wins_over_stray_top_level_tensors(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"model": small_state(), "step": torch.tensor(5), "best": torch.tensor(0.9)}, path)
    info = inspect_weights(path)
    assert set(info.tensors) == set(small_state())


def test_strip_prefix_drops_other_keys() -> None:
    assert strip_prefix({"model.a": 1, "loss.w": 2, "model.b.c": 3}, "model.") == {"a": 1, "b.c": 3}


def test_safetensors_with_architecture(tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in small_state().items()}
    state["half"] = torch.zeros(3, 2, dtype=torch.float16)
    path = tmp_path / "w.safetensors"
    save_file(state, str(path), metadata={"architecture": json.dumps(ARCH), "source": "test"})

    info = inspect_weights(path)

    assert info.format == "safetensors"
    assert info.architecture == ARCH
    assert info.metadata == {"source": "test"}
    assert info.tensors == {k: tuple(v.shape) for k, v in state.items()}
    assert info.dtypes == {k: str(v.dtype).removeprefix("torch.") for k, v in state.items()}
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_safetensors_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(2, 3)}, str(path))
    info = inspect_weights(path)
    assert (info.tensors, info.dtypes, info.architecture, info.metadata) == (
        {"a": (2, 3)},
        {"a": "float32"},
        None,
        {},
    )


# ------------------------------------------------------------------------------------------ hostile files


def test_hostile_payload_is_real(tmp_path: Path) -> None:
    """The payload used below does run under a plain unpickler, so its refusal means something."""
    marker = tmp_path / "pwned"
    pickle.loads(hostile_pickle(os.system, f"touch {marker}"))
    assert marker.exists()


@pytest.mark.parametrize("container", ["raw", "zip"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_os_system_payload_is_refused_and_not_run(tmp_path: Path, container: str, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = hostile_pickle(os.system, f"touch {marker}", protocol)
    path = tmp_path / "evil.pt"
    if container == "raw":
        path.write_bytes(payload)
    else:
        torch_style_zip(path, payload)

    with pytest.raises(CheckpointError, match=r"system") as caught:
        inspect_weights(path)

    assert "refusing" in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("container", ["raw", "zip"])
def test_eval_payload_is_refused_and_not_run(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    payload = hostile_pickle(eval, f"open({str(marker)!r}, 'w').close()")
    path = tmp_path / "evil.pth"
    if container == "raw":
        path.write_bytes(payload)
    else:
        torch_style_zip(path, payload)

    with pytest.raises(CheckpointError, match=r"builtins\.eval"):
        inspect_weights(path)
    assert not marker.exists()


def test_payload_inside_a_real_torch_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": small_state(), "extra": _Command(os.system, f"touch {marker}")}, path)
    with pytest.raises(CheckpointError, match=r"system"):
        inspect_weights(path)
    assert not marker.exists()


def test_unknown_class_is_refused(tmp_path: Path) -> None:
    path = torch_style_zip(tmp_path / "m.pt", pickle.dumps({"w": zipfile.ZipInfo("x")}, protocol=2))
    with pytest.raises(CheckpointError, match=r"zipfile\.ZipInfo"):
        inspect_weights(path)


def test_whole_model_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match=r"torch\.nn\.modules\.linear\.Linear.*only plain state dicts"):
        inspect_weights(path)


def test_metadata_bombs_and_cycles_are_dropped(tmp_path: Path) -> None:
    shared: list = [1]
    for _ in range(60):  # 2**60 leaves when expanded, a few hundred bytes pickled
        shared = [shared, shared]
    cycle: list = []
    cycle.append(cycle)
    deep: list = []
    for _ in range(300):
        deep = [deep]
    path = tmp_path / "bomb.pt"
    torch.save({"state_dict": small_state(), "bomb": shared, "cycle": cycle, "deep": deep, "ok": 1}, path)
    info = inspect_weights(path)
    assert info.metadata == {"ok": 1}


@pytest.mark.parametrize(
    "data_pkl",
    [
        b"\x80\x05]r" + struct.pack("<I", 0xFFFFFFF0) + b".",  # memo slot 4e9: a 64 GB memo table
        b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b".",  # a 1 TB bytearray
        b"\x80\x05\x8e" + struct.pack("<Q", 1 << 40) + b".",  # 1 TB of bytes
    ],
)
def test_huge_allocations_are_refused_up_front(tmp_path: Path, data_pkl: bytes) -> None:
    for path in (tmp_path / "raw.pt", torch_style_zip(tmp_path / "zip.pt", data_pkl)):
        if path.name == "raw.pt":
            path.write_bytes(data_pkl)
        with pytest.raises(CheckpointError, match=r"corrupt"):
            inspect_weights(path)


# ------------------------------------------------------------------------------------------ broken files


def test_legacy_non_zip_file(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save(small_state(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(
        CheckpointError, match=r"legacy \(non-zip\) torch file.*re-save it with torch >= 1\.6"
    ):
        inspect_weights(path)


def test_plain_pickle_is_treated_as_legacy(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": [1, 2]}))
    with pytest.raises(CheckpointError, match=r"legacy \(non-zip\)"):
        inspect_weights(path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save(small_state(), path)
    else:
        save_file({"a": torch.ones(64, 64)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"corrupt"):
        inspect_weights(path)


def test_storage_too_short_for_its_shape(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"a": torch.ones(4, 4)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / "short.pt"
    with zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item.filename, data[:8] if "/data/" in item.filename else data)
    with pytest.raises(CheckpointError, match=r"corrupt.*shorter than its shape"):
        inspect_weights(path)


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match=r"neither a torch zip archive nor a pickle"):
        inspect_weights(garbage)
    empty = tmp_path / "e.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty"):
        inspect_weights(empty)
    bad_header = tmp_path / "b.safetensors"
    bad_header.write_bytes((5).to_bytes(8, "little") + b"{nope" + b"\x00" * 10)
    with pytest.raises(CheckpointError, match=r"not valid JSON"):
        inspect_weights(bad_header)


def handmade_safetensors(path: Path, header: dict, data_bytes: int) -> Path:
    """A .safetensors file with a hand-written header and `data_bytes` zero bytes of data."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\x00" * data_bytes)
    return path


F32x2 = {"dtype": "F32", "shape": [2]}


@pytest.mark.parametrize(
    ("header", "data_bytes", "message"),
    [
        ({"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, 8, "tensor 'a' has dtype 'Q7', which safetensors does not define"),
        ({"a": {**F32x2, "data_offsets": [0, 8]}, "b": {**F32x2, "data_offsets": [4, 12]}}, 12, "tensors 'a' and 'b' overlap"),
        ({"a": {**F32x2, "data_offsets": [0, 8]}, "b": {**F32x2, "data_offsets": [0, 8]}}, 8, "tensors 'a' and 'b' overlap"),
        ({"a": {**F32x2, "data_offsets": [0, 8]}, "b": {**F32x2, "data_offsets": [12, 20]}}, 20, "4 byte(s) before tensor 'b' belong to no tensor"),
        ({"a": {**F32x2, "data_offsets": [4, 12]}}, 12, "4 byte(s) before tensor 'a' belong to no tensor"),
        ({"a": {**F32x2, "data_offsets": [0, 8]}}, 12, "4 byte(s) after the last tensor belong to no tensor"),
        ({"a": {**F32x2, "data_offsets": [0, 8]}}, 4, "tensor 'a' lies outside the file"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8, "tensor 'a' has 8 bytes, not what its shape and dtype need"),
        ({"__metadata__": {"n": 1}, "a": {**F32x2, "data_offsets": [0, 8]}}, 8, "safetensors refuses it (Error while deserializing header"),
        ({"x" * 5000: {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, 8, "xxx... has dtype 'Q7'"),  # a long name is cut
    ],
)
def test_safetensors_that_safetensors_refuses_are_refused(tmp_path: Path, header: dict, data_bytes: int, message: str) -> None:
    """Each of these was accepted and copied into the project before; the library itself refuses them all."""
    from safetensors import SafetensorError, safe_open

    path = handmade_safetensors(tmp_path / "w.safetensors", header, data_bytes)
    with pytest.raises(SafetensorError):
        safe_open(str(path), framework="numpy")
    with pytest.raises(CheckpointError) as info:
        inspect_weights(path)
    text = str(info.value)
    assert text.startswith(f"corrupt weights file {path}: ") and message in text, text
    assert "\n" not in text and len(text) < 500


def test_safetensors_layouts_the_library_accepts_are_accepted(tmp_path: Path) -> None:
    header = {
        "b": {**F32x2, "data_offsets": [8, 16]},  # listed out of order: offsets decide
        "a": {**F32x2, "data_offsets": [0, 8]},
        "empty": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]},
        "f4": {"dtype": "F4", "shape": [4], "data_offsets": [16, 18]},
        "__metadata__": {"note": "text"},
    }
    info = inspect_weights(handmade_safetensors(tmp_path / "ok.safetensors", header, 18))
    assert info.tensors == {"b": (2,), "a": (2,), "empty": (0,), "f4": (4,)}
    assert info.dtypes["f4"] == "float4_e2m1fn" and info.metadata == {"note": "text"}


def test_zip_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"not a PyTorch checkpoint"):
        inspect_weights(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    with pytest.raises(CheckpointError, match=r"TorchScript"):
        inspect_weights(path)


def test_no_tensors(tmp_path: Path) -> None:
    path = tmp_path / "n.pt"
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match=r"no state dict found"):
        inspect_weights(path)


def test_wrong_extension_and_missing_file(tmp_path: Path) -> None:
    other = tmp_path / "w.ckpt"
    torch.save(small_state(), other)
    with pytest.raises(CheckpointError, match=r"\.pt, \.pth, \.safetensors"):
        inspect_weights(other)
    with pytest.raises(CheckpointError, match=r"not found"):
        inspect_weights(tmp_path / "missing.pt")
    folder = tmp_path / "dir.pt"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"folder"):
        inspect_weights(folder)


# ------------------------------------------------------------------------------------------ no torch needed


def test_inspect_runs_without_torch(tmp_path: Path) -> None:
    pt, st = tmp_path / "w.pt", tmp_path / "w.safetensors"
    torch.save({"state_dict": small_state(), "architecture": ARCH}, pt)
    save_file({"a": torch.ones(2)}, str(st))
    script = (
        "import sys\n"
        "sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
        "from napari_training_assistant.project.weights_file import inspect_weights\n"
        f"a = inspect_weights({str(pt)!r}); b = inspect_weights({str(st)!r})\n"
        "assert a.architecture['depth'] == 3 and b.tensors == {'a': (2,)}\n"
        "assert sys.modules['torch'] is None\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
