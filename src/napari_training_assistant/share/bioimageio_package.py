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

from ..model.architecture_source import CALLABLE, architecture_source
from ..model.torch_export import export_onnx, export_torchscript, minimum_size, size_step
from ..preprocess.normalization import PERCENTILE_HIGH, PERCENTILE_LOW
from ..project import TrainingProject
from ..project.errors import CheckpointError
from .exportable import Exportable
from .lineage import TOOL, documentation, lineage
from .sample import project_sample, write_cover

CONFIG_KEY = "napari_training_assistant"
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
    if info.centre_marker:
        raise CheckpointError(
            f"checkpoint {record.checkpoint_id} takes a centre-marker channel per synapse: bioimage.io export covers "
            "models that segment whole images (train a point model with `training.centre_marker: false`)"
        )
    facts = lineage(project, record)
    sample = project_sample(project, source)
    files = _write_files(source, sample, facts, work)
    dims = len(size_step(source.model))
    spatial = "zyx"[-dims:]
    arch = source.model.architecture
    people = [v0_5.Author(name=name) for name in authors]
    input_axes = [
        v0_5.BatchAxis(),
        v0_5.ChannelAxis(channel_names=[v0_5.Identifier(f"channel{i}") for i in range(info.input_channels)]),
        *(
            v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=m, step=s))
            for a, m, s in zip(spatial, minimum_size(source.model), size_step(source.model), strict=True)
        ),
    ]
    output_axes = [
        v0_5.BatchAxis(),
        v0_5.ChannelAxis(channel_names=[v0_5.Identifier(n) for n in _output_names(project, arch)]),
        *(v0_5.SpaceOutputAxis(id=v0_5.AxisId(a), size=v0_5.SizeReference(tensor_id=v0_5.TensorId("input"), axis_id=v0_5.AxisId(a))) for a in spatial),
    ]
    how_to_apply = _how_to_apply(info.normalization, arch, spatial, source)
    (work / "README.md").write_text(documentation(project, record, facts, how_to_apply))
    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    state_dict = v0_5.PytorchStateDictWeightsDescr(
        source=files["state_dict"],
        architecture=v0_5.ArchitectureFromFileDescr(source=files["architecture"], callable=v0_5.Identifier(CALLABLE), kwargs=_plain(arch)),
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
        inputs=[
            v0_5.InputTensorDescr(
                id=v0_5.TensorId("input"),
                description=f"{info.input_channels}-channel {arch['spatial_dims']} image, as read (normalised by the preprocessing)",
                axes=input_axes,
                test_tensor=v0_5.FileDescr(source=files["test_input"]),
                data=v0_5.IntervalOrRatioDataDescr(type="float32"),
                preprocessing=_preprocessing(info.normalization, spatial),
            )
        ],
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


def _write_files(source: Exportable, sample: Any, facts: dict[str, Any], work: Path) -> dict[str, Any]:
    files: dict[str, Any] = {
        "state_dict": work / "weights.pt",
        "architecture": work / "unet_source.py",
        "torchscript": work / "weights_torchscript.pt",
        "onnx": work / "weights.onnx",
        "test_input": work / "test_input.npy",
        "test_output": work / "test_output.npy",
        "cover": work / "cover.png",
        "lineage": work / "lineage.json",
    }
    torch.save({k: v.detach().cpu().contiguous() for k, v in source.model.state_dict().items()}, files["state_dict"])
    files["architecture"].write_text(architecture_source())
    export_torchscript(source.model, files["torchscript"])
    files["opset"] = export_onnx(source.model, files["onnx"])
    np.save(files["test_input"], sample.raw)
    np.save(files["test_output"], sample.output)
    write_cover(sample, files["cover"])
    files["lineage"].write_text(json.dumps(facts, indent=1, default=str))
    return files


def _preprocessing(mode: str, spatial: str) -> list[Any]:
    """The checkpoint's normalisation with the spec's operations (per sample and channel, over the spatial axes)."""
    from bioimageio.spec.model import v0_5

    axes = [v0_5.AxisId(a) for a in spatial]
    ops: list[Any] = []  # the spec adds the float32 casts around them itself
    if mode in ("percentile", "region"):
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
    if arch["output_mode"] == "multiclass" and len(names) == arch["output_channels"]:
        return names
    if arch["output_mode"] == "binary" and len(names) == 2:
        return [names[1]]
    return [f"channel{i}" for i in range(arch["output_channels"])]


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


def _how_to_apply(mode: str, arch: dict[str, Any], spatial: str, source: Exportable) -> list[str]:
    steps = ", ".join(f"{a} {s}" for a, s in zip(spatial, size_step(source.model), strict=True))
    return [
        f"Normalisation ({mode}): "
        + {
            "percentile": f"per channel, the {PERCENTILE_LOW:g} and {PERCENTILE_HIGH:g} percentiles map to 0 and 1 (the package's scale_range)",
            "minmax": "per channel, minimum and maximum map to 0 and 1 (scale_range 0-100)",
            "zscore": "per channel, mean 0 and standard deviation 1 (zero_mean_unit_variance)",
            "none": "none (values cast to float32)",
            "region": f"8-bit volumes were mapped 0..255 to 0..1 in training, others by the {PERCENTILE_LOW:g} and "
            f"{PERCENTILE_HIGH:g} percentiles of the whole volume; the package applies the percentiles per input",
        }.get(mode, mode),
        f"Input sizes: multiples of {steps} (at least twice that); tile larger images with overlap.",
        f"Output: {_output_description(arch)}.",
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
