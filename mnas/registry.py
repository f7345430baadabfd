"""The one registry idiom: names -> objects, for models, search spaces, controllers and evaluators.

An entry is the object itself or a lazy "module:attribute" string, imported on first use, so that listing the
names (`mnas models`, `--help`) never imports TensorFlow. Names are case-insensitive; an unknown one is one
`UnknownNameError` line listing the known ones. Core-pure: it imports nothing of the project but the errors.
(Devices are not named but addressed: `host`, HOST:PORT, a serial; `devices.registry` parses those.)
"""

from __future__ import annotations

import importlib
from typing import Generic, Iterator, TypeVar

from mnas.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entries: dict[str, T | str] | None = None) -> None:
        self.kind = kind  # "search space", "controller", ...: the word in the error line
        self._entries: dict[str, T | str] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    def register(self, name: str, target: T | str) -> None:
        self._entries[name.lower()] = target

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return str(name).lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def key(self, name: str) -> str:
        """The registered name for `name`, or one UnknownNameError line."""
        key = str(name).lower()
        if key not in self._entries:
            raise UnknownNameError(self.kind, str(name), self.names())
        return key

    def get(self, name: str) -> T:
        key = self.key(name)
        target = self._entries[key]
        if isinstance(target, str):  # lazy: resolved once, then kept
            module, attr = target.split(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[key] = target
        return target
