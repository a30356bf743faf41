"""Importing pretrained weights into a project, and the self-describing checkpoint file (checkpoint_io)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from datetime import datetime
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from napari_training_assistant.model import (
    build_model,
    checkpoint_io,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from napari_training_assistant.model.weights_import import import_weights
from napari_training_assistant.project import CheckpointError, TrainingProject
from napari_training_assistant.project.schemas.architecture import default_architecture

TINY = {"preset": "tiny_unet"}  # depth 2, base 8: small and fast


@pytest.fixture
def project(tmp_path: Path) -> TrainingProject:
    return TrainingProject.create(tmp_path / "proj", name="weights", architecture=TINY)


def _state(arch) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model(arch).state_dict()


def _registry_bytes(project: TrainingProject) -> bytes:
    return project.layout.model_registry.read_bytes()


def _imported_files(project: TrainingProject) -> list[str]:
    """The weights files copied into the project (each also gets a `.record.json` of its registry entry)."""
    folder = project.layout.imported_dir
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".record.json")) if folder.exists() else []


class Evil:
    def __init__(self, call, marker: Path):
        self.call, self.marker = call, marker

    def __reduce__(self):
        if self.call is os.system:
            return (os.system, (f"touch {self.marker}",))
        return (self.call, (f"open({str(self.marker)!r}, 'w').close()",))


# --------------------------------------------------------------------------------------------- import_weights


def test_import_state_dict_records_and_copies(project, tmp_path):
    state = _state(project.architecture)
    source = tmp_path / "my weights (1).pt"
    torch.save(state, source)
    before = datetime.now().astimezone()

    record = import_weights(project, source)

    raw = json.loads(project.layout.model_registry.read_text())
    [entry] = raw["models"]
    assert raw["next_number"] == 2
    assert entry["model_id"] == record.model_id == "imported_001"
    assert entry["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert entry["source_filename"] == "my weights (1).pt"
    assert entry["name"] == "my weights (1)"
    assert entry["format"] == "pt"
    assert entry["architecture"] == project.architecture.model_dump(mode="json")
    assert entry["tensor_count"] == len(state)
    assert entry["key_prefix_stripped"] == ""
    imported_at = datetime.fromisoformat(entry["imported_at"])
    assert imported_at.tzinfo is not None and imported_at >= before.replace(microsecond=0)

    copied = project.layout.absolute(entry["path"])
    assert entry["path"].startswith("models/imported/")
    assert copied.parent.resolve() == project.layout.imported_dir.resolve()
    assert re.fullmatch(r"[A-Za-z0-9._-]+", copied.name), copied.name
    assert copied.name == "imported_001_my_weights_1.pt"
    assert copied.read_bytes() == source.read_bytes()
    assert project.imported_models.path_of("imported_001") == copied
    assert _imported_files(project) == [copied.name]

    loaded, arch, _ = read_checkpoint(copied)
    assert arch is None  # a plain state dict: the registry holds its architecture
    model = build_model(entry["architecture"])
    model.load_state_dict(loaded)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        (" .hidden (copy).pt", "imported_001_hidden_copy.pt"),
        ("a" * 200 + ".pt", "imported_001_" + "a" * 80 + ".pt"),
        ("wéights; rm -rf ~.pth", "imported_001_w_ights_rm_-rf.pt"),
        ("...pth", "imported_001_weights.pt"),
    ],
)
def test_import_sanitises_hostile_names(project, tmp_path, filename, expected):
    source = tmp_path / "src" / Path(filename).name
    source.parent.mkdir()
    torch.save(_state(project.architecture), source)
    record = import_weights(project, source)
    copied = project.layout.absolute(record.path)
    assert copied.name == expected
    assert copied.parent.resolve() == project.layout.imported_dir.resolve()
    assert record.source_filename == source.name


def test_import_safetensors_uses_the_stored_architecture(project, tmp_path):
    other = default_architecture("2d", "binary", 2, depth=1, base_channels=4, preset="custom", normalization="none")
    assert other.model_dump() != project.architecture.model_dump()
    state = _state(other)
    source = tmp_path / "pretrained.safetensors"
    save_file(state, str(source), metadata={"architecture": other.model_dump_json(), "trained_on": "nuclei"})

    record = import_weights(project, source)

    assert record.format == "safetensors"
    assert record.architecture == other.model_dump(mode="json")
    assert record.tensor_count == len(state)
    copied = project.layout.absolute(record.path)
    assert copied.suffix == ".safetensors" and copied.read_bytes() == source.read_bytes()
    loaded, arch, meta = read_checkpoint(copied)
    assert arch == other.model_dump(mode="json") and meta == {"trained_on": "nuclei"}
    assert set(loaded) == set(state)


def test_safetensors_without_architecture_must_fit_the_project(project, tmp_path):
    other = default_architecture("2d", "binary", 2, depth=1, base_channels=4, preset="custom")
    source = tmp_path / "bare.safetensors"
    save_file(_state(other), str(source))
    before = _registry_bytes(project)
    with pytest.raises(CheckpointError, match="does not fit the project architecture"):
        import_weights(project, source)
    assert _registry_bytes(project) == before and _imported_files(project) == []


def _rewrite_safetensors_header(path: Path, change) -> None:
    """Apply `change(header)` to the JSON header of a .safetensors file, keeping its data bytes."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    change(header)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length :])


def _overlap_two_same_sized(header: dict) -> None:
    tensors = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])
    first, second = next(
        (a, b) for a in tensors for b in tensors if a != b and header[a]["shape"] == header[b]["shape"] and header[a]["dtype"] == header[b]["dtype"]
    )
    header[second]["data_offsets"] = list(header[first]["data_offsets"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h[next(k for k in h if k != "__metadata__")].update(dtype="Q7"), "which safetensors does not define"),
        (_overlap_two_same_sized, "overlap in the data section"),
    ],
)
def test_safetensors_refused_by_the_library_are_never_copied(project, tmp_path, change, message):
    source = tmp_path / "fits.safetensors"
    save_file(_state(project.architecture.model_dump()), str(source))
    _rewrite_safetensors_header(source, change)
    before = _registry_bytes(project)
    with pytest.raises(CheckpointError, match=message):
        import_weights(project, source)
    assert _registry_bytes(project) == before and _imported_files(project) == []


def test_import_self_describing_checkpoint(project, tmp_path):
    other = default_architecture("2d", "binary", 2, depth=1, base_channels=4, preset="custom")
    path = tmp_path / "from_another_project.pt"
    save_checkpoint(path, build_model(other), other.model_dump(mode="json"), {"epoch": 4})
    record = import_weights(project, path)
    assert record.architecture == other.model_dump(mode="json")


@pytest.mark.parametrize("prefix", ["module.", "model."])
def test_wrapper_prefix_is_accepted_and_recorded(project, tmp_path, prefix):
    state = {f"{prefix}{k}": v for k, v in _state(project.architecture).items()}
    source = tmp_path / "ddp.pth"
    torch.save({"model_state_dict": state, "epoch": 7}, source)
    record = import_weights(project, source)
    assert record.key_prefix_stripped == prefix
    assert json.loads(project.layout.model_registry.read_text())["models"][0]["key_prefix_stripped"] == prefix
    assert record.tensor_count == len(state)


def test_data_parallel_state_dict(project, tmp_path):
    wrapped = torch.nn.DataParallel(build_model(project.architecture))
    source = tmp_path / "dp.pt"
    torch.save(wrapped.state_dict(), source)
    assert all(k.startswith("module.") for k in wrapped.state_dict())
    assert import_weights(project, source).key_prefix_stripped == "module."


def test_partial_prefix_is_not_stripped(project, tmp_path):
    state = dict(_state(project.architecture))
    first = next(iter(state))
    mixed = {("module." + k if k != first else k): v for k, v in state.items()}
    source = tmp_path / "mixed.pt"
    torch.save(mixed, source)
    with pytest.raises(CheckpointError, match="unexpected key"):
        import_weights(project, source)


@pytest.mark.parametrize(("depth", "problem", "key"), [(1, "missing key(s)", "encoder.1."), (3, "unexpected key(s)", "encoder.2.")])
def test_other_depth_is_refused_naming_keys(project, tmp_path, depth, problem, key):
    source = tmp_path / f"depth{depth}.pt"
    torch.save(_state(default_architecture("2d", "binary", 2, depth=depth, base_channels=8, preset="custom")), source)
    before = _registry_bytes(project)
    with pytest.raises(CheckpointError) as info:
        import_weights(project, source)
    message = str(info.value)
    assert "\n" not in message
    assert "depth" in source.name and source.name in message
    assert problem in message and key in message
    assert _registry_bytes(project) == before
    assert _imported_files(project) == []


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch.load on a plain pickle
@pytest.mark.parametrize("call", [os.system, eval, exec], ids=["os.system", "eval", "exec"])
@pytest.mark.parametrize("layout", ["zip", "legacy", "plain_pickle"])
def test_malicious_pickle_is_refused_before_anything_runs(project, tmp_path, call, layout):
    marker = tmp_path / "marker"
    payload = {"state_dict": {"w": torch.zeros(2)}, "hook": Evil(call, marker)}
    source = tmp_path / "evil.pt"
    if layout == "zip":
        torch.save(payload, source)
    elif layout == "legacy":
        torch.save(payload, source, _use_new_zipfile_serialization=False)
    else:
        source.write_bytes(pickle.dumps(Evil(call, marker)))
    assert not marker.exists()
    before = _registry_bytes(project)

    with pytest.raises(CheckpointError, match="refusing"):
        import_weights(project, source)
    with pytest.raises(CheckpointError):
        read_checkpoint(source)  # torch.load(weights_only=True) refuses it too

    assert not marker.exists()
    assert _imported_files(project) == []
    assert _registry_bytes(project) == before
    assert project.imported_models.registry.models == []


def test_duplicate_import_is_refused(project, tmp_path):
    source = tmp_path / "w.pt"
    torch.save(_state(project.architecture), source)
    first = import_weights(project, source)
    copy = tmp_path / "renamed copy.pt"
    copy.write_bytes(source.read_bytes())
    before = _registry_bytes(project)
    for again in (source, copy):
        with pytest.raises(CheckpointError, match=f"already imported as {first.model_id}"):
            import_weights(project, again)
    assert _registry_bytes(project) == before
    assert len(_imported_files(project)) == 1


def test_second_import_gets_the_next_number(project, tmp_path):
    for seed in (1, 2):
        torch.manual_seed(seed)
        torch.save(build_model(project.architecture).state_dict(), tmp_path / f"w{seed}.pt")
    ids = [import_weights(project, tmp_path / f"w{seed}.pt").model_id for seed in (1, 2)]
    assert ids == ["imported_001", "imported_002"]
    assert [m.model_id for m in project.imported_models.registry.models] == ids


# --------------------------------------------------------------------------------------------- checkpoint_io


def _trained_looking_model(arch) -> torch.nn.Module:
    """A model whose weights and BatchNorm statistics differ from a fresh build."""
    torch.manual_seed(3)
    model = build_model(arch)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("arch", [default_architecture(**TINY), default_architecture("3d", "multiclass", 3, **TINY)])
def test_save_read_load_round_trip(tmp_path, arch):
    arch_dict = arch.model_dump(mode="json")
    model = _trained_looking_model(arch_dict)
    path = tmp_path / "ckpt" / "unet_run_001.pt"
    when = datetime(2024, 5, 1, 12, 0).astimezone()
    save_checkpoint(path, model, arch_dict, {"epoch": 5, "saved_at": when, "pairs": ["pair_0001"]})

    state, stored_arch, meta = read_checkpoint(path)
    assert stored_arch == arch_dict
    assert meta["metadata"] == {"epoch": 5, "saved_at": str(when), "pairs": ["pair_0001"]}
    assert meta["format"] == checkpoint_io.CHECKPOINT_FORMAT and meta["format_version"] == checkpoint_io.FORMAT_VERSION
    assert set(state) == set(model.state_dict())

    loaded = load_model(path)
    assert not loaded.training and not any(m.training for m in loaded.modules())
    shape = (1, 1, 20, 20) if arch.spatial_dims == "2d" else (1, 1, 4, 12, 12)
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))

    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["architecture"] == arch_dict
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())


def test_save_checkpoint_stores_cpu_contiguous_tensors_and_leaves_no_temp_file(tmp_path):
    arch = default_architecture(**TINY).model_dump(mode="json")
    path = tmp_path / "unet_run_002.pt"
    save_checkpoint(path, build_model(arch), arch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet_run_002.pt"]
    payload = torch.load(path, weights_only=True)
    assert all(v.device.type == "cpu" and v.is_contiguous() for v in payload["state_dict"].values())
    assert payload["metadata"] == {}


def test_failing_save_keeps_the_existing_target(tmp_path, monkeypatch):
    arch = default_architecture(**TINY).model_dump(mode="json")
    path = tmp_path / "unet_run_001.pt"
    save_checkpoint(path, build_model(arch), arch, {"version": "old"})
    old = path.read_bytes()

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, build_model(arch), arch, {"version": "new"})
    monkeypatch.undo()

    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet_run_001.pt"]
    assert read_checkpoint(path)[2]["metadata"] == {"version": "old"}


def test_interrupted_save_cleans_up(tmp_path, monkeypatch):
    arch = default_architecture(**TINY).model_dump(mode="json")
    path = tmp_path / "new.pt"

    def interrupted(obj, handle, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_io.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, build_model(arch), arch)
    assert list(tmp_path.iterdir()) == []


def test_load_model_needs_an_architecture(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(build_model(default_architecture(**TINY)).state_dict(), path)
    with pytest.raises(CheckpointError, match="does not say which architecture"):
        load_model(path)


def test_load_model_with_wrong_weights_names_keys(tmp_path):
    arch = default_architecture(**TINY).model_dump(mode="json")
    other = build_model({**arch, "depth": 1})
    torch.save({"architecture": arch, "state_dict": other.state_dict()}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="missing key"):
        load_model(tmp_path / "bad.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.pt", None, "does not exist"),
        ("empty.pt", b"", "cannot read"),
        ("garbage.pt", b"\x80\x04not really", "cannot read"),
        ("garbage.safetensors", b"\xff" * 64, "cannot read"),
        ("list.pt", [1, 2], "holds a list"),
        ("nostate.pt", {"epoch": 1}, "no state dict"),
    ],
)
def test_read_checkpoint_errors_are_checkpoint_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=match) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)


def test_read_checkpoint_bad_safetensors_architecture(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"architecture": "{not json"})
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(path)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"architecture": "[1, 2]"})
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_checkpoint(path)


def test_read_checkpoint_refuses_malicious_pickle(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Evil(os.system, marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()
