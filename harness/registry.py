"""One Registry type for everything that is looked up by name (models, datasets, methods, ...).

After fvcore's Registry and timm's ``register_model``: registering a name twice is an error,
and looking up an unknown name lists the known ones.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator

from .errors import ConfigError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind  # what the names denote, used in error messages ("model", "dataset")
        self._items: Dict[str, Any] = {}
        self._meta: Dict[str, dict] = {}

    def register(self, name: str | None = None, **meta) -> Callable:
        """Decorator: ``@MODELS.register("resnet20", family="resnet")``."""

        def deco(obj):
            key = name or obj.__name__
            if key in self._items:
                raise KeyError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            self._meta[key] = dict(meta)
            return obj

        return deco

    def get(self, name: str) -> Any:
        if name not in self._items:
            raise ConfigError(self.kind, name, "one of " + ", ".join(self.names()))
        return self._items[name]

    def meta(self, name: str) -> dict:
        self.get(name)
        return self._meta[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


MODELS = Registry("model")
DATASETS = Registry("dataset")
METHODS = Registry("method")
SCHEDULES = Registry("schedule")
CONVS = Registry("conv")  # replacements for nn.Conv2d: the `conv` option every model takes
