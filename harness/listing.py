"""``harness models`` and ``harness list``: what is registered and what the catalog holds, each entry with
where it comes from (``built-in``, or the plugin or sweep file that added it)."""
from __future__ import annotations

import json
from pathlib import Path

from . import shipped
from .errors import ConfigError, nearest
from .registry import BUILT_IN


def models(args) -> int:
    from . import models as zoo

    rows = [zoo.describe(n) for n in zoo.names()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
            print(f"{r['name']:<14} {r['summary']}\n{'':<14} options: {opts}\n{'':<14} from: {r['origin']}")
    return 0


def source(sweep) -> str:
    """``built-in`` for a sweep file harness ships, else the file's path; with the plugins it imports."""
    shipped_dir = shipped.builtin_sweeps_dir().resolve()
    where = BUILT_IN if sweep.path.resolve().parent == shipped_dir else str(sweep.path)
    return where + (f"; plugins: {', '.join(sweep.plugins)}" if sweep.plugins else "")


def catalog(args) -> int:
    from . import catalog as sweeps, tracking
    from .runs import count_runs

    uri = tracking.resolve_uri(args.tracking_uri)
    exists = tracking.check_readable(uri)  # a mistyped store path is not created
    every = sweeps.all_sweeps().values()
    if args.paper is not None:
        papers = sorted({s.paper for s in every})
        if args.paper not in papers:
            raise ConfigError("--paper", args.paper, "the paper of a sweep in the catalog: one of "
                              + ", ".join(papers) + nearest(args.paper, papers))
    rows = []
    for sweep in every:
        if args.paper is not None and sweep.paper != args.paper:
            continue
        n = count_runs(sweep.name, uri) if exists else 0
        for a in sweep.artifacts:
            rows.append({"id": a.id, "paper": a.paper, "kind": a.kind, "number": a.number, "title": a.title,
                         "sweep": _shown(sweep.path), "runs": n, "source": source(sweep)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            shown = "" if r["source"] == BUILT_IN else f"  [from {r['source']}]"
            print(f"{r['id']:<22} {r['paper']:<8} {r['kind']:<6} {r['number']:<5} runs={r['runs']:<4} {r['title']}{shown}")
        if not exists:
            print(f"(no store at {uri} yet: `harness run` creates it)")
    return 0


def _shown(path: Path) -> str:
    return str(path.relative_to(path.parents[1])) if len(path.parents) > 1 else str(path)
