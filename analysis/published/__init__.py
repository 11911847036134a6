"""The papers' published numbers, as data: ``<paper>.yaml`` beside this file, one block per table.

Each file names its seed text (``seed:``); each block holds the table's caption (``table:``), the
table's own settings (dataset, batch size, ...) and ``rows``: one record per printed row, with the
row's key fields (our sweep row label, or the setting it prints) and its values as printed.
``table(paper, key)`` returns one block; the report functions in ``harness_analysis`` read nothing else.
A user's sweep may keep its paper's values in a file of the same shape beside it (the sweep's ``published:``,
harness.plugins): ``table(paper, key)`` reads that file for that paper, so a plugin's builder reads it the same way.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from harness.errors import ConfigError
from harness.plugins import published_file

HERE = Path(__file__).resolve().parent


def load(paper: str) -> dict:
    """The whole ``<paper>.yaml``, or the file a sweep's ``published:`` named for ``paper``."""
    path = published_file(paper) or HERE / f"{paper}.yaml"
    if not path.is_file():
        raise ConfigError("published", paper, "a paper with a file in analysis/published ("
                          + ", ".join(sorted(p.stem for p in HERE.glob("*.yaml")))
                          + ") or a published: file its sweep names")
    return _read(path)


@lru_cache(maxsize=None)
def _read(path: Path) -> dict:  # cached: reports read it many times
    with open(path) as f:
        return yaml.safe_load(f) or {}


def table(paper: str, key: str) -> dict:
    """One published table of ``paper``; a ConfigError listing the tables when ``key`` is none of them."""
    data = load(paper)
    keys = [k for k, v in data.items() if isinstance(v, dict) and "rows" in v]
    if key not in keys:
        raise ConfigError(f"options.published ({paper})", key, "one of " + ", ".join(keys))
    return data[key]
