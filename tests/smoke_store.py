"""One MLflow store holding the smoke runs of the sweeps that the UI and notebook tests read.

Each sweep runs once per test run (``harness run SWEEP --profile smoke`` through the CLI, on the
session's Ray) into a single SQLite store, however many test modules ask for it; the tests only
read it.
"""
from __future__ import annotations

import pytest

from harness import cli

_store: dict = {}  # "uri": the store, "folder": its folder, "sweeps": the sweeps recorded in it


def smoke_store(tmp_path_factory, sweeps) -> str:
    """The store's URI, with every sweep in ``sweeps`` (names or artifact ids) recorded at smoke."""
    if not _store:
        folder = tmp_path_factory.mktemp("smoke_store")
        _store.update(uri=f"sqlite:///{folder / 'mlflow.db'}", folder=folder, sweeps=set())
    for sweep in sweeps:
        if sweep in _store["sweeps"]:
            continue
        with pytest.MonkeyPatch.context() as mp:  # nothing lands in the caller's working directory
            mp.chdir(_store["folder"])
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)
            rc = cli.main(["run", sweep, "--profile", "smoke", "--tracking-uri", _store["uri"], "--quiet"])
        assert rc == 0, f"smoke sweep {sweep} failed"
        _store["sweeps"].add(sweep)
    return _store["uri"]
