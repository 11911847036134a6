"""``harness export (ARTIFACT|SWEEP|--all) --out FILE``: the recorded runs of a sweep, or of every sweep,
one row per (run, epoch), as ``harness.runs.load_runs(..., history=True)`` gives them; written by
harness.exportfile (whose docstring gives the columns, their kinds and the metadata).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import pandas as pd

from . import exportfile
from .errors import ConfigError


def main(args) -> int:
    from . import runs, tracking

    sweeps = targets(args.target, args.all)
    path = check_out(args.out, args.format)
    uri = tracking.resolve_uri(args.tracking_uri)
    rows = frame(sweeps, args.tracking_uri)
    if rows.empty:
        print(f"nothing exported: no recorded runs of {', '.join(s.name for s in sweeps)} in {uri}", file=sys.stderr)
        return 1
    exportfile.write(rows, path, args.format, sweeps, uri, runs.EPOCH_METRICS)
    print(f"wrote {path}: {len(rows)} rows (run x epoch) of {rows['run_id'].nunique()} runs, "
          f"{len(rows.columns)} columns" + (f"; its metadata in {path}.json" if args.format == "csv" else ""))
    return 0


def targets(target: Optional[str], every: bool) -> list:
    """The sweeps an export reads: the one ``target`` names (an artifact id, sweep name or file), or all."""
    from . import catalog

    if every == (target is not None):
        raise ConfigError("target", target, "one artifact id, sweep name or sweep file, or --all (not both)")
    if every:
        return list(catalog.all_sweeps().values())
    return [catalog.resolve(target)[0]]


def check_out(out: str, fmt: str) -> Path:
    """``--out`` as a file this process can write, before any run is read."""
    from .errors import writable_folder

    path = Path(out).expanduser()
    if path.suffix != f".{fmt}":  # load_export tells the formats apart by the name
        raise ConfigError("--out", out, f"a file named FILE.{fmt} (--format {fmt})")
    if path.is_dir():
        raise ConfigError("--out", out, f"a file path (FILE.{fmt}), not a folder")
    writable_folder("--out", path.parent)
    return path


def frame(sweeps: list, tracking_uri: Optional[str]) -> pd.DataFrame:
    """The rows of every sweep in ``sweeps`` that has runs, stacked (load_runs' frame for a single one)."""
    from . import runs

    frames = [runs.load_runs(f"{s.path}#{s.name}", tracking_uri, history=True) for s in sweeps]
    frames = [f for f in frames if not f.empty]
    if len(frames) == 1:
        return frames[0]
    if not frames:
        return pd.DataFrame()
    attrs = dict(frames[0].attrs)
    stacked = pd.concat(frames, ignore_index=True, sort=False)
    stacked.attrs = attrs
    return stacked
