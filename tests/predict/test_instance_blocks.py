"""Block-wise prediction of instance models: a watershed per block with its halo context, objects stitched
across block faces into consecutive ids 1..N, equal (up to the ids) to the watershed of the whole volume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_training_assistant.cancel import CancelToken
from napari_training_assistant.cli.main import main
from napari_training_assistant.model import build_model, describe, save_checkpoint
from napari_training_assistant.predict.block_plan import BlockPlan
from napari_training_assistant.predict.block_worker import OutputRef
from napari_training_assistant.predict.dask_cluster import dask_cluster
from napari_training_assistant.predict.instance_stitching import face_pairs, instance_block, slab_widths
from napari_training_assistant.predict.instances import (
    InstanceSettings,
    instance_labels,
    targets_from_instances,
)
from napari_training_assistant.predict.volume_prediction import _layout, prepare_volume, stitch_instances
from napari_training_assistant.predict.volume_store import RELABELLED, VolumeStore
from napari_training_assistant.progress import EventKind
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.schemas import default_architecture
from napari_training_assistant.train.instance_metrics import match

IN_PROCESS = {"scheduler": "in-process"}


def _objects_3d() -> np.ndarray:
    """40^3 instances: a ball on the corner of 8 blocks of 16^3, two boxes touching exactly at the face x = 16,
    a rod through 3 blocks, a box crossing a face by one voxel, two boxes touching inside a block."""
    labels = np.zeros((40, 40, 40), np.uint32)
    z, y, x = np.ogrid[:40, :40, :40]
    labels[(z - 16) ** 2 + (y - 16) ** 2 + (x - 16) ** 2 <= 36] = 1
    labels[2:14, 25:33, 4:16] = 2
    labels[2:14, 25:33, 16:28] = 3
    labels[:, 34:38, 34:38] = 4
    labels[24:30, 2:10, 12:17] = 5
    labels[30:38, 12:20, 22:31] = 6
    labels[30:38, 12:20, 31:40] = 7
    return labels


def _objects_2d() -> np.ndarray:
    """70 x 70 instances over blocks of 24: a disc on a 4-block corner, boxes touching at the face x = 24,
    a bar through 3 blocks, a box crossing a face by one pixel."""
    labels = np.zeros((70, 70), np.uint32)
    y, x = np.ogrid[:70, :70]
    labels[(y - 24) ** 2 + (x - 24) ** 2 <= 49] = 1
    labels[2:12, 10:24] = 2
    labels[2:12, 24:40] = 3
    labels[60:66, :] = 4
    labels[40:50, 44:49] = 5
    return labels


def _probabilities(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(2, *spatial) foreground / boundary probabilities of an instance image, with a little noise."""
    targets = targets_from_instances(labels)
    noise = np.random.default_rng(seed).uniform(0.0, 0.08, targets.shape)
    return (0.04 + 0.88 * targets + noise).astype(np.float32)


def assert_same_objects(found: np.ndarray, expected: np.ndarray) -> None:
    """Exactly the same partition into objects (ids may differ), and `found` numbered 1..N."""
    assert ((found > 0) == (expected > 0)).all()
    inside = expected > 0
    pairs = np.unique(np.stack([found[inside], expected[inside]]), axis=1)
    ids = np.unique(found[inside])
    assert pairs.shape[1] == ids.size == np.unique(expected[inside]).size, "objects cut or merged"
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))


def assert_finds(found: np.ndarray, truth: np.ndarray, iou: float = 0.95) -> None:
    """Every object of `truth` found once with an IoU of at least `iou`, nothing else, ids 1..N (voxels where
    two objects touch may go either way: the watershed's ties)."""
    [matching] = match(truth, found, [iou])
    assert matching.accuracy == 1.0, matching.scores()
    np.testing.assert_array_equal(np.unique(found[found > 0]), np.arange(1, int(truth.max()) + 1))


@pytest.fixture(scope="module")
def cluster():
    with dask_cluster("in-process", None, gpus=0) as running:
        yield running


def _blockwise(probabilities: np.ndarray, plan: BlockPlan, target, cluster, settings=None) -> tuple[np.ndarray, VolumeStore]:
    """What the block tasks of an instance prediction write, for given probabilities, then the stitching."""
    spatial_axes = "zyx"[-len(plan.shape) :]
    layout = _layout({"output_mode": "instance", "output_channels": 2}, True, None, spatial_axes, slab_widths(plan))
    store, _ = VolumeStore.create_or_resume(target, plan, layout, {"test": 1}, scale=None, translation=None, unit=None, overwrite=False)
    for index in plan:
        work = plan.work(index)
        faces = instance_block(probabilities[(slice(None), *work.read)], work, plan, layout.slabs, settings)
        store.write_block(index, probabilities[(slice(None), *work.region)], faces.labels, faces)
    status = stitch_instances(OutputRef(str(target), plan, layout, "t"), store, cluster, lambda event: None, None)
    assert status == "completed"
    return zarr.open_group(str(target), mode="r")["labels/0"][...], store


@pytest.mark.parametrize(
    ("objects", "tile", "block"),
    [pytest.param(_objects_3d, 16, 16, id="3d"), pytest.param(_objects_2d, 24, 24, id="2d")],
)
def test_stitched_blocks_equal_the_whole_volume_watershed(cluster, tmp_path, objects, tile, block):
    truth = objects()
    probabilities = _probabilities(truth)
    plan = BlockPlan.build(truth.shape, [tile] * truth.ndim, [tile // 2] * truth.ndim, [block] * truth.ndim)
    assert plan.count >= 9

    labels, store = _blockwise(probabilities, plan, tmp_path / "out.zarr", cluster)

    whole = instance_labels(probabilities)
    assert_finds(whole, truth)  # the synthetic probabilities are fine: the whole-volume watershed finds the objects
    assert_same_objects(labels, whole)
    assert (store.block_states() == RELABELLED).all()
    assert store.read_attributes()["objects"] == int(truth.max())
    assert store.read_attributes()["pieces_joined"] >= 3


def test_touching_objects_stay_two_and_a_sliver_across_the_face_joins_nothing():
    beyond = np.zeros((4, 20), np.uint32)  # block i's labels just beyond its face
    front = np.zeros((4, 20), np.uint32)  # the next block's labels of the same slab
    beyond[:, 0:8], front[:, 0:8] = 1, 5  # an object crossing the face: the same piece on both sides
    beyond[:, 10:12], front[:, 10:20] = 2, 6  # a sliver of i's object 2 reaching into the next block's object 6
    front[:, 12:14] = 7  # an object of the next block that i does not see

    assert face_pairs(beyond, front).tolist() == [[1, 5]]


# ---- end to end: a checkpoint whose probabilities are a function of the voxel value ----------------------


def _pointwise_instance_model(spatial_dims: str):
    """A depth-1 instance U-Net whose logits depend on each voxel alone: value 2 (object core) is foreground
    without boundary, 1 (rim) foreground and boundary, 0 background (the input passes the encoder's and the
    decoder's convolutions by their centre taps, through the skip connection)."""
    architecture = default_architecture(spatial_dims, "instance", depth=1, base_channels=2, normalization="none", preset="custom").model_dump()
    model = build_model(architecture)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        taps = [
            (model.encoder[0].conv1.conv, 0),
            (model.encoder[0].conv2.conv, 0),
            (model.decoder[0].conv1.conv, 2),  # channel 0 of the skip (after the 2 upsampled channels)
            (model.decoder[0].conv2.conv, 0),
        ]
        for conv, source in taps:
            conv.weight[(0, source, *(k // 2 for k in conv.weight.shape[2:]))] = 1.0
        head = model.head.conv
        head.weight[0, 0] = 10.0  # foreground logit 10 x - 5: x >= 1
        head.bias[0] = -5.0
        head.weight[1, 0] = -10.0  # boundary logit 15 - 10 x: x <= 1
        head.bias[1] = 15.0
    return model.eval(), architecture


def _image(truth: np.ndarray) -> np.ndarray:
    targets = targets_from_instances(truth)
    return (2 * targets[0] - targets[1]).astype(np.float32)  # core 2, rim 1, background 0


@pytest.fixture
def instance_checkpoint(tmp_path):
    def make(spatial_dims: str = "3d"):
        model, architecture = _pointwise_instance_model(spatial_dims)
        path = tmp_path / f"instance_{spatial_dims}.pt"
        save_checkpoint(path, model, architecture, {"normalization": "none"})
        return path

    return make


def test_the_pointwise_model_gives_the_synthetic_objects_in_memory(instance_checkpoint):
    from napari_training_assistant.model import load_model
    from napari_training_assistant.predict import predict_image

    truth = _objects_3d()
    probabilities = predict_image(load_model(instance_checkpoint()), _image(truth), tile_size=16)
    assert_finds(instance_labels(probabilities), truth)


def test_blockwise_instance_prediction_is_stitched_recorded_and_resumable(instance_checkpoint, tmp_path):
    truth = _objects_3d()
    image = _image(truth)
    path = instance_checkpoint()
    settings = InstanceSettings(min_size=20)
    prepared = prepare_volume(path, image, tile_size=16, block_shape=16, instance=settings)
    token = CancelToken()

    def listen(event):
        if event.kind == EventKind.MESSAGE and "writing final ids" in event.message:
            token.cancel()  # stop in the relabel pass

    stopped = prepared.run(tmp_path / "out.zarr", listener=listen, cancel=token, **IN_PROCESS)
    attributes = json.loads((tmp_path / "out.zarr" / ".zattrs").read_text())["nta_prediction"]
    assert stopped.status == "cancelled" and attributes["status"] == "running"

    result = prepared.run(tmp_path / "out.zarr", **IN_PROCESS)

    labels = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["labels/0"][...]
    assert result.status == "completed" and result.blocks == 27 and result.blocks_before == 27
    assert labels.dtype == np.uint32
    assert_finds(labels, truth)
    parameters = result.parameters
    assert parameters["objects"] == 7 and parameters["block_shape"] == [16, 16, 16]
    assert parameters["instance_min_size"] == 20 and parameters["instance_foreground_threshold"] == 0.5
    assert parameters["instance_stitch_slab"] == [4, 4, 4] and parameters["instance_merge_fraction"] == 0.5
    stored = json.loads((tmp_path / "out.zarr" / ".zattrs").read_text())["nta_prediction"]
    assert stored["status"] == "complete" and stored["objects"] == 7
    assert stored["fingerprint"]["instance"]["instance_min_size"] == 20


def test_instance_settings_on_another_model_and_no_halo_are_refused(instance_checkpoint, tmp_path):
    from napari_training_assistant.project.user_input import InputError

    image = _image(_objects_3d())
    with pytest.raises(InputError, match="at least 1 voxel"):
        prepare_volume(instance_checkpoint(), image, tile_size=16, block_shape=16, halo=0)
    binary = tmp_path / "binary.pt"
    arch = default_architecture("3d", depth=1, base_channels=2, preset="custom").model_dump()
    save_checkpoint(binary, build_model(arch), arch, {"normalization": "none"})
    with pytest.raises(InputError, match="apply to instance models"):
        prepare_volume(binary, image, tile_size=16, instance=InstanceSettings())


# ---- CLI ------------------------------------------------------------------------------------------------


@pytest.fixture
def instance_project(tmp_path):
    """A 2D instance project with a registered point-wise checkpoint, and a test image of its objects."""
    truth = _objects_2d()
    overrides = {"depth": 1, "base_channels": 2, "normalization": "none", "preset": "custom"}
    project = TrainingProject.create(tmp_path / "proj", output_mode="instance", architecture=overrides)
    model, _ = _pointwise_instance_model("2d")
    arch = project.architecture.model_dump(mode="json")
    checkpoint_id, path = project.checkpoints.reserve()
    save_checkpoint(path, model, arch, {"checkpoint_id": checkpoint_id, "normalization": "none"})
    project.checkpoints.register(
        checkpoint_id, architecture=arch, dataset_pair_ids=[], metrics={}, parent_id=None,
        starting_weights=project.starting_weights.model_dump(mode="json"), architecture_summary=describe(arch),
    )
    tifffile.imwrite(tmp_path / "img.tif", _image(truth))
    return tmp_path, truth


def test_cli_instance_options_reach_in_memory_and_blockwise_prediction(instance_project, capsys):
    root, truth = instance_project
    project_dir, image = str(root / "proj"), str(root / "img.tif")
    options = ["--min-size", "30", "--foreground-threshold", "0.4", "--boundary-threshold", "0.6"]

    assert main(["predict", project_dir, "--image", image, *options, "--json"]) == 0
    in_memory = json.loads(capsys.readouterr().out)
    assert main(["predict", project_dir, "--image", image, *options, "--block-shape", "24", "--tile-size", "24", "--scheduler", "in-process", "--json"]) == 0
    blockwise = json.loads(capsys.readouterr().out)

    assert in_memory["parameters"]["instance_min_size"] == 30 and in_memory["parameters"]["instance_boundary_threshold"] == 0.6
    assert blockwise["status"] == "completed" and blockwise["objects"] == 5 and blockwise["blocks"] == 9
    recorded = blockwise["record"]["parameters"]
    assert recorded["instance_min_size"] == 30 and recorded["instance_foreground_threshold"] == 0.4 and recorded["objects"] == 5
    labels = zarr.open_group(blockwise["prediction_path"], mode="r")["labels/0"][...]
    assert_finds(labels, truth)
    assert_finds(tifffile.imread(in_memory["prediction_path"]), truth)


def test_cli_instance_options_on_a_binary_model_are_one_line(tmp_path, capsys):
    project = TrainingProject.create(tmp_path / "proj", architecture={"preset": "tiny_unet"})
    arch = project.architecture.model_dump(mode="json")
    checkpoint_id, path = project.checkpoints.reserve()
    save_checkpoint(path, build_model(arch).eval(), arch, {"checkpoint_id": checkpoint_id})
    project.checkpoints.register(
        checkpoint_id, architecture=arch, dataset_pair_ids=[], metrics={}, parent_id=None,
        starting_weights=project.starting_weights.model_dump(mode="json"), architecture_summary=describe(arch),
    )
    np.save(tmp_path / "img.npy", np.zeros((32, 32), np.float32))

    rc = main(["predict", str(tmp_path / "proj"), "--image", str(tmp_path / "img.npy"), "--min-size", "5", "--boundary-threshold", "0.3"])

    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and len(err) == 1
    assert "--min-size and --boundary-threshold apply to instance models" in err[0] and "binary model" in err[0]
