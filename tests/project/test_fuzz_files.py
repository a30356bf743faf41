"""Random JSON (any type, deep, huge, wrong types, hostile paths) written into each project file:
`nta status` and `nta doctor --check` always answer, in one line per message, never a traceback
(issue 10, finding 5)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from napari_training_assistant.cli.main import main
from napari_training_assistant.project import TrainingProject
from napari_training_assistant.project.layout import ProjectLayout

LAYOUT_FILES = [
    "project_config.json",
    "architecture/architecture_config.json",
    "sam3/sam3_config.json",
    "dataset/manifest.json",
    "models/model_registry.json",
    "models/starting_weights_config.json",
    "checkpoints/checkpoints.json",
    "history/training_runs.json",
    "predictions/predictions.json",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["../../outside/x.tif", "/etc/passwd", "..", "run_001", "pair_0001", "2024-01-01T00:00:00"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=25)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A project with one pair, a checkpoint record and a run record: every file has content to break."""
    import numpy as np

    root = tmp_path_factory.mktemp("fuzz") / "proj"
    project = TrainingProject.create(root, architecture={"preset": "tiny_unet"})
    rng = np.random.default_rng(0)
    project.dataset.add(rng.integers(0, 255, (16, 16), np.uint8), (rng.random((16, 16)) > 0.5).astype(np.uint8))
    checkpoint_id, path = project.checkpoints.reserve()
    path.write_bytes(b"w")
    project.checkpoints.register(checkpoint_id, architecture=project.architecture.model_dump(mode="json"), dataset_pair_ids=["pair_0001"])
    return root


def _answers(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _assert_one_line_answers(root) -> None:
    code, out, err = _answers(["status", str(root)])
    assert code in (0, 2), (code, err)
    assert "Traceback" not in out + err
    assert len(err.splitlines()) <= 1 and len(err) < 2000, err[:500]
    code, out, err = _answers(["doctor", str(root), "--check"])
    assert code in (0, 1), (code, err)
    assert "Traceback" not in out + err and err == ""
    assert all(len(line) < 2000 for line in out.splitlines())


def _mutations(data: dict, value, key_index: int) -> dict:
    """The real file with one value somewhere replaced by `value`."""
    keys = list(data)
    key = keys[key_index % len(keys)]
    data = json.loads(json.dumps(data))
    target = data[key]
    if isinstance(target, list) and target and isinstance(target[0], dict):
        inner = list(target[0])
        target[0][inner[key_index % len(inner)]] = value
    else:
        data[key] = value
    return data


@given(name=st.sampled_from(LAYOUT_FILES), value=json_values, key_index=st.integers(0, 50), whole=st.booleans())
@example(name="dataset/manifest.json", value=None, key_index=0, whole=True)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_json_in_any_project_file_gets_one_line_answers(pristine, tmp_path_factory, name, value, key_index, whole):
    root = tmp_path_factory.mktemp("case") / "proj"
    shutil.copytree(pristine, root)
    path = root / name
    original = json.loads(path.read_text())
    data = value if whole else _mutations(original, value, key_index)
    path.write_text(json.dumps(data, allow_nan=True))
    _assert_one_line_answers(root)
    shutil.rmtree(root)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        json.dumps({"pairs": ["x" * 5_000_000]}),
        "\x00\xff garbage",
        "",
    ],
    ids=["deep-list", "deep-object", "huge-value", "binary", "empty"],
)
@pytest.mark.parametrize("name", ["dataset/manifest.json", "project_config.json", "history/training_runs.json"])
def test_deep_huge_and_binary_files_get_one_line_answers(pristine, tmp_path, text, name):
    root = tmp_path / "proj"
    shutil.copytree(pristine, root)
    (root / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    _assert_one_line_answers(root)
    assert ProjectLayout(root).root == root
