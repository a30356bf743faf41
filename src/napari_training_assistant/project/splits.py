"""Automatic train / val / benchmark assignment of new pairs."""

from __future__ import annotations

from collections.abc import Sequence

from .schemas import PairRecord, Split


def auto_split(existing: Sequence[PairRecord], benchmark_every: int = 5, val_fraction: float = 0.2) -> Split:
    """Split for the next pair: one pair in `benchmark_every` becomes a frozen benchmark pair once
    there are that many; of the others about `val_fraction` validate (from the second one on)."""
    total = len(existing) + 1
    benchmark = sum(p.split == "benchmark" for p in existing)
    if total >= benchmark_every and benchmark < total // benchmark_every:
        return "benchmark"
    others = [p for p in existing if p.split != "benchmark"]
    val = sum(p.split == "val" for p in others)
    if len(others) >= 1 and val < round(val_fraction * (len(others) + 1)):
        return "val"
    return "train"
