"""Reading a sweep file: YAML as plain data, its ``extends:`` chain merged, ``row_template`` expanded.

``read(path)`` returns the file's mapping with every parent it extends deep-merged under it (the
child's keys win, lists replace); ``template_rows(template, where)`` the rows a ``row_template``
generates. Errors are ConfigErrors naming the file and key. ``harness.catalog`` builds the sweeps.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import yaml

from .config import deep_merge
from .errors import ConfigError

KEYS = ("name", "paper", "artifacts", "base", "rows", "row_template", "axes", "profiles", "search", "extends",
        "sweeps")


def require(d: dict, key: str, where: str):
    if key not in d:
        raise ConfigError(f"{where}.{key}", None, "a value (the key is missing)")
    return d[key]


def typed(value, kind, where: str, what: str, optional: bool = True):
    """``value`` if it is a ``kind`` (or None when ``optional``), else a ConfigError naming ``where``."""
    if (value is None and optional) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ConfigError(where, value, what)


def plain(value, where: str) -> None:
    """A sweep file holds data only: YAML's dates, sets and binary values are no config value."""
    if isinstance(value, dict):
        for k, v in value.items():
            typed(k, str, f"{where}.{k}", "a key that is a string", optional=False)
            plain(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ConfigError(where, str(value), "a number, string, boolean, list or mapping")


def read(path: Path, chain: tuple = ()) -> dict:
    """The file's mapping with its ``extends:`` chain merged under it (ConfigError naming the file)."""
    where = path.name
    try:
        with open(path) as f:
            d = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(where, at + str(getattr(e, "problem", None) or e).strip(), "a YAML sweep file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("sweep file", str(path), f"a readable YAML file ({e})") from None
    d = typed(d or {}, dict, where, "a mapping of name, paper, artifacts, base, rows, axes, profiles")
    plain(d, where)
    for key in d:
        if key not in KEYS:
            raise ConfigError(f"{where}.{key}", d[key], "a sweep file key: one of " + ", ".join(KEYS))
    parent = typed(d.pop("extends", None), str, f"{where}.extends", "a sweep file path (relative to this file)")
    if parent is None:
        return d
    target = (path.parent / parent).resolve()
    if target in chain or target == path.resolve():
        names = " -> ".join(p.name for p in (*chain, path.resolve(), target))
        raise ConfigError(f"{where}.extends", parent, f"a sweep file outside its own extends chain (a cycle: {names})")
    if not target.is_file():
        raise ConfigError(f"{where}.extends", parent, f"an existing sweep file (no {target})")
    return deep_merge(read(target, (*chain, path.resolve())), d)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _substitute(value, values: dict, where: str):
    """``value`` with "{key}" replaced: a string that is one placeholder takes the value itself (typed)."""
    if isinstance(value, dict):
        return {k: _substitute(v, values, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    for key in _PLACEHOLDER.findall(value):
        if key not in values:
            raise ConfigError(where, value, "placeholders among {" + "}, {".join(values) + "}")
    whole = _PLACEHOLDER.fullmatch(value)
    return values[whole.group(1)] if whole else _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)


def template_rows(template, where: str) -> list:
    """The rows a ``row_template`` generates, in product order (the first factor outermost)."""
    if template is None:
        return []
    template = typed(template, dict, where, "a mapping of label, config, product", optional=False)
    for key in template:
        if key not in ("label", "config", "product"):
            raise ConfigError(f"{where}.{key}", template[key], "a row_template key: label, config or product")
    typed(require(template, "label", where), str, f"{where}.label", "a string with {placeholders}", optional=False)
    product = typed(require(template, "product", where), dict, f"{where}.product",
                    "a mapping of factor: [values]", optional=False)
    factors = []
    for name, options in product.items():
        typed(options, list, f"{where}.product.{name}", "a non-empty list of values", optional=False)
        if not options:
            raise ConfigError(f"{where}.product.{name}", options, "a non-empty list of values")
        factors.append([v if isinstance(v, dict) else {name: v} for v in options])
    rows = []
    for point in itertools.product(*factors):
        values = {k: v for binding in point for k, v in binding.items()}
        rows.append(_substitute({"label": template["label"], "config": template.get("config") or {}}, values, where))
    return rows
