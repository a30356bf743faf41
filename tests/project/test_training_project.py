"""TrainingProject: create (layout, defaults, refusals), open (never creates), reopen restores everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_training_assistant.project import (
    NotAProjectError,
    ProjectError,
    ProjectFileError,
    TrainingProject,
)
from napari_training_assistant.project.layout import BENCHMARK_COLUMNS, ProjectLayout
from napari_training_assistant.project.schemas import (
    ArchitectureConfig,
    CheckpointRegistry,
    DatasetManifest,
    ModelRegistry,
    ProjectConfig,
    Sam3Config,
    StartingWeightsConfig,
    TrainingRunHistory,
    default_architecture,
)

SEED_LAYOUT = {
    "project_config.json",
    "architecture",
    "architecture/architecture_config.json",
    "sam3",
    "sam3/sam3_config.json",
    "dataset",
    "dataset/images",
    "dataset/masks",
    "dataset/manifest.json",
    "models",
    "models/imported",
    "models/model_registry.json",
    "models/starting_weights_config.json",
    "checkpoints",
    "checkpoints/checkpoints.json",
    "predictions",
    "history",
    "history/training_runs.json",
    "history/benchmark_history.csv",
    "logs",
    "logs/training.log",
}
# registries added after the seed (created with the project, listed in ProjectLayout.json_files)
POST_SEED_FILES = {"predictions/predictions.json"}
# every JSON file (and the benchmark CSV) has a `.bak` mirror of its latest write from the start
BACKUPS = {f"{name}.bak" for name in ("project_config.json", "architecture/architecture_config.json", "sam3/sam3_config.json", "dataset/manifest.json", "models/model_registry.json", "models/starting_weights_config.json", "checkpoints/checkpoints.json", "history/training_runs.json", "history/benchmark_history.csv", "predictions/predictions.json")}

SEED_DEFAULT_ARCHITECTURE = {
    "backend": "basic_unet",
    "spatial_dims": "2d",
    "preset": "standard_unet",
    "depth": 4,
    "base_channels": 32,
    "normalization": "batch",
    "upsampling": "transpose",
    "input_channels": 1,
    "output_mode": "binary",
    "num_classes": 2,
    "output_channels": 1,
    "activation": "sigmoid",
    "loss": "bce_dice",
    "threshold": 0.5,
}


def _write_fake_checkpoint(project: TrainingProject, payload: bytes = b"fake weights") -> str:
    checkpoint_id, path = project.checkpoints.reserve()
    path.write_bytes(payload)
    project.checkpoints.register(checkpoint_id, architecture=project.architecture.model_dump(mode="json"))
    return checkpoint_id


# ----------------------------------------------------------------------------- create


def test_create_makes_exactly_the_seed_layout(tmp_path, tree):
    project = TrainingProject.create(tmp_path / "p")
    found = tree(project.root)
    # besides the seed's layout only the hidden writer lock, post-seed registries and backups may exist
    assert found >= SEED_LAYOUT
    assert found - SEED_LAYOUT <= {".nta.lock"} | POST_SEED_FILES | BACKUPS
    assert {name for name in found if name.endswith(".bak")} == BACKUPS
    assert not any(name.endswith(".tmp") for name in found)
    for folder in ("dataset/images", "dataset/masks", "models/imported"):
        assert (project.root / folder).is_dir()
        assert list((project.root / folder).iterdir()) == []
    assert {p.name for p in (project.root / "predictions").iterdir()} <= {"predictions.json", "predictions.json.bak"}
    assert (project.root / "logs/training.log").read_bytes() == b""
    assert (project.root / "history/benchmark_history.csv").read_text() == ",".join(BENCHMARK_COLUMNS) + "\n"


def test_created_json_files_validate_and_carry_the_schema_version(tmp_path):
    project = TrainingProject.create(tmp_path / "p")
    layout = project.layout
    for path, schema in layout.json_files().items():
        data = json.loads(path.read_text())
        assert data["schema_version"] == schema.SCHEMA_VERSION, path
        schema.model_validate(data)
    assert project.manifest == DatasetManifest()
    assert project.checkpoints.registry == CheckpointRegistry()
    assert project.imported_models.registry == ModelRegistry()
    assert project.starting_weights == StartingWeightsConfig()
    assert project.read(layout.training_runs, TrainingRunHistory).runs == []
    assert project.sam3 == Sam3Config()


def test_create_names_the_project_and_records_creation(tmp_path):
    project = TrainingProject.create(tmp_path / "my_cells")
    config = project.config
    assert config.project_name == "my_cells"
    assert config.kind == "napari-training-assistant-project"
    assert config.class_names == ["background", "foreground"]
    assert config.created_at.tzinfo is not None
    assert config.created_with
    assert TrainingProject.create(tmp_path / "q", name="Nuclei").name == "Nuclei"


def test_default_architecture_is_the_seed_descriptor_verbatim(project):
    dumped = project.architecture.model_dump()
    assert {k: dumped[k] for k in SEED_DEFAULT_ARCHITECTURE} == SEED_DEFAULT_ARCHITECTURE
    assert set(dumped) - set(SEED_DEFAULT_ARCHITECTURE) == {"schema_version", "anisotropic_levels"}
    assert dumped["anisotropic_levels"] == []
    on_disk = json.loads(project.layout.architecture_config.read_text())
    assert {k: on_disk[k] for k in SEED_DEFAULT_ARCHITECTURE} == SEED_DEFAULT_ARCHITECTURE
    assert project.architecture == ArchitectureConfig() == default_architecture()


def test_create_refuses_an_existing_project(project):
    before = project.layout.project_config.read_bytes()
    with pytest.raises(ProjectError, match="already a Training Project Folder"):
        TrainingProject.create(project.root)
    with pytest.raises(ProjectError, match="already a Training Project Folder"):
        TrainingProject.create(project.root, allow_non_empty=True)
    assert project.layout.project_config.read_bytes() == before


def test_create_refuses_a_non_empty_folder_unless_allowed(tmp_path, tree):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ProjectError, match="not empty"):
        TrainingProject.create(folder)
    assert tree(folder) == {"notes.txt"}
    project = TrainingProject.create(folder, allow_non_empty=True)
    assert (folder / "notes.txt").read_text() == "keep me"
    assert TrainingProject.is_project(folder)
    assert tree(folder) - {".nta.lock", "notes.txt"} - POST_SEED_FILES - BACKUPS == SEED_LAYOUT
    assert project.name == "busy"


def test_create_accepts_an_existing_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert TrainingProject.is_project(TrainingProject.create(folder).root)


def test_create_refuses_a_file_path(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    with pytest.raises(ProjectError, match="is a file"):
        TrainingProject.create(target)
    assert target.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_create_refuses_an_inconsistent_architecture_and_creates_nothing(tmp_path):
    with pytest.raises(ProjectError, match="depth"):
        TrainingProject.create(tmp_path / "bad", architecture={"depth": 99})
    with pytest.raises(ProjectError, match="output_channels"):
        TrainingProject.create(tmp_path / "bad2", output_mode="binary", architecture={"output_channels": 3})
    assert list(tmp_path.iterdir()) == []


def test_create_multiclass_derives_a_consistent_architecture(tmp_path):
    project = TrainingProject.create(tmp_path / "mc", output_mode="multiclass", num_classes=4)
    arch = project.architecture
    assert (arch.output_mode, arch.num_classes, arch.output_channels) == ("multiclass", 4, 4)
    assert arch.activation == "softmax"
    assert arch.loss == "ce_dice"
    assert project.config.class_names == ["background", "class_1", "class_2", "class_3"]


def test_create_multiclass_keeps_given_class_names(tmp_path):
    names = ["background", "cell", "nucleus"]
    project = TrainingProject.create(
        tmp_path / "mc", output_mode="multiclass", num_classes=3, class_names=names
    )
    assert project.config.class_names == names
    assert project.architecture.output_channels == 3


def test_create_multilabel_derives_a_consistent_architecture(tmp_path):
    project = TrainingProject.create(
        tmp_path / "ml", output_mode="multilabel", architecture={"output_channels": 3}
    )
    arch = project.architecture
    assert (arch.output_mode, arch.output_channels, arch.activation, arch.loss) == (
        "multilabel",
        3,
        "sigmoid",
        "bce_dice",
    )
    assert project.config.class_names == ["channel_0", "channel_1", "channel_2"]


def test_create_3d_project(tmp_path):
    arch = TrainingProject.create(
        tmp_path / "vol", spatial_dims="3d", architecture={"upsampling": "bilinear"}
    ).architecture
    assert arch.spatial_dims == "3d"
    assert arch.upsampling == "trilinear"


def test_create_preset_sets_depth_and_width(tmp_path):
    arch = TrainingProject.create(tmp_path / "s", architecture={"preset": "small_unet"}).architecture
    assert (arch.preset, arch.depth, arch.base_channels) == ("small_unet", 3, 16)


# ----------------------------------------------------------------------------- open


def test_open_a_missing_folder_creates_nothing(tmp_path):
    target = tmp_path / "nope"
    with pytest.raises(NotAProjectError, match="does not exist"):
        TrainingProject.open(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_open_a_file_creates_nothing(tmp_path, tree):
    target = tmp_path / "file.json"
    target.write_text("{}")
    before = tree(tmp_path)
    with pytest.raises(NotAProjectError, match="is a file"):
        TrainingProject.open(target)
    assert tree(tmp_path) == before
    assert target.read_text() == "{}"


def test_open_a_non_project_folder_creates_nothing(tmp_path, tree):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "cells.tif").write_bytes(b"not really a tiff")
    (folder / "sub").mkdir()
    before = tree(tmp_path)
    with pytest.raises(NotAProjectError, match="not a Training Project Folder"):
        TrainingProject.open(folder)
    assert tree(tmp_path) == before
    assert not (folder / ".nta.lock").exists()
    assert not TrainingProject.is_project(folder)


def test_open_an_empty_folder_creates_nothing(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(NotAProjectError):
        TrainingProject.open(folder)
    assert list(folder.iterdir()) == []


def test_open_validates_project_config(project):
    project.layout.project_config.write_text("{ not json")
    with pytest.raises(ProjectFileError, match="project_config.json"):
        TrainingProject.open(project.root)


def test_open_accepts_str_and_path(project):
    assert TrainingProject.open(str(project.root)).name == "test project"
    assert TrainingProject.open(project.root).root == project.root
    assert "TrainingProject(" in repr(project)


# ----------------------------------------------------------------------------- reopen restores


def test_reopen_restores_the_dataset_history(project, add_pair):
    first = add_pair(project, seed=1, image_layer="img", mask_layer="lbl")
    add_pair(project, seed=2, split="benchmark")
    project.dataset.set_split(first.pair_id, "val")
    removed = add_pair(project, seed=3)
    project.dataset.remove(removed.pair_id)

    reopened = TrainingProject.open(project.root)
    manifest = reopened.manifest
    assert [p.pair_id for p in manifest.pairs] == ["pair_0001", "pair_0002"]
    assert manifest.get("pair_0001").split == "val"
    assert manifest.get("pair_0001").split_assigned_by == "user"
    assert manifest.get("pair_0001").image_layer == "img"
    assert manifest.get("pair_0002").split == "benchmark"
    assert [r.pair_id for r in manifest.removed_pairs] == ["pair_0003"]
    assert manifest.next_pair_number == 4
    assert manifest == project.manifest


def test_reopen_restores_training_settings(project):
    def change(config: ProjectConfig) -> None:
        config.training.epochs = 7
        config.training.batch_size = 3
        config.training.patch_size = [64, 64]
        config.training.learning_rate = 2e-4
        config.training.augmentation.elastic = True
        config.notes = "hello"
        config.benchmark_every = 4

    project.update_config(change)
    training = TrainingProject.open(project.root).config.training
    assert (training.epochs, training.batch_size, training.patch_size) == (7, 3, [64, 64])
    assert training.learning_rate == 2e-4
    assert training.augmentation.elastic is True
    config = TrainingProject.open(project.root).config
    assert config.notes == "hello"
    assert config.benchmark_every == 4


def test_update_config_refuses_invalid_values_and_keeps_the_file(project):
    before = project.layout.project_config.read_bytes()

    def change(config: ProjectConfig) -> None:
        config.training.epochs = 0

    with pytest.raises(ValueError, match="epochs"):
        project.update_config(change)
    assert project.layout.project_config.read_bytes() == before


def test_reopen_restores_the_architecture(project):
    arch = default_architecture(
        "2d", "binary", depth=3, base_channels=16, preset="custom", normalization="instance"
    )
    project.set_architecture(arch)
    assert TrainingProject.open(project.root).architecture == arch
    project.set_architecture({"depth": 2, "input_channels": 3})
    reopened = TrainingProject.open(project.root).architecture
    assert (reopened.depth, reopened.input_channels, reopened.base_channels) == (2, 3, 32)


def test_set_architecture_refuses_inconsistent_values(project):
    before = project.layout.architecture_config.read_bytes()
    with pytest.raises(ValueError):
        project.set_architecture(
            {"output_mode": "multiclass", "num_classes": 3}
        )  # channels / activation wrong
    assert project.layout.architecture_config.read_bytes() == before


def test_reopen_restores_the_starting_weight_choice(project):
    assert project.starting_weights.describe() == "scratch"
    project.set_starting_weights("latest")
    assert TrainingProject.open(project.root).starting_weights.describe() == "latest"
    checkpoint_id = _write_fake_checkpoint(project)
    project.set_starting_weights(f"checkpoint:{checkpoint_id}")
    choice = TrainingProject.open(project.root).starting_weights
    assert (choice.choice, choice.checkpoint_id) == ("checkpoint", checkpoint_id)
    project.set_starting_weights("scratch")
    assert TrainingProject.open(project.root).starting_weights.describe() == "scratch"


def test_set_starting_weights_to_an_imported_model(project, tmp_path):
    from types import SimpleNamespace

    source = tmp_path / "pretrained.pt"
    source.write_bytes(b"some weights")
    info = SimpleNamespace(sha256="ab" * 32, format="pt", tensors={"w": (1,)})
    model = project.imported_models.add(source, info, project.architecture.model_dump(mode="json"))
    project.set_starting_weights(f"imported:{model.model_id}")
    assert TrainingProject.open(project.root).starting_weights.describe() == f"imported:{model.model_id}"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("checkpoint:unet_run_042", "no checkpoint 'unet_run_042'"),
        ("imported:imported_009", "no imported model 'imported_009'"),
        ("checkpoint:", "not understood"),
        ("imported", "not understood"),
        ("latest:x", "not understood"),
        ("from-the-internet", "not understood"),
    ],
)
def test_set_starting_weights_refuses_unknown_targets(project, spec, message):
    project.set_starting_weights("latest")
    before = project.layout.starting_weights.read_bytes()
    with pytest.raises(ProjectError, match=message):
        project.set_starting_weights(spec)
    assert project.layout.starting_weights.read_bytes() == before
    assert TrainingProject.open(project.root).starting_weights.describe() == "latest"


def test_reopen_restores_checkpoint_history_and_latest_pointer(project):
    first = _write_fake_checkpoint(project, b"one")
    second = _write_fake_checkpoint(project, b"two")
    reopened = TrainingProject.open(project.root)
    assert [c.checkpoint_id for c in reopened.checkpoints.records] == [first, second]
    assert reopened.checkpoints.latest_id == second
    assert reopened.layout.latest_checkpoint.read_bytes() == b"two"
    assert reopened.checkpoints.latest_file_matches()


def test_reopen_restores_benchmark_history(project):
    project.history.append_benchmark(
        {"checkpoint_id": "unet_run_001", "n_images": 2, "dice": 0.5, "iou": 0.4}
    )
    project.history.append_benchmark(
        {
            "checkpoint_id": "unet_run_002",
            "parent_id": "unet_run_001",
            "n_images": 2,
            "dice": 0.75,
            "iou": 0.6,
            "dice_per_class": [0.75],
            "delta_dice": 0.25,
        }
    )
    rows = TrainingProject.open(project.root).history.benchmarks()
    assert [r["checkpoint_id"] for r in rows] == ["unet_run_001", "unet_run_002"]
    assert rows[1]["dice"] == 0.75
    assert rows[1]["n_images"] == 2
    assert rows[1]["dice_per_class"] == [0.75]
    assert rows[1]["delta_dice"] == 0.25
    assert rows[0]["parent_id"] is None
    assert TrainingProject.open(project.root).history.latest_benchmark()["checkpoint_id"] == "unet_run_002"


def test_append_benchmark_refuses_unknown_columns(project):
    before = project.layout.benchmark_history.read_bytes()
    with pytest.raises(ValueError, match="unknown benchmark columns"):
        project.history.append_benchmark({"checkpoint_id": "x", "accuracy": 1.0})
    assert project.layout.benchmark_history.read_bytes() == before


def test_reopen_restores_selected_layers(project):
    def change(config: ProjectConfig) -> None:
        config.ui.selected_layers = {"image": "raw", "mask": "labels"}
        config.ui.active_tab = "train"

    project.update_config(change)
    ui = TrainingProject.open(project.root).config.ui
    assert ui.selected_layers == {"image": "raw", "mask": "labels"}
    assert ui.active_tab == "train"


def test_reopen_restores_the_sam3_config(project):
    def change(sam3: Sam3Config) -> None:
        sam3.image_model_folder = "/models/sam3"
        sam3.prompt_mode = "2d_points"
        sam3.threshold = 0.3
        sam3.layer_names = {**sam3.layer_names, "preview": "my preview"}

    project.update_sam3(change)
    sam3 = TrainingProject.open(project.root).sam3
    assert sam3.image_model_folder == "/models/sam3"
    assert sam3.prompt_mode == "2d_points"
    assert sam3.threshold == 0.3
    assert sam3.layer_names["preview"] == "my preview"


def test_reopen_restores_training_runs(project):
    from napari_training_assistant.project.schemas import TrainingRun
    from napari_training_assistant.project.training_project import now

    run = TrainingRun(run_id="run_1", status="running", started_at=now())
    project.history.record_run(run)
    project.history.record_run(
        run.model_copy(update={"status": "completed", "checkpoint_id": "unet_run_001"})
    )
    runs = TrainingProject.open(project.root).history.runs
    assert [(r.run_id, r.status, r.checkpoint_id) for r in runs] == [("run_1", "completed", "unet_run_001")]


def test_two_handles_see_each_others_updates(project, add_pair):
    other = TrainingProject.open(project.root)
    add_pair(project)
    assert len(other.dataset) == 1
    other.update_config(lambda c: setattr(c, "notes", "from other"))
    assert project.config.notes == "from other"


def test_layout_paths_are_relative_to_the_root(tmp_path):
    layout = ProjectLayout(tmp_path)
    assert layout.relative(layout.manifest) == "dataset/manifest.json"
    assert layout.absolute("dataset/manifest.json") == layout.manifest
    assert Path(layout.relative(layout.latest_checkpoint)) == Path("checkpoints/latest.pt")


def test_benchmark_history_survives_a_missing_csv(project):
    project.layout.benchmark_history.unlink()
    assert project.history.benchmarks() == []
    assert project.history.latest_benchmark() is None
    project.history.append_benchmark({"checkpoint_id": "unet_run_001", "dice": 0.9})
    text = project.layout.benchmark_history.read_text().splitlines()
    assert text[0] == ",".join(BENCHMARK_COLUMNS)
    assert project.history.benchmarks()[0]["dice"] == 0.9


def test_training_log_appends_timestamped_lines(project):
    project.history.log("training started")
    project.history.log("training finished")
    lines = project.layout.training_log.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["training started", "training finished"]
    assert lines[0][:4].isdigit()


def test_project_status_follows_the_project_state(project, add_pair):
    from napari_training_assistant.project.status import project_status

    status = project_status(project)
    assert status["state"].startswith("empty")
    assert status["dataset_count"] == 0
    assert status["project_name"] == "test project"
    assert status["starting_weights"] == "scratch"
    assert status["architecture"]["depth"] == 4
    json.dumps(status)  # plain JSON types only
    add_pair(project)
    assert project_status(project)["state"] == "ready to train"
    checkpoint_id = _write_fake_checkpoint(project)
    status = project_status(project)
    assert (status["state"], status["latest_checkpoint"], status["checkpoint_count"]) == (
        "trained",
        checkpoint_id,
        1,
    )
    project.history.append_benchmark({"checkpoint_id": checkpoint_id, "dice": 0.7})
    project.update_config(lambda c: setattr(c.ui, "selected_layers", {"image": "raw"}))
    status = project_status(TrainingProject.open(project.root))
    assert status["state"] == "trained and benchmarked"
    assert status["latest_benchmark"]["dice"] == 0.7
    assert status["selected_layers"] == {"image": "raw"}
    assert status["split_counts"] == {"train": 1, "val": 0, "benchmark": 0}


def test_class_names_follow_a_changed_class_count(tmp_path):
    from napari_training_assistant.project.schemas import default_architecture

    project = TrainingProject.create(tmp_path / "p", class_names=["background", "nucleus"])
    project.set_architecture(default_architecture("2d", "multiclass", 4))
    assert project.config.class_names == ["background", "nucleus", "class_2", "class_3"]
    project.set_architecture(default_architecture("2d", "binary"))
    assert project.config.class_names == ["background", "nucleus"]
    project.set_architecture(default_architecture("2d", "binary", preset="small_unet"))  # same count: kept
    assert project.config.class_names == ["background", "nucleus"]


def test_the_training_mode_of_the_last_run_started_is_remembered(project):
    assert project.config.training.training_mode == "pairs"
    project.set_training_mode("point_windows")
    assert TrainingProject.open(project.root).config.training.training_mode == "point_windows"
    with pytest.raises(ValueError, match="training_mode"):
        project.set_training_mode("windows")


def test_a_point_windowed_project_is_never_called_empty(project):
    from napari_training_assistant.project.status import project_status

    project.set_training_mode("point_windows")
    assert project_status(project)["state"] == "point-windowed: train from a spec or from layers"
    _write_fake_checkpoint(project)
    assert project_status(project)["state"] == "trained on point windows"
