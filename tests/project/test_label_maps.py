"""The label map a user types, read once for the CLI and the Dataset tab."""

from __future__ import annotations

import pytest

from napari_training_assistant.project import DatasetError
from napari_training_assistant.project.label_maps import parse_label_map


def test_pairs_of_whole_numbers():
    assert parse_label_map(" 1:1, 2:1,5:2,") == {1: 1, 2: 1, 5: 2}
    assert parse_label_map("3:0") == {3: 0}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "is empty"), (" , ,", "is empty"), ("1", "'1' needs a colon"), ("a:1", "'a:1' is not source:target"), ("1:1:1", "'1:1:1' is not")],
)
def test_empty_text_and_malformed_items_are_errors_naming_the_field(text, fragment):
    with pytest.raises(DatasetError) as info:
        parse_label_map(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert info.value.render({"label_map": "--label-map"}).startswith("--label-map ")
