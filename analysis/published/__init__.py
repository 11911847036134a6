"""The papers' published numbers, as data: ``<paper>.yaml`` beside this file, one block per table.

Each file names its seed text (``seed:``); each block holds the table's caption (``table:``), the
table's own settings (dataset, batch size, ...) and ``rows``: one record per printed row, with the
row's key fields (our sweep row label, or the setting it prints) and its values as printed.
``table(paper, key)`` returns one block; the report functions in ``analysis`` read nothing else.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from harness.errors import ConfigError

HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def load(paper: str) -> dict:
    """The whole ``<paper>.yaml`` (cached: reports read it many times)."""
    path = HERE / f"{paper}.yaml"
    if not path.is_file():
        raise ConfigError("published", paper, "a paper with a file in analysis/published: "
                          + ", ".join(sorted(p.stem for p in HERE.glob("*.yaml"))))
    with open(path) as f:
        return yaml.safe_load(f)


def table(paper: str, key: str) -> dict:
    """One published table of ``paper``; a ConfigError listing the tables when ``key`` is none of them."""
    data = load(paper)
    keys = [k for k, v in data.items() if isinstance(v, dict) and "rows" in v]
    if key not in keys:
        raise ConfigError(f"options.published ({paper})", key, "one of " + ", ".join(keys))
    return data[key]
