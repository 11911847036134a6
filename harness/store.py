"""The MLflow store itself: its URI (``resolve_uri``; the embedded default ``sqlite:///<cwd>/mlflow.db``),
whether it can be reached before any trial (``check_reachable``) or read without being created
(``check_readable``), and the client every call goes through. ``harness.tracking`` re-exports all of it.
"""
from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
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
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ConfigError("tracking_uri", uri,
                          f"an MLflow store this machine can open ({first.strip()[:300]})") from None


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
