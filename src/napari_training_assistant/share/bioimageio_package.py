"""A checkpoint as a BioImage Model Zoo package (model format 0.5, built and validated by `bioimageio.spec`):
`pytorch_state_dict` weights with the U-Net as source, TorchScript and ONNX converted from them, tensor
descriptions with the checkpoint's normalisation as the spec's own preprocessing, a test input/output pair,
a cover, generated documentation, and the lineage in `config.napari_training_assistant` and `training_data`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.architecture_source import CALLABLE, MARKED_CALLABLE, architecture_source
from ..model.torch_export import export_onnx, export_torchscript, minimum_size, size_step
from ..preprocess.normalization import PERCENTILE_HIGH, PERCENTILE_LOW
from ..project import TrainingProject
from .bioimageio_import import CONFIG_KEY
from .exportable import Exportable
from .lineage import TOOL, documentation, lineage
from .sample import package_normalization, project_sample, write_cover

U_NET_CITATION = ("Ronneberger, Fischer, Brox: U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015", "10.1007/978-3-319-24574-4_28")
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
TOLERANCE = {"relative_tolerance": 1e-3, "absolute_tolerance": 1e-4}


def build_package(
    project: TrainingProject,
    source: Exportable,
    work: Path,
    *,
    authors: Sequence[str],
    license: str,
) -> Any:
    """Write the package's files into `work` and return the validated `ModelDescr` naming them."""
    from bioimageio.spec.model import v0_5

    record, info = source.record, source.info
    facts = lineage(project, record)
    sample = project_sample(project, source)
    files = _write_files(source, sample, facts, work)
    dims = len(size_step(source.model))
    spatial = "zyx"[-dims:]
    arch = source.model.architecture
    people = [v0_5.Author(name=name) for name in authors]
    mode = package_normalization(info.normalization, sample.dtype)
    inputs = [
        _input(source, "input", info.input_channels - len(sample.inputs) + 1, spatial, files["test_input"], _preprocessing(mode, spatial), sample.origin)
    ]
    if "marker" in sample.inputs:
        inputs.append(_input(source, "marker", 1, spatial, files["test_marker"], [], "the centre-synapse marker: a ball of ones at the centre"))
    output_axes = [
        v0_5.BatchAxis(),
        v0_5.ChannelAxis(channel_names=[v0_5.Identifier(n) for n in _output_names(project, arch)]),
        *(v0_5.SpaceOutputAxis(id=v0_5.AxisId(a), size=v0_5.SizeReference(tensor_id=v0_5.TensorId("input"), axis_id=v0_5.AxisId(a))) for a in spatial),
    ]
    how_to_apply = [*_how_to_apply(mode, info.normalization, arch, spatial, source), f"The test input was cut from the {sample.origin}."]
    (work / "README.md").write_text(documentation(project, record, facts, how_to_apply))
    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    state_dict = v0_5.PytorchStateDictWeightsDescr(
        source=files["state_dict"],
        architecture=v0_5.ArchitectureFromFileDescr(
            source=files["architecture"], callable=v0_5.Identifier(MARKED_CALLABLE if len(inputs) > 1 else CALLABLE), kwargs=_plain(arch)
        ),
        pytorch_version=torch_version,
    )
    return v0_5.ModelDescr(
        name=_name(project, record.checkpoint_id),
        description=f"{arch['spatial_dims'].upper()} U-Net ({arch['output_mode']}) trained with {TOOL} on "
        f"{facts['dataset']['pairs']} pairs of the project '{project.config.project_name}' (checkpoint {record.checkpoint_id})",
        authors=people,
        cite=[v0_5.CiteEntry(text=U_NET_CITATION[0], doi=v0_5.Doi(U_NET_CITATION[1]))],
        license=license,
        documentation=v0_5.FileDescr(source=work / "README.md"),
        covers=[v0_5.FileDescr(source=files["cover"])],
        attachments=[v0_5.FileDescr(source=files["lineage"])],
        tags=[TOOL, "unet", arch["spatial_dims"], "segmentation", f"{arch['output_mode']}-segmentation", "pytorch", "onnx"],
        inputs=inputs,
        outputs=[
            v0_5.OutputTensorDescr(
                id=v0_5.TensorId("output"),
                description=_output_description(arch),
                axes=output_axes,
                test_tensor=v0_5.FileDescr(source=files["test_output"]),
                data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
                postprocessing=[_activation(arch)],
            )
        ],
        weights=v0_5.WeightsDescr(
            pytorch_state_dict=state_dict,
            torchscript=v0_5.TorchscriptWeightsDescr(source=files["torchscript"], parent="pytorch_state_dict", pytorch_version=torch_version),
            onnx=v0_5.OnnxWeightsDescr(source=files["onnx"], parent="pytorch_state_dict", opset_version=files["opset"]),
        ),
        training_data=_training_data(project, facts, people, license),
        config=v0_5.Config(
            bioimageio=v0_5.BioimageioConfig(
                reproducibility_tolerance=[v0_5.ReproducibilityTolerance(**TOLERANCE)],
                model_parameter_count=sum(p.numel() for p in source.model.parameters()),
            ),
            **{CONFIG_KEY: facts},
        ),
    )


def _input(source: Exportable, name: str, channels: int, spatial: str, test_tensor: Path, preprocessing: list[Any], about: str) -> Any:
    from bioimageio.spec.model import v0_5

    steps = zip(spatial, minimum_size(source.model), size_step(source.model), strict=True)
    return v0_5.InputTensorDescr(
        id=v0_5.TensorId(name),
        description=about if name == "marker" else f"{channels}-channel {len(spatial)}D image as read (normalised by the preprocessing)",
        axes=[
            v0_5.BatchAxis(),
            v0_5.ChannelAxis(channel_names=[v0_5.Identifier(f"{name}{i}" if channels > 1 else name) for i in range(channels)]),
            *(
                v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=m, step=s))
                if name == "input"
                else v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.SizeReference(tensor_id=v0_5.TensorId("input"), axis_id=v0_5.AxisId(a)))
                for a, m, s in steps
            ),
        ],
        test_tensor=v0_5.FileDescr(source=test_tensor),
        data=v0_5.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=preprocessing,
    )


def _write_files(source: Exportable, sample: Any, facts: dict[str, Any], work: Path) -> dict[str, Any]:
    files: dict[str, Any] = {
        "state_dict": work / "weights.pt",
        "architecture": work / "unet_source.py",
        "torchscript": work / "weights_torchscript.pt",
        "onnx": work / "weights.onnx",
        "test_input": work / "test_input.npy",
        "test_marker": work / "test_marker.npy",
        "test_output": work / "test_output.npy",
        "cover": work / "cover.png",
        "lineage": work / "lineage.json",
    }
    torch.save({k: v.detach().cpu().contiguous() for k, v in source.model.state_dict().items()}, files["state_dict"])
    files["architecture"].write_text(architecture_source())
    marker = "marker" in sample.inputs
    export_torchscript(source.model, files["torchscript"], marker=marker)
    files["opset"] = export_onnx(source.model, files["onnx"], marker=marker)
    for name, array in sample.inputs.items():
        np.save(files[f"test_{name}"], array)
    np.save(files["test_output"], sample.output)
    write_cover(sample, files["cover"], instance=source.model.architecture["output_mode"] == "instance")
    files["lineage"].write_text(json.dumps(facts, indent=1, default=str))
    return files


def _preprocessing(mode: str, spatial: str) -> list[Any]:
    """The checkpoint's normalisation with the spec's operations (per sample and channel, over the spatial axes)."""
    from bioimageio.spec.model import v0_5

    axes = [v0_5.AxisId(a) for a in spatial]
    ops: list[Any] = []  # the spec adds the float32 casts around them itself
    if mode == "region":  # 8-bit data: 0..255 -> 0..1, exactly as in training
        ops.append(v0_5.ScaleLinearDescr(kwargs=v0_5.ScaleLinearKwargs(gain=1 / 255, offset=0.0)))
    elif mode == "percentile":
        ops.append(v0_5.ScaleRangeDescr(kwargs=v0_5.ScaleRangeKwargs(axes=axes, min_percentile=PERCENTILE_LOW, max_percentile=PERCENTILE_HIGH)))
    elif mode == "minmax":
        ops.append(v0_5.ScaleRangeDescr(kwargs=v0_5.ScaleRangeKwargs(axes=axes, min_percentile=0.0, max_percentile=100.0)))
    elif mode == "zscore":
        ops.append(v0_5.ZeroMeanUnitVarianceDescr(kwargs=v0_5.ZeroMeanUnitVarianceKwargs(axes=axes)))
    return ops


def _activation(arch: dict[str, Any]) -> Any:
    from bioimageio.spec.model import v0_5

    if arch["output_mode"] == "multiclass" or arch.get("activation") == "softmax":
        return v0_5.SoftmaxDescr(kwargs=v0_5.SoftmaxKwargs(axis=v0_5.AxisId("channel")))
    return v0_5.SigmoidDescr()


def _output_names(project: TrainingProject, arch: dict[str, Any]) -> list[str]:
    if arch["output_mode"] == "instance":
        return ["foreground", "boundary"]
    names = [_identifier(n) for n in project.config.class_names]
    channels = arch["output_channels"]
    if len(names) == channels + 1 and arch["output_mode"] != "multiclass":  # binary, multilabel: no background channel
        names = names[1:]
    return names if len(names) == channels else [f"channel{i}" for i in range(channels)]


def _identifier(name: str) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_") or "class"
    return text if text[0].isalpha() else f"c_{text}"


def _output_description(arch: dict[str, Any]) -> str:
    mode = arch["output_mode"]
    if mode == "instance":
        return "foreground and boundary probabilities; objects: seeded watershed (see the documentation)"
    if mode == "multiclass":
        return "class probabilities (softmax over channels); labels are the argmax"
    return f"probabilities (sigmoid); threshold {arch.get('threshold', 0.5)}"


def _how_to_apply(mode: str, trained: str, arch: dict[str, Any], spatial: str, source: Exportable) -> list[str]:
    steps = ", ".join(f"{a} {s}" for a, s in zip(spatial, size_step(source.model), strict=True))
    marker = ["A second input, `marker`, marks the synapse at the window's centre: a ball of ones of radius (1, 2, 2) voxels (z, y, x)."] if source.info.centre_marker else []
    return [
        f"Normalisation ({trained}; the package applies {mode}): "
        + {
            "percentile": f"per channel, the {PERCENTILE_LOW:g} and {PERCENTILE_HIGH:g} percentiles map to 0 and 1 (the package's scale_range)",
            "minmax": "per channel, minimum and maximum map to 0 and 1 (scale_range 0-100)",
            "zscore": "per channel, mean 0 and standard deviation 1 (zero_mean_unit_variance)",
            "none": "none (values cast to float32)",
            "region": "8-bit data maps 0..255 to 0..1 (scale_linear), exactly as in training",
        }.get(mode, mode)
        + (
            f" (training used the {PERCENTILE_LOW:g} and {PERCENTILE_HIGH:g} percentiles of the whole cached region; "
            "per input they differ a little: for best results normalise the whole volume the same way)"
            if trained == "region" and mode != "region"
            else ""
        ),
        *marker,
        f"Input sizes: multiples of {steps} (at least twice that); tile larger images with overlap.",
        f"Output: {_output_description(arch)}.",
        *_objects_line(arch, source.info.instance_settings, source.record.checkpoint_id),
    ]


def _objects_line(arch: dict[str, Any], tuned: dict[str, Any] | None, checkpoint: str) -> list[str]:
    """An instance model's watershed settings, as tuned on its validation pairs (or the defaults)."""
    if arch["output_mode"] != "instance":
        return []
    from ..predict.instances import checkpoint_settings

    dims = 3 if arch["spatial_dims"] == "3d" else 2
    settings = checkpoint_settings(None, tuned, checkpoint).resolved(dims)
    where = "tuned on the validation pairs after training" if tuned else "defaults"
    return [
        f"Objects ({where}): seeds are the connected pieces of foreground > {settings.foreground_threshold} and boundary < "
        f"{settings.boundary_threshold} (split where their distance map dips deeper than {settings.split_depth} px; seeds "
        f"under {settings.min_seed_size} px dropped), grown by a watershed over the boundary within the foreground; objects "
        f"under {settings.min_size} px removed."
    ]


def _training_data(project: TrainingProject, facts: dict[str, Any], people: list[Any], license: str) -> Any:
    """The training data described inline (the pairs stay in the project): counts, splits and manifest hash."""
    from bioimageio.spec.dataset import v0_3 as dataset

    data = facts["dataset"]
    return dataset.DatasetDescr(
        name=_name(project, "training data"),
        description=f"{data['pairs']} image/mask pairs of the project '{project.config.project_name}' "
        f"(manifest sha256 {data['manifest_sha256']}); not included in the package",
        authors=people,
        cite=[dataset.CiteEntry(text=f"{TOOL} project '{project.config.project_name}'", url="https://github.com/napari/napari")],
        license=license,
        config={CONFIG_KEY: data},
    )


def _name(project: TrainingProject, suffix: str) -> str:
    allowed = "".join(c if c.isalnum() or c in " _-()" else " " for c in f"{project.config.project_name} {suffix}")
    return " ".join(allowed.split())[:128]


def _plain(value: Any) -> Any:
    """A JSON round trip: plain dicts, lists and numbers for the YAML."""
    return json.loads(json.dumps(value, default=str))
