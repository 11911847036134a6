"""One Registry type for everything that is looked up by name: models, datasets, samplers, training
methods, experiments, schedules and conv variants, each in a registry of its own.

After fvcore's Registry and timm's ``register_model``: registering a name twice is an error, and looking
up an unknown name raises one ConfigError naming the config key the name was given under, the name,
every registered one and the nearest (``sampler.name='flta' is not valid: expected one of flat, full,
three_stage (did you mean 'flat'?)``).

A registry names the modules that register into it (``modules=``) and imports them on its first
lookup, so a name check fills exactly the registry it asks: the config checks list the datasets,
samplers and schedules without importing torch (their modules import none), and asking for a model
imports the model zoo only then.

A registry may declare the capability flags its entries register with, and their defaults (``flags=``):
registering with any other keyword is an error (a typo would otherwise be a flag silently not set), and
``flag(name, flag)`` reads one. ``method.name`` names a training method or an experiment, so
``method_registry`` finds which, and ``method_flag`` is the one reader of a method's flags.

Each entry records where it came from (``origin``): ``built-in`` for harness's own modules, else the plugin
being imported when it registered (harness.plugins), else its module. The first lookup of any registry also
imports every installed distribution's entry point in the group ``harness.plugins`` (``load_entry_points``),
as pytest imports its ``pytest11`` plugins: a Ray worker's first lookup does the same.
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Any, Callable, Dict, Iterator, Optional

from .errors import ConfigError, nearest

ENTRY_POINT_GROUP = "harness.plugins"
BUILT_IN = "built-in"
_ATTRIBUTED: list = []  # the plugins being imported, innermost last: what their registrations record as origin
_ENTRY_POINTS = {"loaded": False}


@contextlib.contextmanager
def attributed(origin: str):
    """Entries registered inside this block record ``origin`` (a plugin's name or path)."""
    _ATTRIBUTED.append(origin)
    try:
        yield
    finally:
        _ATTRIBUTED.pop()


def load_entry_points() -> None:
    """Import every installed distribution's ``harness.plugins`` entry point, once per process; one that
    fails is a ConfigError naming it and its error (and is tried again by the next lookup)."""
    if _ENTRY_POINTS["loaded"]:
        return
    _ENTRY_POINTS["loaded"] = True  # first: a plugin that looks a name up while it registers sees what is there
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"{ep.dist.name if ep.dist else ep.value} (entry point {ep.name})"
        try:
            with attributed(origin):
                ep.load()
        except Exception as e:  # noqa: BLE001  (whatever the plugin raised: it names the plugin, not a traceback)
            _ENTRY_POINTS["loaded"] = False
            first = (str(e).strip().splitlines() or [""])[0]
            raise ConfigError(f"entry point {ENTRY_POINT_GROUP} {ep.name}", ep.value,
                              f"a plugin that imports ({type(e).__name__}: {first})") from None


class Registry:
    def __init__(self, kind: str, modules: tuple[str, ...] = (), key: Optional[str] = None,
                 flags: Optional[dict] = None):
        self.kind = kind  # what the names denote, used in error messages ("model", "dataset")
        self.key = key or kind  # the config key a name is given under ("model.name"), named by an unknown name's error
        self.modules = tuple(modules)  # imported on the first lookup; each registers its entries
        self.flags = None if flags is None else dict(flags)  # declared flags and their defaults; None: any metadata
        self._loaded = False
        self._items: Dict[str, Any] = {}
        self._meta: Dict[str, dict] = {}
        self._origin: Dict[str, str] = {}

    def register(self, name: str | None = None, **meta) -> Callable:
        """Decorator: ``@MODELS.register("resnet20", family="resnet")``."""

        def deco(obj):
            key = name or obj.__name__
            if key in self._items:
                raise KeyError(f"{self.kind} {key!r} is already registered")
            undeclared = sorted(set(meta) - set(self.flags)) if self.flags is not None else []
            if undeclared:
                raise TypeError(f"{self.kind} {key!r}: {undeclared[0]}= is not a flag of this registry "
                                f"(it declares {', '.join(self.flags) or 'none'})")
            self._items[key] = obj
            self._meta[key] = dict(meta)
            module = getattr(obj, "__module__", None) or ""
            own = module == "harness" or module.startswith(("harness.", "harness_analysis"))
            self._origin[key] = _ATTRIBUTED[-1] if _ATTRIBUTED else (BUILT_IN if own else module)
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # first: a module that looks a name up while it registers sees what is there
        try:
            for module in self.modules:
                importlib.import_module(module)
            load_entry_points()
        except BaseException:
            self._loaded = False  # a failed import is raised again by the next lookup, not hidden
            raise

    def get(self, name: str) -> Any:
        if name not in self:
            raise self.unknown(name)
        return self._items[name]

    def unknown(self, name, *alongside: "Registry") -> ConfigError:
        """The ConfigError for ``name``, registered neither here nor in ``alongside`` (registries whose
        names share this one's key): the key, the name, every registered name and the nearest."""
        registries = (self, *alongside)
        every = [n for r in registries for n in r.names()]
        if alongside:  # which kind each name is: "the training methods a, b or the experiments c, d"
            valid = " or ".join(f"the {r.kind}s {', '.join(r.names())}" for r in registries)
        else:
            valid = ", ".join(every)
        return ConfigError(self.key, name, "one of " + valid + nearest(name, every))

    def meta(self, name: str) -> dict:
        self.get(name)
        return self._meta[name]

    def origin(self, name: str) -> str:
        """Where ``name`` was registered from: ``built-in``, a plugin's name or path, or a module."""
        self.get(name)
        return self._origin[name]

    def flag(self, name: str, flag: str) -> Any:
        """The capability ``flag`` of ``name``: as it registered, else the flag's declared default."""
        if self.flags is None or flag not in self.flags:
            raise KeyError(f"the {self.kind} registry declares no flag {flag!r}")
        return self.meta(name).get(flag, self.flags[flag])

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


# harness/methods/__init__.py imports none of these: asking for a sampler (harness.methods.sampling,
# a config check) imports no torch, and asking for a method imports every method module.
METHOD_MODULES = tuple(f"harness.methods.{m}" for m in ("base", "chain", "compress", "dbs", "latency", "node_pruning",
                                                        "poellot", "pruning", "residual_pruning"))
# An experiment's capabilities, declared in its registration (a training method has every default: it
# trains model.name on data.dataset). uses_dataset=False: it reads no data.dataset, so none need be on
# disk; builds_model=False: it builds a network of its own, not model.name, so the driver builds no model.name.
EXPERIMENT_FLAGS = {"uses_dataset": True, "builds_model": True}

MODELS = Registry("model", modules=("harness.models",), key="model.name")
DATASETS = Registry("dataset", modules=("harness.data.specs",), key="data.dataset")  # declarations only: no torch
SAMPLERS = Registry("sampler", modules=("harness.methods.sampling",), key="sampler.name", flags={})  # no torch
METHODS = Registry("training method", modules=METHOD_MODULES, key="method.name", flags={})
EXPERIMENTS = Registry("experiment", modules=METHOD_MODULES, key="method.name", flags=EXPERIMENT_FLAGS)
SCHEDULES = Registry("schedule", modules=("harness.schedules",), key="train.schedule")  # no torch until one is built
# replacements for nn.Conv2d; model.conv as models.build names its options (model.options.conv in a config's checks)
CONVS = Registry("conv", modules=("harness.layers",), key="model.conv")


def method_registry(name: str) -> Registry:
    """The registry ``method.name`` is found in, METHODS or EXPERIMENTS; a ConfigError listing both otherwise."""
    for registry in (METHODS, EXPERIMENTS):
        if name in registry:
            return registry
    raise METHODS.unknown(name, EXPERIMENTS)


def method_flag(name: str, flag: str) -> Any:
    """The capability ``flag`` (one of EXPERIMENT_FLAGS) of the method ``method.name`` names: the one
    place the driver's checks read a flag from, so each is declared once, in a registration."""
    registry = method_registry(name)
    return registry.flag(name, flag) if registry is EXPERIMENTS else EXPERIMENT_FLAGS[flag]
