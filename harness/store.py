"""The MLflow store itself: its URI (``resolve_uri``; the embedded default ``sqlite:///<cwd>/mlflow.db``),
whether it can be reached before any trial (``check_reachable``) or read without being created
(``check_readable``), and the client every call goes through. ``harness.tracking`` re-exports all of it.
``metric_histories`` reads many runs' histories of a metric: from a tracking server 100 runs a request.

A SQLite store is refused before Ray starts when this user cannot write it (SQLite's own answer, which
holds for root too: an immutable file, a read-only mount) or when its schema revision is none of this
MLflow's migrations (a newer MLflow wrote it; MLflow itself would call it out of date and advise an
upgrade that cannot succeed). An older one MLflow migrates as it opens it, or names ``mlflow db upgrade``.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .errors import ConfigError


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


STORE_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "file", "databricks", "databricks-uc", "uc")
URI_FORMAT = "sqlite:///path/to/mlflow.db or http(s)://host:port (or postgresql://, mysql://, mssql://, databricks)"


def resolve_uri(uri: Optional[str]) -> str:
    uri = uri or default_tracking_uri()
    scheme = uri.partition("://")[0].split("+")[0] if "://" in uri else uri
    if scheme not in STORE_SCHEMES or (scheme == "sqlite" and not uri[len("sqlite:///"):].strip()):
        raise ConfigError("tracking_uri", uri, URI_FORMAT)
    return uri


def _sqlite_path(uri: str) -> Optional[Path]:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _probe_server(uri: str, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
            if r.status != 200:
                raise OSError(f"HTTP {r.status}")
    except (OSError, ValueError, urllib.error.URLError) as e:
        raise ConfigError("tracking_uri", uri, f"a reachable MLflow server ({e})") from None


def _first_call(uri: str) -> None:
    """One cheap request: a store MLflow cannot open (a file that is no database, say) is bad input."""
    try:
        client(uri).search_experiments(max_results=1)
    except ConfigError:
        raise
    except Exception as e:  # MlflowException, SQLAlchemy's DatabaseError, ...: every one means this store is unusable
        path = _sqlite_path(uri)
        if path is not None and path.is_file():
            _check_schema(uri, path, older_too=True)
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ConfigError("tracking_uri", uri,
                          f"an MLflow store this machine can open ({first.strip()[:300]})") from None


def _mlflow_version() -> str:
    for dist in ("mlflow", "mlflow-skinny"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(dist)
    return "unknown"


def _migrations() -> Optional[Path]:
    """The alembic scripts this MLflow migrates its SQL stores with (found without importing mlflow)."""
    spec = importlib.util.find_spec("mlflow")
    for root in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(root) / "store" / "db_migrations"
        if (folder / "versions").is_dir():
            return folder
    return None


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset:
    """Every schema revision this MLflow's migrations define, read from the scripts' text: alembic
    would import each script, and they import mlflow (seconds, which this check runs before)."""
    folder = _migrations()
    if folder is None:
        return frozenset()
    pattern = re.compile(r"""^revision\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]""", re.M)
    return frozenset(m.group(1) for script in (folder / "versions").glob("*.py")
                     for m in pattern.finditer(script.read_text(errors="replace")))


def _schema_revisions(path: Path) -> list[str]:
    """The alembic revisions a SQLite store records ([] for a new store: no alembic_version yet)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True,
                                                timeout=5.0)) as db:
            return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error:  # no such table (a new store), or no database at all: MLflow's open says which
        return []


def _check_schema(uri: str, path: Path, older_too: bool = False) -> None:
    """ConfigError for a store at a schema revision this MLflow does not know; with ``older_too`` (once
    MLflow has refused the store) also for one it knows but has not reached, with the upgrade to run."""
    known, version = _known_revisions(), _mlflow_version()
    recorded = _schema_revisions(path)
    if not known or not recorded:
        return
    unknown = [r for r in recorded if r not in known]
    if unknown:
        raise ConfigError("tracking_uri", uri, f"a store at a schema MLflow {version} knows ({path} is at schema "
                                               f"revision {unknown[0]}, which none of its migrations define: a newer "
                                               f"MLflow's. Upgrade MLflow here, pip install -U 'mlflow>{version}', "
                                               "or use another store)")
    if older_too:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(_migrations())).get_current_head()
        if recorded != [head]:
            raise ConfigError("tracking_uri", uri, f"a store at MLflow {version}'s schema revision {head} ({path} "
                                                   f"is at {recorded[0]}, an older one: back it up, then run "
                                                   f"`mlflow db upgrade {uri}`)")


def _check_writable(uri: str, path: Path) -> None:
    """ConfigError unless this user can write the SQLite file ``path``. ``os.access`` says yes to root
    for every file; SQLite's own write, rolled back, is the honest answer (an immutable file, a
    read-only mount), and an open write transaction elsewhere (database is locked) means it is writable."""
    expected = "a SQLite store this user can write"
    if not os.access(path, os.W_OK):
        raise ConfigError("tracking_uri", uri, f"{expected} ({path} is read-only)")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=rw", uri=True,
                                                timeout=1.0, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("CREATE TABLE harness_write_probe (x)")  # BEGIN alone succeeds on a read-only file
            finally:
                if db.in_transaction:  # SQLite may have rolled back itself, after an I/O error
                    db.execute("ROLLBACK")
    except sqlite3.Error as e:
        name = getattr(e, "sqlite_errorname", "")  # Python 3.11+; the message otherwise
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(e):
            return
        read_only = name.startswith("SQLITE_READONLY") or "readonly" in str(e)
        why = "is read-only" if read_only else f"cannot be written: {e}"
        raise ConfigError("tracking_uri", uri, f"{expected} ({path} {why})") from None


def check_reachable(uri: str, timeout_s: float = 5.0, open_store: bool = True) -> None:
    """Fail before any trial when the store cannot be reached (a server down, a bad path); without
    ``open_store`` only what needs no MLflow (before Ray starts; the driver opens it while Ray starts)."""
    path = _sqlite_path(uri)
    if uri.startswith(("http://", "https://")):
        _probe_server(uri, timeout_s)
    elif path is not None:
        folder = path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError("tracking_uri", uri, f"a SQLite file in an existing writable folder ({folder})")
        if path.exists() and not path.is_file():
            raise ConfigError("tracking_uri", uri, f"a SQLite file ({path} is a folder)")
        if path.is_file() and path.stat().st_size:  # an empty file is a new database to SQLite
            with open(path, "rb") as f:
                if f.read(16) != b"SQLite format 3\x00":
                    raise ConfigError("tracking_uri", uri, f"a SQLite database ({path} is another kind of file)")
        if path.is_file():
            _check_writable(uri, path)
            _check_schema(uri, path)
    if open_store:
        _first_call(uri)


def check_readable(uri: str, timeout_s: float = 5.0) -> bool:
    """For commands that only read (list, report): False when a local store does not exist, which
    they must not create; ConfigError when it cannot be read."""
    path = _sqlite_path(uri) or (Path(uri[len("file://"):]) if uri.startswith("file://") else None)
    if uri.startswith(("http://", "https://")):
        _probe_server(uri, timeout_s)
    elif path is not None and not path.exists():
        return False
    elif path is not None and uri.startswith("sqlite:") and not path.is_file():
        raise ConfigError("tracking_uri", uri, f"a SQLite file ({path} is a folder)")
    if path is not None and uri.startswith("sqlite:"):
        _check_schema(uri, path)  # before MLflow opens it, which would add its missing tables to a newer store
    _first_call(uri)
    return True


# MLflow's client retries a failing server 7 times with backoff (minutes) and waits 120 s a request:
# right for trials riding out a blip, not for a command that only reads, which gives up in seconds.
READ_ONLY_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


@contextlib.contextmanager
def giving_up_quickly():
    """READ_ONLY_HTTP for the duration (unless the user set them), then as before."""
    added = [k for k in READ_ONLY_HTTP if k not in os.environ]
    os.environ.update({k: READ_ONLY_HTTP[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def client(uri: Optional[str] = None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolve_uri(uri))


BULK_HISTORY = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"  # the server's (its UI's) histories of runs, one metric
BULK_RUNS = 100  # run ids the server takes in one request
BULK_POINTS = 25000  # and points it returns at most: a full answer may have been cut


def metric_histories(client, uri: str, wanted: dict) -> dict:
    """``{(run_id, metric): [(step, value), ...]}`` for each run id in ``wanted[metric]``: from a tracking
    server in requests of BULK_RUNS runs, from a database store (no bulk call in MLflow's client) run by run."""
    out = {}
    for metric, run_ids in wanted.items():
        for i in range(0, len(run_ids), BULK_RUNS):
            chunk = run_ids[i:i + BULK_RUNS]
            bulk = bulk_history(uri, chunk, metric) if uri.startswith(("http://", "https://")) else None
            for run_id in chunk:
                out[run_id, metric] = (bulk.get(run_id, []) if bulk is not None else
                                       [(p.step, p.value) for p in client.get_metric_history(run_id, metric)])
    return out


def bulk_history(uri: str, run_ids: list, metric: str) -> Optional[dict]:
    """``{run_id: [(step, value), ...]}`` in one request, None where the server cannot answer it whole
    (an older server, one behind a proxy that refuses it, more points than it returns)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    try:
        response = http_request(get_default_host_creds(uri), BULK_HISTORY, "GET",
                                params={"run_id": run_ids, "metric_key": metric, "max_results": BULK_POINTS})
        points = verify_rest_response(response, BULK_HISTORY).json().get("metrics", [])
    except (MlflowException, OSError, ValueError):
        return None
    if len(points) >= BULK_POINTS:
        return None
    out: dict = {}
    for p in points:  # ordered by run, then time, step and value: each run's as get_metric_history orders it
        out.setdefault(p["run_id"], []).append((int(p["step"]), float(p["value"])))
    return out
