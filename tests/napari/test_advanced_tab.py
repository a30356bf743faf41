"""Advanced tab: architecture editing with a live summary, compatibility verdict, weights import, notes."""

from __future__ import annotations

import json
import os

import pytest

from napari_training_assistant.napari.session import ProjectSession
from napari_training_assistant.napari.tabs.advanced_tab import AdvancedTab

pytestmark = pytest.mark.qt


@pytest.fixture
def setup(make_napari_viewer, qtbot, tmp_path):
    session = ProjectSession()
    session.create(tmp_path / "proj", "proj", architecture={"preset": "tiny_unet"})
    tab = AdvancedTab(make_napari_viewer(), session)
    qtbot.addWidget(tab)
    return session, tab


def _is_error(label) -> bool:
    return "ff6b6b" in label.styleSheet()


def _saved(session) -> dict:
    return json.loads(session.project.layout.architecture_config.read_text())


def _register_checkpoint(project) -> str:
    from napari_training_assistant.model import build_model, save_checkpoint

    arch = project.architecture.model_dump(mode="json")
    checkpoint_id, path = project.checkpoints.reserve()
    save_checkpoint(path, build_model(arch), arch)
    project.checkpoints.register(checkpoint_id, architecture=arch)
    return checkpoint_id


def test_loads_project_architecture_and_summary_follows_depth(setup):
    from napari_training_assistant.model import describe

    session, tab = setup
    assert (tab.preset.currentText(), tab.depth.value(), tab.base_channels.value()) == ("tiny_unet", 2, 8)
    assert tab.summary.text() == describe(session.project.architecture)["text"]
    assert "2 encoder" in tab.summary.text()

    tab.depth.setValue(3)
    assert tab.preset.currentText() == "custom"  # depth no longer the preset's
    expected = describe({**session.project.architecture.model_dump(), "depth": 3, "preset": "custom"})
    assert tab.summary.text() == expected["text"] and "3 encoder" in tab.summary.text()
    assert f"{expected['parameters']:,} parameters" in tab.summary.text()

    tab.preset.setCurrentText("small_unet")  # a preset sets depth and width
    assert (tab.depth.value(), tab.base_channels.value()) == (3, 16)
    assert "features 16-32-64-128" in tab.summary.text()


def test_invalid_combination_is_one_red_line_and_not_saved(setup):
    session, tab = setup
    before = session.project.layout.architecture_config.read_bytes()
    tab.upsampling.setCurrentText("trilinear")  # 2d project
    assert _is_error(tab.summary) and "trilinear" in tab.summary.text()

    assert tab.save_architecture() is None
    assert _is_error(tab.message) and "trilinear" in tab.message.text() and "\n" not in tab.message.text()
    assert session.project.layout.architecture_config.read_bytes() == before

    tab.upsampling.setCurrentText("transpose")
    tab.anisotropic.setText("0, x")
    assert _is_error(tab.summary) and "anisotropic" in tab.summary.text()


def test_save_persists_architecture(setup):
    session, tab = setup
    tab.depth.setValue(3)
    tab.normalization.setCurrentText("instance")
    tab.output_mode.setCurrentText("multiclass")
    assert tab.num_classes.isEnabled() and not tab.output_channels.isEnabled()
    tab.num_classes.setValue(4)
    tab.threshold.setValue(0.4)

    saved = tab.save_architecture()

    assert saved is not None and not _is_error(tab.message)
    data = _saved(session)
    assert (data["depth"], data["preset"], data["normalization"]) == (3, "custom", "instance")
    assert (data["output_mode"], data["num_classes"], data["output_channels"]) == ("multiclass", 4, 4)
    assert (data["activation"], data["loss"]) == ("softmax", "ce_dice")
    assert data["threshold"] == pytest.approx(0.4)
    assert "Saved architecture" in tab.message.text()


def test_instance_output_mode_is_offered_and_saved(setup):
    session, tab = setup
    modes = [tab.output_mode.itemText(i) for i in range(tab.output_mode.count())]
    assert modes == ["binary", "multiclass", "multilabel", "instance"]
    assert "instance: separate objects" in tab.output_mode.toolTip()
    tab.output_channels.setValue(5)  # not used by instance: its two channels are derived

    tab.output_mode.setCurrentText("instance")
    assert not tab.num_classes.isEnabled() and not tab.output_channels.isEnabled() and not tab.threshold.isEnabled()
    saved = tab.save_architecture()

    assert saved is not None and not _is_error(tab.message), tab.message.text()
    data = _saved(session)
    assert (data["output_mode"], data["output_channels"], data["activation"], data["loss"]) == ("instance", 2, "sigmoid", "bce_dice")
    assert session.project.architecture.output_mode == "instance"


def test_compatibility_verdict_against_latest_checkpoint(setup):
    session, tab = setup
    assert "No checkpoint" in tab.verdict.text()
    checkpoint_id = _register_checkpoint(session.project)
    session.updated()
    assert tab.verdict.text() == f"compatible with {checkpoint_id}"

    tab.depth.setValue(3)
    assert "not compatible" in tab.verdict.text() and "depth" in tab.verdict.text()
    assert "base_channels" not in tab.verdict.text()
    session.updated()  # another tab's change keeps unsaved edits
    assert tab.depth.value() == 3 and "not compatible" in tab.verdict.text()
    tab.revert()
    assert tab.depth.value() == 2 and tab.verdict.text() == f"compatible with {checkpoint_id}"


def test_import_weights_and_refuse_malicious_pickle(setup, qtbot, tmp_path):
    import torch

    from napari_training_assistant.model import build_model

    session, tab = setup
    good = tmp_path / "pretrained.pt"
    torch.save(build_model(session.project.architecture).state_dict(), good)
    assert tab.import_weights_file(good) is not None
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    assert not _is_error(tab.message) and "imported_001" in tab.message.text()
    assert [m.model_id for m in session.project.imported_models.registry.models] == ["imported_001"]

    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": Evil()}, evil)
    tab.import_weights_file(evil)
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    assert _is_error(tab.message) and "refusing" in tab.message.text()
    assert not marker.exists()
    assert len(session.project.imported_models.registry.models) == 1


def test_import_accepts_bioimageio_packages_zipped_or_as_a_folder(setup, qtbot, tmp_path):
    import zipfile

    import torch
    import yaml

    from napari_training_assistant.model import build_model

    session, tab = setup
    torch.save(build_model(session.project.architecture).state_dict(), tmp_path / "w.pt")
    rdf = {
        "type": "model", "name": "Lab U-Net", "version": "2", "authors": [{"name": "Grace Hopper"}],
        "weights": {"pytorch_state_dict": {"source": "w.pt", "architecture": {"source": "net.py", "callable": "Net"}}},
    }  # fmt: skip
    package = tmp_path / "lab.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("rdf.yaml", yaml.safe_dump(rdf))
        archive.write(tmp_path / "w.pt", "w.pt")
    tab.import_weights_file(package)
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    text = tab.message.text()
    assert not _is_error(tab.message) and "bioimage.io model 'Lab U-Net' from lab.zip (version 2, by Grace Hopper)" in text
    assert "imported_001" in text

    folder = tmp_path / "lab"
    folder.mkdir()
    torch.save(build_model({**session.project.architecture.model_dump(), "base_channels": 4, "preset": "custom"}).state_dict(), folder / "w.pt")
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    tab.import_weights_file(folder)
    assert not tab.import_folder_button.isEnabled()
    qtbot.waitUntil(lambda: tab.import_folder_button.isEnabled(), timeout=20000)
    assert _is_error(tab.message) and "architecture `Net` from net.py" in tab.message.text()

    (folder / "rdf.yaml").unlink()
    tab.import_weights_file(folder)
    qtbot.waitUntil(lambda: tab.import_button.isEnabled(), timeout=20000)
    assert _is_error(tab.message) and "not a bioimage.io package" in tab.message.text()
    assert [m.model_id for m in session.project.imported_models.registry.models] == ["imported_001"]


def test_notes_saved(setup, tmp_path):
    session, tab = setup
    tab.notes.setPlainText("HeLa nuclei, 40x\nsecond line")
    assert tab.save_notes()
    assert session.project.config.notes == "HeLa nuclei, 40x\nsecond line"
    assert tab.message.text() == "Notes saved."

    session.close()
    session.open(tmp_path / "proj")
    assert tab.notes.toPlainText() == "HeLa nuclei, 40x\nsecond line"
