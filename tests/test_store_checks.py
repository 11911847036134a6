"""harness.store's refusals of a SQLite store before any trial: one this user cannot write (SQLite's own
answer, as root too) and one whose schema a newer MLflow wrote, on real stores MLflow created."""
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import cli, store
from harness.errors import ConfigError

UNKNOWN_REVISION = "ffffffffffff"  # no MLflow's migration defines it: what a newer MLflow's store looks like here


@pytest.fixture(scope="module")
def made_by_mlflow(tmp_path_factory) -> Path:
    """A store MLflow itself created (its tables take seconds to make: once, then copied per test)."""
    path = tmp_path_factory.mktemp("made") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def fresh(made_by_mlflow, tmp_path) -> Path:
    path = tmp_path / "mlflow.db"
    shutil.copy(made_by_mlflow, path)
    return path


def _set_revision(path: Path, revision: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        db.commit()


@contextlib.contextmanager
def _immutable(path: Path):
    """The file read-only to root too (chattr +i), or the test skipped where the filesystem has no such flag."""
    made = None
    if shutil.which("chattr"):
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made is None or made.returncode != 0:
        pytest.skip(f"chattr +i is not available here ({made.stderr.strip() if made else 'no chattr'})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _refusal(uri: str, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        store.check_reachable(uri, **kw)
    assert (info.value.key, info.value.value) == ("tracking_uri", uri)
    return info.value


def test_a_store_mlflow_made_passes_and_the_write_probe_leaves_it_as_it_was(fresh):
    uri = f"sqlite:///{fresh}"
    before = fresh.read_bytes()
    store.check_reachable(uri, open_store=False)
    store.check_reachable(uri)
    assert fresh.read_bytes() == before  # the probe's write was rolled back: no table, no journal left
    assert sorted(p.name for p in fresh.parent.iterdir()) == ["mlflow.db"]


def test_a_store_another_process_is_writing_counts_as_writable(fresh):
    with contextlib.closing(sqlite3.connect(fresh, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")  # a running sweep's transaction holds the write lock
        try:
            store.check_reachable(f"sqlite:///{fresh}", open_store=False)
        finally:
            writer.execute("ROLLBACK")


def test_an_immutable_store_is_read_only_even_to_root(fresh):
    uri = f"sqlite:///{fresh}"
    with _immutable(fresh):
        assert os.access(fresh, os.W_OK) == (os.geteuid() != 0)  # what os.access cannot tell for root
        error = _refusal(uri, open_store=False)
    assert error.valid == f"a SQLite store this user can write ({fresh} is read-only)"


def test_a_store_owned_by_another_user_is_read_only_to_this_one(fresh):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the check as another user (nobody)")
    folder = Path(tempfile.mkdtemp(prefix="harness-store-"))  # pytest's tmp_path is root's alone (0700 above it)
    try:
        folder.chmod(0o777)  # nobody may write the folder (checked on its own), so only the file is refused
        path = Path(shutil.copy(fresh, folder / "mlflow.db"))
        path.chmod(0o644)  # root's file: nobody may read it, not write it
        code = ("from harness import store\n"
                "try:\n"
                f"    store.check_reachable('sqlite:///{path}', open_store=False)\n"
                "except Exception as e:\n"
                "    print(e)\n")
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        out = subprocess.run(nobody + [sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=Path(__file__).parents[1], timeout=120)
    finally:
        shutil.rmtree(folder)
    assert out.stdout.strip() == (f"tracking_uri='sqlite:///{path}' is not valid: expected a SQLite store this "
                                  f"user can write ({path} is read-only)"), out.stderr


def test_a_store_a_newer_mlflow_wrote_is_refused_naming_this_mlflow(fresh):
    import mlflow

    uri = f"sqlite:///{fresh}"
    _set_revision(fresh, UNKNOWN_REVISION)
    error = _refusal(uri, open_store=False)  # before Ray starts: no MLflow import needed
    assert f"{fresh} is at schema revision {UNKNOWN_REVISION}" in error.valid
    assert f"MLflow {mlflow.__version__}" in error.valid
    assert f"pip install -U 'mlflow>{mlflow.__version__}'" in error.valid
    assert "mlflow db upgrade" not in error.valid  # what MLflow itself advises, and it cannot succeed
    with pytest.raises(ConfigError) as info:  # list and report, which open the store with MLflow, say the same
        store.check_readable(uri)
    assert info.value.valid == error.valid


def test_a_store_at_an_older_known_revision_names_the_upgrade(fresh):
    from alembic.script import ScriptDirectory

    uri = f"sqlite:///{fresh}"
    script = ScriptDirectory(str(store._migrations()))
    head = script.get_current_head()
    older = script.get_revision(head).down_revision
    _set_revision(fresh, older)
    store.check_reachable(uri, open_store=False)  # a revision MLflow knows: MLflow decides when it opens it
    error = _refusal(uri)
    assert error.valid == (f"a store at MLflow {store._mlflow_version()}'s schema revision {head} ({fresh} is at "
                           f"{older}, an older one: back it up, then run `mlflow db upgrade {uri}`)")


@pytest.mark.parametrize("make_bad", ["newer", "immutable"])
def test_harness_run_refuses_the_store_in_one_line_before_ray_starts(fresh, tmp_path, monkeypatch, capsys, make_bad):
    import ray

    monkeypatch.chdir(tmp_path)
    started = []
    monkeypatch.setattr(ray, "init", lambda *a, **kw: started.append(a) or pytest.fail("Ray started"))
    uri = f"sqlite:///{fresh}"
    argv = ["run", "jiang-table-4-9", "--profile", "smoke", "--tracking-uri", uri]
    if make_bad == "newer":
        _set_revision(fresh, UNKNOWN_REVISION)
        rc = cli.main(argv)
    else:
        with _immutable(fresh):
            rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and not started
    assert err.count("\n") == 1 and err.startswith(f"harness: error: tracking_uri='{uri}' is not valid"), err
