"""A store that fails mid-sweep is said at once and loses nothing (issue 22), for real: an `mlflow server`
killed with SIGKILL, and a SQLite store whose disk fills up. Each
asserts the console line naming the URI within 30 s of the failure, an exit status that is not 0
(75) with no traceback and no claimed status, and that ``--resume`` once the store is back records
every trial FINISHED with every epoch once. The StoreWatch thread itself is checked on a fake probe."""
import errno
import os
import re
import signal
import subprocess
import time
import types

import pytest

from harness import interrupt, tracking

from . import launches, procs

NAME = "store_failure"
EPOCHS = 8
SWEEP = launches.digits_sweep(NAME, EPOCHS, milestone=6)
FAILED_LINE = re.compile(r"the MLflow store (\S+) stopped answering or taking writes")


def _two_epochs(uri) -> bool:
    return any(len(launches.epochs(uri, r)) >= 2 for r in launches.runs(uri, NAME).values())


def _fail_mid_sweep(tmp, store, storage, fail):
    """Launch, let the first trial log two epochs, ``fail()`` the store; (exit code, output, seconds from
    the failure to the console line naming the store)."""
    driver, common, env, log = launches.start(tmp, SWEEP, store, storage, "failed.log")
    try:
        procs.wait_for(lambda: _two_epochs(store), 240, "two epochs of the first trial", every_s=0.2)
        failed_at = time.time()
        fail()
        said = procs.wait_for(lambda: FAILED_LINE.search(log.read_text()), 120, "the store failure said")
        said_after_s = time.time() - failed_at
        rc = driver.wait(timeout=180)
    finally:
        procs.stop(driver, signal.SIGKILL)
        procs.kill_matching(str(storage))
    return types.SimpleNamespace(rc=rc, out=log.read_text(), said_after_s=said_after_s, uri=said.group(1),
                                 common=common, env=env, storage=storage, tmp=tmp)


def _resume_records_every_trial(t, store):
    launches.resume_finishes(t.common, t.env, t.tmp / "resumed.log", t.storage, store, NAME, EPOCHS)


def _said_honestly(t, store):
    assert t.rc == 75, t.out[-3000:]
    assert t.uri == store
    assert t.said_after_s <= 30, t.said_after_s
    assert "Traceback" not in t.out and not re.search(r"^\w+Error\b", t.out, re.M), t.out[-3000:]
    assert "--resume" in t.out


@pytest.mark.slow
def test_mlflow_server_killed_mid_sweep_is_said_then_resume_records_every_trial(tmp_path):
    server, uri = procs.mlflow_server(tmp_path)
    port = uri.rsplit(":", 1)[1]
    try:
        t = _fail_mid_sweep(tmp_path, uri, tmp_path / "ray", lambda: procs.stop(server, signal.SIGKILL))
        _said_honestly(t, uri)
        assert "no trial's status is claimed" in t.out  # nothing to read the statuses from
        # the same server, its backend and port, back again
        server = procs.start([str(procs.BIN / "mlflow"), "server", "--backend-store-uri",
                              f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
                              str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", port, "--workers", "2"],
                             tmp_path / "mlflow-server-2.log")
        procs.wait_http(uri + "/health", server, tmp_path / "mlflow-server-2.log")
        _resume_records_every_trial(t, uri)
    finally:
        procs.stop(server, signal.SIGKILL)


@pytest.fixture
def small_disk(tmp_path):
    """A 96 MB tmpfs (root only, where mounting is allowed; skipped otherwise, saying why)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder):
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


@pytest.mark.slow
def test_full_disk_under_the_store_is_said_then_resume_records_every_trial(small_disk, tmp_path):
    store = f"sqlite:///{small_disk / 'mlflow.db'}"
    t = _fail_mid_sweep(tmp_path, store, tmp_path / "ray", lambda: _fill(small_disk))
    _said_honestly(t, store)
    for run in launches.runs(store, NAME).values():  # what the full disk let the driver close, as the store holds it
        assert re.search(rf"^  {run.info.status}\s+{re.escape(run.info.run_name)}\s", t.out, re.M), t.out[-3000:]
    (small_disk / "filler").unlink()
    _resume_records_every_trial(t, store)


def test_store_watch_says_a_failure_once_after_two_misses(capsys):
    """The watch's own logic on a fake probe: one miss is a blip, two in a row stop the launch."""
    interrupt.STOPS.reset()
    answers = iter([None, "HTTP 503", None, "refused", "refused", "refused"])
    with interrupt.StoreWatch("http://store:5000", "1", interval_s=0.01,
                              probe=lambda uri, exp, timeout: next(answers, "refused")) as watch:
        deadline = time.time() + 5
        while watch.failed is None and time.time() < deadline:
            time.sleep(0.01)
    assert watch.failed == "refused"
    assert interrupt.STOPS.reason == "store" and interrupt.STOPS.exit_code == 75
    out = capsys.readouterr().out
    assert out.count("stopped answering") == 1 and "http://store:5000" in out
    interrupt.STOPS.reset()


def test_probe_write_on_a_real_sqlite_store_and_a_dead_server(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = tracking.ensure_experiment(uri, "probe")
    assert interrupt.probe_write(uri, experiment_id) is None
    tags = tracking.client(uri).get_experiment(experiment_id).tags
    assert interrupt.HEARTBEAT_TAG in tags  # the probe is a real write
    port = procs.free_port()  # nothing listens there
    why = interrupt.probe_write(f"http://127.0.0.1:{port}", experiment_id, timeout_s=2)
    assert why is not None and "refused" in why.lower()
    assert interrupt.store_problem(f"http://127.0.0.1:{port}", timeout_s=2) is not None
    assert interrupt.store_problem(uri) is None


@pytest.mark.slow
def test_full_disk_under_store_and_tune_state_is_said_and_nothing_recorded_is_lost(small_disk, tmp_path):
    """Tune's own state on the full disk too (the audit's case): the failure is said the same way; Tune's
    last snapshot may not be continuable, and then --resume says so in one line and the same command
    without it records every trial (the cells recorded FINISHED skipped, the rest run anew)."""
    store = f"sqlite:///{small_disk / 'mlflow.db'}"
    t = _fail_mid_sweep(tmp_path, store, small_disk / "ray", lambda: _fill(small_disk))
    _said_honestly(t, store)
    (small_disk / "filler").unlink()
    resumed = subprocess.run(launches.harness("run", *t.common, "--resume"), env={**os.environ, **t.env},
                             capture_output=True, text=True, timeout=300)
    procs.kill_matching(str(t.storage))
    assert "Traceback" not in resumed.stderr + resumed.stdout, (resumed.stdout + resumed.stderr)[-3000:]
    if resumed.returncode != 0:
        assert resumed.returncode == 2 and "without --resume" in resumed.stderr, resumed.stderr[-3000:]
        again = subprocess.run(launches.harness("run", *t.common), env={**os.environ, **t.env}, capture_output=True,
                               text=True, timeout=300)
        procs.kill_matching(str(t.storage))
        assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    c = tracking.client(store)
    runs = c.search_runs([c.get_experiment_by_name(NAME).experiment_id])  # a cell run anew has two runs
    finished = sorted(r.info.run_name for r in runs if r.info.status == "FINISHED")
    assert finished == ["Re-impl.-seed0", "Re-impl.-seed1"], [(r.info.run_name, r.info.status) for r in runs]
    for run in runs:
        if run.info.status == "FINISHED":
            assert launches.epochs(store, run) == list(range(1, EPOCHS + 1))
        else:  # a run the full disk cut short stays as recorded, closed, never RUNNING
            assert run.info.status == "KILLED" and run.info.end_time
