"""Point-trained (connectomics) checkpoints as bioimage.io packages: a window on a synapse of the training
volume as test input, with the centre marker as a second input tensor when the model takes one; the
reference model test passes for every weight format."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
import yaml

from napari_training_assistant.data.synthetic_em import make_em_volume, write_synapse_dataset
from napari_training_assistant.model import load_model
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.share import export_model
from napari_training_assistant.train.point_run import train_points

pytest.importorskip("bioimageio.core")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def point_project(tmp_path_factory):
    data = tmp_path_factory.mktemp("synapses")
    write_synapse_dataset(data, volume=make_em_volume((16, 96, 96), seed=1), partners=True)
    trained: dict[str, TrainingProject] = {}

    def _train(name: str, **training) -> TrainingProject:
        if name in trained:
            return trained[name]
        spec = yaml.safe_load((data / "spec.yaml").read_text())
        spec["project"] = str(data / name)
        spec["window_size"] = [8, 32, 32]
        spec["model"].update(depth=2, base_channels=4)
        spec["training"].update(epochs=1, device="cpu", batch_size=2, samples_per_epoch=2, **training)
        path = data / f"spec_{name}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        assert train_points(path).status == "completed"
        trained[name] = TrainingProject.open(data / name)
        return trained[name]

    return _train


@pytest.mark.parametrize("marker", [False, True], ids=["whole-volume", "centre-marker"])
def test_point_model_package_passes_the_reference_test(point_project, tmp_path, marker):
    from bioimageio.core import test_model

    project = point_project(f"marker_{marker}", centre_marker=marker)
    package = export_model(project, format="bioimageio", output=tmp_path / "synapses.zip", authors=["C"]).path
    for weight_format in ("pytorch_state_dict", "torchscript", "onnx"):
        summary = test_model(package, weight_format=weight_format)
        failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status == "failed"]
        assert summary.status == "passed", (weight_format, failed)
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        names = [t["id"] for t in rdf["inputs"]]
        assert names == (["input", "marker"] if marker else ["input"])
        test_input = np.load(archive.open("test_input.npy"))
        assert test_input.shape == (1, 1, 8, 32, 32)
        if marker:
            ball = np.load(archive.open("test_marker.npy"))
            assert ball.shape == test_input.shape and ball[0, 0, 4, 16, 16] == 1 and 0 < ball.sum() < 40
            assert rdf["inputs"][1].get("preprocessing", []) in ([], [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}])
        channel = next(a for a in rdf["outputs"][0]["axes"] if a["type"] == "channel")
        assert channel["channel_names"] == ["pre", "post"]
        callable_ = rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"]
        assert callable_ == ("nta_unet_with_marker" if marker else "nta_unet")
        assert "centre" in archive.read("README.md").decode() or not marker


def test_marker_model_onnx_file_takes_image_and_marker(point_project, tmp_path):
    import onnxruntime as ort

    project = point_project("marker_True", centre_marker=True)
    model = load_model(project.checkpoints.path_of("latest"))
    path = export_model(project, format="onnx", output=tmp_path / "m.onnx").path
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "marker"]
    x = torch.rand(1, 2, 8, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"input": x[:, :1].numpy(), "marker": x[:, 1:].numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4


def test_marker_package_imports_with_its_own_architecture(point_project, tmp_path):
    from napari_training_assistant.share.bioimageio_import import import_pretrained

    project = point_project("marker_True", centre_marker=True)
    package = export_model(project, format="bioimageio", output=tmp_path / "p.zip", authors=["C"]).path
    other = TrainingProject.create(tmp_path / "other", "other", spatial_dims="3d", output_mode="multilabel", architecture={"output_channels": 2})
    record = import_pretrained(other, package)
    assert record.architecture["input_channels"] == 2 and record.package["architecture_callable"] == "nta_unet_with_marker"
    assert record.package["exported_from"]["checkpoint_id"] == project.checkpoints.get("latest").checkpoint_id
