"""Reading a sweep file: YAML as plain data, its ``extends:`` chain merged, ``row_template`` expanded.

``read(path)`` returns the file's mapping with every parent it extends deep-merged under it (the
child's keys win, lists replace); ``template_rows(template, where)`` the rows a ``row_template``
generates. Errors are ConfigErrors naming the file and key: a key given twice in one mapping (in
this file or a parent), an unknown key (with the nearest valid one), a row label that cannot name a
trial. ``harness.catalog`` builds the sweeps.
"""
from __future__ import annotations

import itertools
import re
import unicodedata
from pathlib import Path

import yaml

from . import plugins, yamlio
from .config import deep_merge
from .errors import ConfigError, nearest

KEYS = ("name", "paper", "artifacts", "base", "rows", "row_template", "axes", "profiles", "search", "extends",
        "sweeps", "plugins", "published")
# every sweep file's profiles, the most faithful first: the paper's protocol, the same rows shorter, seconds a trial
PROFILES = ("paper", "quick", "smoke")

ROW_KEYS = ("label", "config")
TEMPLATE_KEYS = ("label", "config", "product")
LABEL_LIMIT = 100  # characters: a label names trials, run names and Tune's trial folders (with more appended)


def refuse_unknown(d: dict, valid, where: str, what: str) -> None:
    """ConfigError for the first key of ``d`` not in ``valid``: ``what`` says which keys are, and the
    nearest one is named (a misspelt key is otherwise a setting silently not applied)."""
    for key in d:
        if key not in valid:
            raise ConfigError(f"{where}.{key}", d[key], what + nearest(key, valid))


def check_label(label: str, where: str) -> None:
    """A row label names its trials (``{label}-seed0``), their MLflow runs and Tune's trial folders
    (``{trial_id}-{label}-seed0``): one that cannot be a file name would fail inside Ray, after the checks."""
    problems = [(not label, "is empty"), (len(label) > LABEL_LIMIT, f"has {len(label)} characters"),
                (label in (".", ".."), "names a folder"), ("/" in label or "\\" in label, "has a path separator"),
                (any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in label), "has a control character"),
                (label.startswith("-"), "starts with -"), (label != label.strip(), "starts or ends with a space")]
    for failed, why in problems:
        if failed:
            raise ConfigError(where, label, f"a label that can name a trial and a file: 1 to {LABEL_LIMIT} characters, "
                              f"no /, \\ or control characters, not . or .., no leading -, no leading or trailing "
                              f"space (this one {why})")


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
            d = yamlio.load(f)
    except yamlio.DuplicateKey as e:
        raise ConfigError(where + ("." if e.path[:1] not in ("", "[") else "") + e.path, e.key,
                          f"a key given once (line {e.first_line} and line {e.line})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(where, at + str(getattr(e, "problem", None) or e).strip(), "a YAML sweep file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("sweep file", str(path), f"a readable YAML file ({e})") from None
    d = typed(d or {}, dict, where, "a mapping of name, paper, artifacts, base, rows, axes, profiles")
    plain(d, where)
    refuse_unknown(d, KEYS, where, "a sweep file key: one of " + ", ".join(KEYS))
    # relative to the file that writes them, wherever it is extended from (harness.plugins)
    if isinstance(d.get("plugins"), list):
        d["plugins"] = [plugins.absolute(entry, path.parent) for entry in d["plugins"]]
    if isinstance(d.get("published"), str):
        d["published"] = str((path.parent / d["published"]).resolve())
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
    refuse_unknown(template, TEMPLATE_KEYS, where, "a row_template key: label, config or product")
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
