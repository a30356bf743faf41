"""The images a backend has embedded, by key: the last few are kept (least recently used dropped)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import Sam3Error
from .prompts import Prompts

T = TypeVar("T")


class EmbeddingCache(Generic[T]):
    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[object, T] = OrderedDict()
        self._current: object = None

    def select(self, key: object) -> bool:
        """Make `key` current when it is cached (True); False when it must be embedded first."""
        if key not in self._items:
            return False
        self._items.move_to_end(key)
        self._current = key
        return True

    def add(self, key: object, value: T) -> None:
        self._items[key] = value
        self._current = key
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def current_for(self, prompts: Prompts) -> T:
        """The current image's embedding, for prompts that are not empty (else a `Sam3Error` saying what to do)."""
        if prompts.is_empty():
            raise Sam3Error("no prompt on this image (or slice): draw a box or click a point first")
        if self._current not in self._items:
            raise Sam3Error("no image is embedded yet: choose an image and run the preview again")
        return self._items[self._current]

    def __getitem__(self, key: object) -> T:
        return self._items[key]

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> Iterator[T]:
        return iter(self._items.values())
