"""The file ``harness export`` writes (Parquet, or CSV with a JSON file of its metadata beside it) and
``harness.runs.load_export`` reads. harness.export says which runs go in.

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

import pandas as pd

FORMAT = "harness-export/1"
METADATA_KEY = b"harness"


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


def _tuples(value):
    """JSON's lists as the tuples load_runs holds (harness.runs._hashable; not imported: runs reads files here)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


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
    out = {}
    for c, kind in kinds.items():
        col = df[c]
        if kind == "native":
            out[c] = col
            continue
        values = [math.nan if pd.isna(v) else v for v in col.astype(object)]
        if kind == "json":
            values = [v if _missing(v) else _tuples(json.loads(v)) for v in values]
        elif kind in ENCODED:  # numpy scalars back to Python's, as load_runs holds them
            values = [v if _missing(v) else {"int": int, "float": float, "bool": bool}[kind](v) for v in values]
        out[c] = pd.Series(values, index=df.index, dtype=object)
    return pd.DataFrame(out, index=df.index, columns=list(kinds))


def sweep_digests(sweeps: list) -> dict:
    return {s.name: {"file": s.path.name, "sha256": hashlib.sha256(s.path.read_bytes()).hexdigest()} for s in sweeps}


def metadata(df: pd.DataFrame, kinds: dict, sweeps: list, uri: str, history_metrics) -> dict:
    from . import __version__

    return {"format": FORMAT, "harness_version": __version__,
            "written_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "store": uri,
            "sweeps": sweep_digests(sweeps), "history_metrics": list(history_metrics), "rows": len(df),
            "columns": {c: {"kind": kinds[c], "dtype": str(df[c].dtype)} for c in df.columns}}


def write(df: pd.DataFrame, path: Path, fmt: str, sweeps: list, uri: str, history_metrics=()) -> dict:
    """Write ``df`` (harness.export.frame's) to ``path``; returns the metadata stored with it."""
    encoded, kinds = _encode(df)
    meta = metadata(df, kinds, sweeps, uri, history_metrics)
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
