"""``harness export``: recorded runs as one table a program outside harness can read (Parquet, or CSV).

The rows are ``harness.runs.load_runs(target, history=True)``'s: one per (run, epoch), with the run's
columns (its MLflow attributes, tags, final metrics and counts, and every config key as ``config.<key>``)
and ``epoch`` with ``epoch.<metric>`` for each per-epoch metric. ``--all`` stacks every sweep's rows
(the ``sweep`` tag says which). ``read(path)`` (``harness.runs.load_export``) gives that frame back,
equal column for column, dtypes included.

Parquet has one type per column, and a config column of ``load_runs`` holds Python values of whatever
type its sweep gave each run (an int, a float, None, a tuple), so each object column is written as the
narrowest type that keeps every value exactly, and that choice is stored with the file:
  text    every value a string                  a string column
  int     every value an int                    int64
  float   every value a float                   float64
  bool    every value a boolean                 bool
  json    anything else (tuples, None beside    a string column of each value as JSON; read back with
          values, ints beside floats)           lists as tuples, as load_runs gives them
A missing value (a key the run does not have: NaN in load_runs) is a null in every kind. Other columns
(float metrics, the Int64 ``seed`` and ``epoch``, the start and end times) are written as pandas types them.

The file's metadata (Parquet's key ``harness``; for CSV the file ``<out>.json`` beside it) holds the
harness version, when it was written, the store it was read from, each sweep's file and its sha256,
the per-epoch metrics, and every column's kind and pandas dtype.
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pandas as pd

from .errors import ConfigError

FORMAT = "harness-export/1"
METADATA_KEY = b"harness"


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
    if path.is_dir():
        raise ConfigError("--out", out, f"a file path (FILE.{fmt}), not a folder")
    writable_folder("--out", path.parent)
    return path


def frame(sweeps: list, tracking_uri: Optional[str]) -> pd.DataFrame:
    """The rows of every sweep in ``sweeps`` that has runs, stacked (load_runs' frame for a single one)."""
    from . import runs

    frames = [runs.load_runs(str(s.path) if "#" not in s.name else s.name, tracking_uri, history=True)
              for s in sweeps]
    frames = [f for f in frames if not f.empty]
    if len(frames) == 1:
        return frames[0]
    if not frames:
        return pd.DataFrame()
    attrs = dict(frames[0].attrs)
    stacked = pd.concat(frames, ignore_index=True, sort=False)
    stacked.attrs = attrs
    return stacked


def _missing(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _kind(column: pd.Series) -> str:
    if column.dtype != object:
        return "native"
    types = {type(v) for v in column if not _missing(v)}
    for kind, python in (("text", str), ("int", int), ("float", float), ("bool", bool)):
        if types <= {python}:
            return kind
    return "json"


def _plain(value):
    """A value as JSON holds it: tuples as lists (json.dumps would do it too, but nested inside dicts)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


ENCODED = {"int": "Int64", "float": "float64", "bool": "boolean"}


def _encode(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    kinds = {c: _kind(df[c]) for c in df.columns}
    out = {}
    for c, kind in kinds.items():
        col = df[c]
        if kind == "json":
            col = pd.Series([None if _missing(v) else json.dumps(_plain(v)) for v in col], index=df.index, dtype=object)
        elif kind == "text":
            col = col.where(col.notna(), None)
        elif kind in ENCODED:
            col = col.astype(ENCODED[kind])
        out[c] = col
    return pd.DataFrame(out, index=df.index, columns=df.columns), kinds


def _decode(df: pd.DataFrame, kinds: dict) -> pd.DataFrame:
    from .runs import _hashable

    out = {}
    for c, kind in kinds.items():
        col = df[c]
        if kind == "native":
            out[c] = col
            continue
        values = [math.nan if pd.isna(v) else v for v in col.astype(object)]
        if kind == "json":
            values = [v if _missing(v) else _hashable(json.loads(v)) for v in values]
        elif kind in ENCODED:  # numpy scalars back to Python's, as load_runs holds them
            values = [v if _missing(v) else {"int": int, "float": float, "bool": bool}[kind](v) for v in values]
        out[c] = pd.Series(values, index=df.index, dtype=object)
    return pd.DataFrame(out, index=df.index, columns=list(kinds))


def sweep_digests(sweeps: list) -> dict:
    return {s.name: {"file": s.path.name, "sha256": hashlib.sha256(s.path.read_bytes()).hexdigest()} for s in sweeps}


def metadata(df: pd.DataFrame, kinds: dict, sweeps: list, uri: str) -> dict:
    from . import __version__
    from .runs import HISTORY_METRICS

    return {"format": FORMAT, "harness_version": __version__,
            "written_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "store": uri,
            "sweeps": sweep_digests(sweeps), "history_metrics": list(HISTORY_METRICS), "rows": len(df),
            "columns": {c: {"kind": kinds[c], "dtype": str(df[c].dtype)} for c in df.columns}}


def write(df: pd.DataFrame, path: Path, fmt: str, sweeps: list, uri: str) -> dict:
    """Write ``df`` (``frame``'s) to ``path``; returns the metadata stored with it."""
    encoded, kinds = _encode(df)
    meta = metadata(df, kinds, sweeps, uri)
    if fmt == "csv":
        encoded.to_csv(path, index=False)
        Path(f"{path}.json").write_text(json.dumps(meta, indent=1) + "\n")
        return meta
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(encoded, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()})
    pq.write_table(table, path)
    return meta


def read_metadata(path) -> dict:
    path = Path(path)
    if path.suffix == ".csv":
        return json.loads(Path(f"{path}.json").read_text())
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def read(path) -> pd.DataFrame:
    """An export's frame, typed as when it was written (see the module's docstring)."""
    path = Path(path)
    meta = read_metadata(path)
    columns = meta["columns"]
    kinds = {c: spec["kind"] for c, spec in columns.items()}
    if path.suffix == ".csv":
        dtypes, dates = {}, []
        for c, spec in columns.items():
            if spec["dtype"].startswith("datetime64"):
                dates.append(c)
            elif spec["kind"] in ENCODED:
                dtypes[c] = ENCODED[spec["kind"]]
            elif spec["kind"] in ("text", "json"):
                dtypes[c] = object
            else:
                dtypes[c] = spec["dtype"]
        # an empty field is a missing value; JSON never writes one, so only a text value "" reads as missing
        raw = pd.read_csv(path, dtype=dtypes, parse_dates=dates, keep_default_na=False,
                          na_values={c: [""] for c in columns})
        for c in dates:
            raw[c] = raw[c].astype(columns[c]["dtype"])
    else:
        import pyarrow.parquet as pq

        raw = pq.read_table(path).to_pandas()
    df = _decode(raw, kinds)
    df.attrs["tracking_uri"] = meta["store"]
    return df
