"""Model-folder validation: the backend each folder needs, and a one-line refusal naming what is missing."""

from __future__ import annotations

import pytest

from napari_training_assistant.annotate.errors import Sam3Error
from napari_training_assistant.annotate.model_folder import (
    choose_propagation_folder,
    resolve_sam3_device,
    validate_model_folder,
)


def folder(tmp_path, *names: str):
    path = tmp_path / "model"
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_bytes(b"")
    return path


def refused(path, spatial: str, device: str = "cpu") -> str:
    with pytest.raises(Sam3Error) as info:
        validate_model_folder(path, spatial, device)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_hugging_face_folder_is_the_cpu_capable_2d_backend(tmp_path):
    path = folder(tmp_path, "model.safetensors", "config.json")
    chosen = validate_model_folder(path, "2d", "cpu")
    assert (chosen.kind, chosen.weights.name, chosen.device, chosen.spatial) == ("transformers", "model.safetensors", "cpu", "2d")


def test_auto_device_on_a_machine_without_cuda_is_cpu(tmp_path, monkeypatch):
    from napari_training_assistant.annotate import runtime

    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    assert resolve_sam3_device("auto") == "cpu"
    assert validate_model_folder(folder(tmp_path, "model.safetensors", "config.json"), "2d", "auto").device == "cpu"
    assert "no CUDA GPU" in refused(tmp_path / "model", "2d", "cuda")
    with pytest.raises(Sam3Error, match="unknown SAM3 device 'tpu'"):
        resolve_sam3_device("tpu")


def test_sam3_pt_needs_cuda_and_says_what_runs_on_cpu(tmp_path):
    message = refused(folder(tmp_path, "sam3.pt"), "2d", "cpu")
    assert "CUDA" in message and "model.safetensors" in message


def test_sam3_pt_on_cuda_uses_the_sam3_package_or_says_how_to_install_it(tmp_path, monkeypatch):
    from napari_training_assistant.annotate import runtime

    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    path = folder(tmp_path, "sam3.pt")
    monkeypatch.setattr(runtime, "has_module", lambda name: False)
    assert "pip install" in refused(path, "2d", "cuda") and "facebookresearch/sam3" in refused(path, "2d", "cuda")
    monkeypatch.setattr(runtime, "has_module", lambda name: True)
    assert validate_model_folder(path, "2d", "cuda").kind == "sam3_package"


def test_2d_refusals_name_what_is_missing(tmp_path):
    assert "no SAM3 image model folder chosen" in refused(None, "2d")
    assert "does not exist" in refused(tmp_path / "nowhere", "2d")
    assert "neither model.safetensors" in refused(folder(tmp_path), "2d")


def test_a_safetensors_file_without_its_config_is_refused(tmp_path):
    assert "no config.json" in refused(folder(tmp_path, "model.safetensors"), "2d")


def test_multiplex_weights_are_not_a_2d_model(tmp_path):
    assert "3D propagation" in refused(folder(tmp_path, "sam3.1_multiplex.pt"), "2d")


def test_3d_on_cpu_is_the_sam3_0_tracker_of_a_hugging_face_folder(tmp_path):
    path = folder(tmp_path, "model.safetensors", "config.json", "sam3.1_multiplex.pt")
    chosen = validate_model_folder(path, "3d", "cpu")
    assert (chosen.kind, chosen.weights.name, chosen.spatial) == ("tracker_video", "model.safetensors", "3d")
    assert chosen.describe() == "SAM3.0 tracker (transformers) on cpu"


def test_3d_on_cuda_prefers_sam3_1_multiplex_and_falls_back_to_the_tracker(tmp_path, monkeypatch):
    from napari_training_assistant.annotate import runtime

    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(runtime, "multiplex_builder_available", lambda: (True, ""))
    path = folder(tmp_path, "model.safetensors", "config.json", "sam3.1_multiplex.pt")
    chosen = validate_model_folder(path, "3d", "cuda:0")
    assert (chosen.kind, chosen.weights.name, chosen.spatial) == ("multiplex", "sam3.1_multiplex.pt", "3d")
    assert chosen.describe() == "SAM3.1 multiplex on cuda:0"
    monkeypatch.setattr(runtime, "multiplex_builder_available", lambda: (False, "install sam3"))
    assert validate_model_folder(path, "3d", "cuda").kind == "tracker_video"


def test_3d_refusals_say_what_to_choose(tmp_path, monkeypatch):
    from napari_training_assistant.annotate import runtime

    assert "no SAM3 3D model folder chosen" in refused(None, "3d")
    multiplex = refused(folder(tmp_path, "sam3.1_multiplex.pt"), "3d", "cpu")
    assert "needs CUDA; on CPU choose a SAM3.0 Hugging Face folder (model.safetensors + config.json)" in multiplex
    (tmp_path / "model" / "sam3.1_multiplex.pt").unlink()
    assert "neither model.safetensors (+ config.json) nor sam3.1_multiplex.pt" in refused(tmp_path / "model", "3d")
    (tmp_path / "model" / "sam3.pt").write_bytes(b"")
    assert "sam3.pt is a SAM3.0 image model for 2D modes" in refused(tmp_path / "model", "3d")
    (tmp_path / "model" / "model.safetensors").write_bytes(b"")
    assert "no config.json" in refused(tmp_path / "model", "3d")
    (tmp_path / "model" / "config.json").write_bytes(b"")
    monkeypatch.setattr(runtime, "transformers_has_sam3", lambda: False)
    assert "pip install" in refused(tmp_path / "model", "3d")


def test_propagation_uses_the_sam3_1_folder_when_valid_else_the_image_folder(tmp_path, monkeypatch):
    from napari_training_assistant.annotate import runtime

    sam31 = folder(tmp_path / "a", "sam3.1_multiplex.pt")
    image = folder(tmp_path / "b", "model.safetensors", "config.json")
    assert choose_propagation_folder(sam31, image, "cpu").path == image
    assert choose_propagation_folder(None, image, "cpu").kind == "tracker_video"
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(runtime, "multiplex_builder_available", lambda: (True, ""))
    assert choose_propagation_folder(sam31, image, "cuda").path == sam31


def test_when_no_folder_fits_3d_the_more_relevant_refusal_is_shown(tmp_path):
    def chosen(sam31, image) -> str:
        with pytest.raises(Sam3Error) as info:
            choose_propagation_folder(sam31, image, "cpu")
        return str(info.value)

    sam31 = folder(tmp_path / "a", "sam3.1_multiplex.pt")
    image = folder(tmp_path / "b", "sam3.pt")
    assert "no SAM3 3D model folder chosen" in chosen(None, " ")
    assert "needs CUDA" in chosen(sam31, None) and "needs CUDA" in chosen(sam31, image)  # it holds SAM3.1 weights
    assert "2D modes" in chosen(None, image) and "2D modes" in chosen(tmp_path / "typo", image)
    assert "does not exist" in chosen(tmp_path / "typo", None)


def test_an_unknown_mode_is_refused(tmp_path):
    assert "2d or 3d" in refused(tmp_path, "4d")


def test_sam3_reads_the_shared_device_names_with_its_own_rules(monkeypatch):
    from napari_training_assistant.annotate import runtime
    from napari_training_assistant.annotate.model_folder import SAM3_DEVICES

    assert SAM3_DEVICES == ("auto", "cpu", "cuda")
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    assert resolve_sam3_device("auto") == "cuda" and resolve_sam3_device(" CUDA:1 ") == "cuda:1" and resolve_sam3_device("gpu") == "cuda"
    with pytest.raises(Sam3Error, match="unknown SAM3 device 'mps'"):
        resolve_sam3_device("mps")
    with pytest.raises(Sam3Error, match="unknown SAM3 device 'cuda:x'"):
        resolve_sam3_device("cuda:x")
