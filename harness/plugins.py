"""A user's own code and data beside harness's: plugins, and a sweep's published values kept beside it.

A plugin is a Python module that registers into the registries harness.registry holds (models, training
methods, experiments, datasets, samplers, schedules, conv variants) with their decorators, and may define
report builders. Three ways name one, each plugin imported once per process:
  * a sweep file's ``plugins:`` list (paths relative to the sweep file), imported when the sweep is read;
  * ``--plugins a,b`` on the command line (paths relative to the working folder);
  * an installed distribution's entry point in the group ``harness.plugins``, imported on the first
    registry lookup (harness.registry.load_entry_points), in the driver and in every Ray worker alike.
An entry is a module name (imported as is), or a path to a ``.py`` file or a package folder (one with a
``/`` or ending in ``.py``), imported under its stem: ``my_models.py`` is the module ``my_models``, so a
sweep's ``report: "my_models:make_table"`` names a builder in it. A plugin that is missing or raises on
import is a ConfigError naming it and its error: exit 2, before Ray starts and before the store is written.

Every plugin loaded here travels with the trials: ``specs()`` goes in each trial's context and a worker
imports them (``load_specs``) before it builds its trial, from the same path where the file is there, else by
its module name from the copy Ray ships to every node (``runtime_env``: ``py_modules``).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

from .errors import ConfigError
from .registry import attributed

_LOADED: dict = {}  # module name -> its spec ({"entry", "module", "path"}), in the order they were loaded
_PUBLISHED: dict = {}  # paper -> the published-values file a sweep named for it (``published:``)


def is_path(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or os.sep in entry or entry.startswith(".")


def absolute(entry, base: Path):
    """A path entry made absolute against ``base`` (the sweep file's folder); a module name as it is."""
    return str((base / entry).resolve()) if isinstance(entry, str) and is_path(entry) else entry


def spec_of(entry: str, base: Path, key: str) -> dict:
    if not isinstance(entry, str) or not entry.strip():
        raise ConfigError(key, entry, "a module name, or a path to a .py file or a package folder")
    if not is_path(entry):
        return {"entry": entry, "module": entry, "path": None}
    path = (base / entry).resolve()
    if not (path.is_file() and path.suffix == ".py") and not (path / "__init__.py").is_file():
        raise ConfigError(key, entry, f"a .py file or a package folder (a folder with __init__.py): no {path}")
    return {"entry": entry, "module": path.stem if path.is_file() else path.name, "path": str(path)}


def load(entries, base: Path, key: str) -> list[dict]:
    """Import each plugin ``entries`` names (paths relative to ``base``); their specs. ConfigError
    naming the first that is missing or raises on import."""
    if not isinstance(entries, list):
        raise ConfigError(key, entries, "a list of plugins: module names, or paths to .py files or package folders")
    return [_import(spec_of(entry, base, key), key) for entry in entries]


def from_cli(text: Optional[str]) -> list[dict]:
    """``--plugins a,b``: paths relative to the working folder."""
    if not text:
        return []
    return load([t.strip() for t in text.split(",") if t.strip()], Path.cwd(), "--plugins")


def origin(spec: dict) -> str:
    return spec["path"] if spec["path"] else spec["entry"]


def _import(spec: dict, key: str) -> dict:
    name, path = spec["module"], spec["path"]
    present = sys.modules.get(name)
    if present is not None:
        where = present.__spec__.origin if present.__spec__ is not None else None
        same = path is None or (where is not None and Path(where).resolve() in (Path(path), Path(path) / "__init__.py"))
        if not same:
            raise ConfigError(key, spec["entry"], f"a plugin whose module name {name} no other module has "
                                                  f"(that is {where}); rename the file or folder")
        _LOADED.setdefault(name, spec)
        return spec
    try:
        with attributed(origin(spec)):
            if path is None:
                importlib.import_module(name)
            else:
                _exec_file(name, Path(path))
    except Exception as e:  # noqa: BLE001  (whatever the plugin raised: one line naming it)
        first = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(key, spec["entry"], f"a plugin that imports ({type(e).__name__}: {first})") from None
    _LOADED[name] = spec
    return spec


def _exec_file(name: str, path: Path) -> None:
    package = path.is_dir()
    file = path / "__init__.py" if package else path
    module_spec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=[str(path)] if package else None)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before it runs: its own imports (and pickles of its objects) find it
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def specs() -> list[dict]:
    """Every plugin this process loaded from a sweep file or --plugins: what a trial imports first."""
    return list(_LOADED.values())


def load_specs(loaded: list[dict]) -> None:
    """In a Ray worker: the driver's plugins, from the same path where this node has the file, else by
    module name from the copy Ray shipped (``runtime_env``)."""
    for spec in loaded:
        if spec["path"] is not None and not Path(spec["path"]).exists():
            spec = {**spec, "path": None}
        _import(spec, "plugins")


def runtime_env() -> dict:
    """Ray's ``runtime_env`` shipping the path plugins to every node (``py_modules``); {} when there are none."""
    paths = [spec["path"] for spec in _LOADED.values() if spec["path"] is not None]
    return {"py_modules": paths} if paths else {}


def add_argument(parser) -> None:
    parser.add_argument("--plugins", default=None, metavar="A,B",
                        help="plugins to import first: module names, or paths to .py files or package folders")


def add_published(paper: str, path: Path, key: str) -> None:
    """A sweep's ``published:`` file, for its paper's report builders (harness_analysis.published.table). The
    sweep read last names it: a report reads its artifact's sweep again just before its builder runs."""
    if not path.is_file():
        raise ConfigError(key, str(path), "a YAML file of published values (no such file)")
    _PUBLISHED[paper] = path


def published_file(paper: str) -> Optional[Path]:
    """The published-values file a sweep named for ``paper``; None when none did."""
    return _PUBLISHED.get(paper)
