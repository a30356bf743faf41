"""The label map a user types ('1:1, 2:1, 5:2': source label -> training label), read once for the CLI's
`--label-map` and the Dataset tab's Label map field."""

from __future__ import annotations

from .user_input import DatasetInputError, echo

EXAMPLE = "1:1,2:1,5:2"


def parse_label_map(text: str) -> dict[int, int]:
    """'1:1, 2:1,5:2' -> {1: 1, 2: 1, 5: 2}. Blank text (or only commas) is an error, as is an item that is not
    two whole numbers around a colon: a `DatasetInputError` naming `label_map` (rendered as the caller's
    flag or field)."""
    mapping: dict[int, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = item.partition(":")
        if not sep:
            raise DatasetInputError(f"`label_map` item {echo(item)} needs a colon: write source:target pairs, e.g. {EXAMPLE}")
        try:
            mapping[int(source)] = int(target)
        except ValueError:
            raise DatasetInputError(f"`label_map` item {echo(item)} is not source:target with whole numbers, e.g. {EXAMPLE}") from None
    if not mapping:
        raise DatasetInputError(f"`label_map` is empty: write source:target pairs, e.g. {EXAMPLE} (unlisted labels become background)")
    return mapping
