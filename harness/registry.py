"""One Registry type for everything that is looked up by name (models, datasets, methods, ...).

After fvcore's Registry and timm's ``register_model``: registering a name twice is an error,
and looking up an unknown name lists the known ones.

A registry names the modules that register into it (``modules=``) and imports them on its first
lookup, so a name check fills exactly the registry it asks: the config checks list the datasets
and schedules without importing torch (their modules import none), and asking for a model imports
the model zoo only then.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Iterator

from .errors import ConfigError


class Registry:
    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind = kind  # what the names denote, used in error messages ("model", "dataset")
        self.modules = tuple(modules)  # imported on the first lookup; each registers its entries
        self._loaded = not self.modules
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

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # first: a module that looks a name up while it registers sees what is there
        try:
            for module in self.modules:
                importlib.import_module(module)
        except BaseException:
            self._loaded = False  # a failed import is raised again by the next lookup, not hidden
            raise

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._items:
            raise ConfigError(self.kind, name, "one of " + ", ".join(self.names()))
        return self._items[name]

    def meta(self, name: str) -> dict:
        self.get(name)
        return self._meta[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._items)


MODELS = Registry("model", modules=("harness.models",))
DATASETS = Registry("dataset", modules=("harness.data.specs",))  # declarations only: no torch
METHODS = Registry("method", modules=("harness.methods",))
SCHEDULES = Registry("schedule", modules=("harness.schedules",))  # no torch until a schedule is built
CONVS = Registry("conv", modules=("harness.layers",))  # replacements for nn.Conv2d: the `conv` option every model takes
