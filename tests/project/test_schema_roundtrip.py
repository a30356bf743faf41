"""Property tests: every project file survives save -> load unchanged, through the real storage code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from napari_training_assistant.project.schemas import (
    ArchitectureConfig,
    CheckpointRecord,
    CheckpointRegistry,
    ProjectConfig,
    StartingWeightsConfig,
    TrainingSettings,
    default_architecture,
)
from napari_training_assistant.project.storage import dump_model, parse_model

ARCH_FIELDS = st.fixed_dictionaries(
    {
        "spatial_dims": st.sampled_from(["2d", "3d"]),
        "output_mode": st.sampled_from(["binary", "multiclass", "multilabel"]),
        "num_classes": st.integers(2, 12),
        "depth": st.integers(1, 6),
        "base_channels": st.integers(1, 64),
        "normalization": st.sampled_from(["batch", "instance", "group", "none"]),
        "input_channels": st.integers(1, 8),
        "threshold": st.floats(0.01, 0.99),
    }
)

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
record_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True)  # ids become file names
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def _roundtrip(model):
    text = dump_model(model).decode()
    return parse_model(Path("x.json"), type(model), text)


@given(ARCH_FIELDS, st.data())
@settings(max_examples=80, deadline=None)
def test_architecture_roundtrip(fields, data):
    mode, dims = fields.pop("output_mode"), fields.pop("spatial_dims")
    classes = fields.pop("num_classes")
    if dims == "3d":
        fields["anisotropic_levels"] = data.draw(st.lists(st.integers(0, fields["depth"] - 1), max_size=3))
    arch = default_architecture(dims, mode, classes, **fields)
    assert _roundtrip(arch) == arch
    assert ArchitectureConfig.model_validate(arch.model_dump()) == arch


@given(
    names,
    times,
    st.integers(1, 1000),
    st.one_of(st.none(), st.lists(st.integers(8, 512), min_size=2, max_size=3)),
    st.floats(1e-6, 1.0),
    st.dictionaries(names, names, max_size=4),
)
@settings(max_examples=60, deadline=None)
def test_project_config_roundtrip(name, created, epochs, patch, lr, layers):
    config = ProjectConfig(
        project_name=name,
        created_at=created,
        training=TrainingSettings(epochs=epochs, patch_size=patch, learning_rate=lr),
    )
    config.ui.selected_layers = layers
    assert _roundtrip(config) == config


@given(
    st.lists(st.tuples(record_ids, st.floats(0, 1), st.floats(0, 1), times), max_size=5),
    st.sampled_from(["scratch", "latest"]),
)
@settings(max_examples=40, deadline=None)
def test_registry_roundtrip(rows, start):
    registry = CheckpointRegistry()
    for index, (pair, dice, iou, stamp) in enumerate(rows, start=1):
        registry.checkpoints.append(
            CheckpointRecord(
                checkpoint_id=f"unet_run_{index:03d}",
                parent_id=f"unet_run_{index - 1:03d}" if index > 1 else None,
                dataset_pair_ids=[pair],
                metrics={"dice": dice, "iou": iou},
                timestamp=stamp,
                path=f"checkpoints/unet_run_{index:03d}.pt",
                file_sha256="0" * 64,
                architecture=ArchitectureConfig().model_dump(mode="json"),
            )
        )
    registry.latest = registry.checkpoints[-1].checkpoint_id if rows else None
    assert _roundtrip(registry) == registry
    assert _roundtrip(StartingWeightsConfig(choice=start)) == StartingWeightsConfig(choice=start)
