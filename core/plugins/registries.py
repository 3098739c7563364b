"""Named registries filled through the ``register_*`` hooks (samplers, upscalers...).

The host hands each extension its own ``register`` callback, so a bad or duplicate
registration is reported with the extension's name and never replaces an earlier one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

log = logging.getLogger("easel.extensions")

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name (case-insensitive look-up), remembering who registered each."""

    def __init__(self, kind: str, item_type: type[T], key: str = "name") -> None:
        self.kind = kind
        self._type = item_type
        self._key = key
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self.problems: list[tuple[str, str]] = []  # (extension, message)

    def register_for(self, extension: str) -> Callable[[T], None]:
        def register(item: T) -> None:
            self.add(item, extension)

        return register

    def add(self, item: T, extension: str) -> bool:
        if not isinstance(item, self._type):
            return self._refuse(extension, f"expected a {self._type.__name__}, got {item!r}")
        name = getattr(item, self._key)
        if not isinstance(name, str) or not name.strip():
            return self._refuse(extension, f"a {self.kind} needs a non-empty name")
        folded = name.casefold()
        if folded in self._aliases:
            owner = self._owners[self._aliases[folded]]
            return self._refuse(extension, f"{self.kind} {name!r} is already registered by {owner!r}")
        self._items[name] = item
        self._owners[name] = extension
        self._aliases[folded] = name
        for alias in getattr(item, "aliases", ()) or ():
            self._aliases.setdefault(alias.casefold(), name)
        return True

    def _refuse(self, extension: str, message: str) -> bool:
        log.error("extension %r: %s", extension, message)
        self.problems.append((extension, message))
        return False

    def get(self, name: str) -> T | None:
        canonical = self._aliases.get(name.casefold()) if isinstance(name, str) else None
        return self._items.get(canonical) if canonical else None

    def owner(self, name: str) -> str | None:
        canonical = self._aliases.get(name.casefold())
        return self._owners.get(canonical) if canonical else None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._aliases

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)
