"""The cluster's tracking server for real (issue 24): ``cluster/tracking_server.sh`` on PostgreSQL, without
systemd. As root it runs on a dedicated Debian cluster that the fixture creates and drops (a developer's
own ``main`` cluster is never touched); 8 concurrent trials into it lose no metric row, ``harness report``
renders from it, and a server restarted mid-sweep loses nothing once the sweep is complete. As an ordinary
user (``nobody``) it runs a PostgreSQL of that user's own on a data folder it owns. Failures are one line."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import types
from pathlib import Path

import pytest
import yaml

from harness import tracking

from . import launches, procs
from .test_cluster import EPOCH_KEYS, FINAL_KEYS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "tracking_server.sh"
URL_LINE = re.compile(r"^MLflow tracking server: (http://\S+) \(backend (\S+),", re.M)


def _needs_root_and_postgresql() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root: the fixture creates and drops a PostgreSQL cluster (pg_createcluster)")
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not shutil.which("pg_createcluster") or not versions:
        pytest.skip("PostgreSQL is not installed: `make system` installs it (apt-get install postgresql)")
    return versions[-1].parts[-3]


def _script_env(**settings) -> dict:
    """The script's environment: this venv's python3 first on PATH (the script runs `python3 -m mlflow`), none
    of this shell's own PostgreSQL or server settings (a developer's PGPORT would pick another cluster)."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("PG", "HARNESS_PG", "HARNESS_MLFLOW", "HARNESS_ARTIFACTS", "RAY_HEAD_IP"))}
    return {**inherited, "PATH": f"{procs.BIN}{os.pathsep}{os.environ['PATH']}",
            "HARNESS_MLFLOW_HOST": "127.0.0.1", "HARNESS_MLFLOW_WORKERS": "2",
            **{k: str(v) for k, v in settings.items()}}


def _start(env: dict, runner: tuple = ()) -> types.SimpleNamespace:
    done = subprocess.run([*runner, "bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    url, backend = URL_LINE.search(done.stdout).groups()
    return types.SimpleNamespace(url=url, backend=backend, stdout=done.stdout)


def _stop(pidfile: Path) -> None:
    """What whoever stops the server does: TERM to the process group the PID file names (its uvicorn workers
    may outlive the leader, holding the port), until none of the group is left."""
    if not pidfile.exists():
        return
    pgid = int(pidfile.read_text())
    try:
        os.killpg(pgid, signal.SIGTERM)
        procs.wait_for(lambda: not _group_alive(pgid), 30, f"mlflow server group {pgid} to stop", every_s=0.2)
    except ProcessLookupError:
        pass
    except TimeoutError:
        os.killpg(pgid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    """A member of process group ``pgid`` that is not a zombie (a zombie holds no port and answers no signal)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    """The real script as root, for this host on loopback, on a PostgreSQL cluster of its own."""
    version = _needs_root_and_postgresql()
    tmp = tmp_path_factory.mktemp("pg")
    cluster, pgport, port = f"harnesstest{os.getpid()}", procs.free_port(), procs.free_port()
    subprocess.run(["pg_createcluster", version, cluster, "-p", str(pgport)], check=True, capture_output=True)
    env = _script_env(HARNESS_PG_CLUSTER=f"{version}/{cluster}", PGPORT=pgport, HARNESS_MLFLOW_PORT=port,
                      HARNESS_MLFLOW_PIDFILE=tmp / "mlflow.pid", HARNESS_MLFLOW_LOG=tmp / "mlflow.log",
                      HARNESS_ARTIFACTS_URI=tmp / "artifacts")
    try:
        started = _start(env)
        yield types.SimpleNamespace(uri=started.url, backend=started.backend, env=env,
                                    pidfile=tmp / "mlflow.pid", log=tmp / "mlflow.log")
    finally:
        _stop(tmp / "mlflow.pid")
        subprocess.run(["pg_dropcluster", "--stop", version, cluster], capture_output=True)


HARNESS_ENV = {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}


def _sweep_file(tmp_path: Path, sweep: dict) -> Path:
    path = tmp_path / f"{sweep['name']}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _every_epoch_once(uri: str, runs, epochs: int) -> None:
    client = tracking.client(uri)
    for run in runs:
        for key in EPOCH_KEYS:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, epochs + 1)), (run.info.run_name, key, steps)


@pytest.mark.slow
def test_eight_concurrent_trials_into_postgres_lose_no_metric_row_and_report_from_it(pg_server, tmp_path):
    import sqlalchemy

    epochs, name = 2, "pg_concurrency"
    sweep = launches.digits_sweep(name, epochs, milestone=1)
    sweep["base"]["model"]["name"] = "digits_cnn"
    sweep["base"]["data"]["train_subset"], sweep["base"]["train"]["batch_size"] = 600, 64  # Ray's start-up dominates
    sweep["rows"] = [{"label": f"R{i}", "config": {}} for i in range(4)]  # x 2 seeds: 8 trials at once
    path, storage = _sweep_file(tmp_path, sweep), tmp_path / "ray"
    try:
        run = subprocess.run(launches.harness("run", path, "--profile", "smoke", "--max-concurrent", 8,
                                              "--cpus-per-trial", 0.25, "--tracking-uri", pg_server.uri,
                                              "--storage-path", storage, "--quiet"),
                             env={**os.environ, **HARNESS_ENV}, capture_output=True, text=True, timeout=420)
    finally:
        procs.kill_matching(str(storage))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    runs = launches.runs(pg_server.uri, name).values()
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:
        assert sorted(r.data.metrics) == sorted(EPOCH_KEYS + FINAL_KEYS)
    _every_epoch_once(pg_server.uri, runs, epochs)
    engine = sqlalchemy.create_engine(pg_server.backend)  # PostgreSQL itself: every row it holds, none twice
    try:
        with engine.connect() as db:
            rows_written = db.execute(sqlalchemy.text(
                "SELECT COUNT(*) FROM metrics m JOIN runs r ON m.run_uuid = r.run_uuid WHERE r.experiment_id = "
                "(SELECT experiment_id FROM experiments WHERE name = :name)"), {"name": name}).scalar()
    finally:
        engine.dispose()
    assert rows_written == 8 * (len(EPOCH_KEYS) * epochs + len(FINAL_KEYS))

    out = tmp_path / "reports"
    report = subprocess.run(launches.harness("report", path, "--tracking-uri", pg_server.uri, "--out", out),
                            env={**os.environ, **HARNESS_ENV}, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert list(out.rglob("*.md")), sorted(out.rglob("*"))


@pytest.mark.slow
def test_a_server_restarted_mid_sweep_loses_nothing_once_the_sweep_completes(pg_server, tmp_path):
    """Stopped by its PID file and started again on the same port after the first trial's second epoch. The
    driver either rides through the gap (MLflow's client retries) or says the store failed (exit 75);
    then --resume completes it. Either way: one FINISHED run per trial, every epoch once, none RUNNING."""
    epochs, name = 4, "pg_restart"
    path, storage = _sweep_file(tmp_path, launches.digits_sweep(name, epochs, milestone=3)), tmp_path / "ray"
    common = [path, "--profile", "smoke", "--max-concurrent", 1, "--tracking-uri", pg_server.uri,
              "--storage-path", storage]

    def logged() -> int:
        return sum(len(launches.epochs(pg_server.uri, r)) for r in launches.runs(pg_server.uri, name).values())

    log = tmp_path / "driver.log"
    driver = procs.start(launches.harness("run", *common), log, HARNESS_ENV)
    try:
        procs.wait_for(lambda: logged() >= 2, 240, "two epochs of the first trial", every_s=0.2)
        assert logged() < 2 * epochs  # the restart falls mid-sweep
        stopping = time.time()
        _stop(pg_server.pidfile)
        starting = time.time()
        _start(pg_server.env)
        print(f"server stopped in {starting - stopping:.1f} s, back in {time.time() - starting:.1f} s")
        rc = driver.wait(timeout=300)
    finally:
        procs.stop(driver, signal.SIGKILL)
        procs.kill_matching(str(storage))
    out = log.read_text()
    print(f"the driver exited {rc}")
    assert rc in (0, 75), out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    if rc == 75:
        assert "--resume" in out, out[-3000:]
        resumed_log = tmp_path / "resumed.log"
        resumed = procs.start(launches.harness("run", *common, "--resume"), resumed_log, HARNESS_ENV)
        try:
            assert resumed.wait(timeout=300) == 0, resumed_log.read_text()[-3000:]
        finally:
            procs.stop(resumed, signal.SIGKILL)
            procs.kill_matching(str(storage))
    runs = launches.runs(pg_server.uri, name)
    assert sorted((n, r.info.status) for n, r in runs.items()) == [
        ("Re-impl.-seed0", "FINISHED"), ("Re-impl.-seed1", "FINISHED")], out[-3000:]
    _every_epoch_once(pg_server.uri, runs.values(), epochs)


def _imports_as(user: pwd.struct_passwd, settings: dict) -> subprocess.CompletedProcess:
    as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    return subprocess.run([*as_user, "env", *[f"{k}={v}" for k, v in settings.items()],
                           "python3", "-c", "import mlflow, psycopg2"], capture_output=True, text=True)


def _python_for(user: pwd.struct_passwd, home: Path) -> dict:
    """Settings under which ``user`` runs a python3 that imports mlflow and psycopg2: this venv's, or, where its
    interpreter lies in a folder that user cannot enter (a pyenv under /root), the system python3 of the same
    version reading this venv's packages. Skips saying why when neither works."""
    venv = {"PATH": f"{procs.BIN}{os.pathsep}{os.environ['PATH']}"}
    if _imports_as(user, venv).returncode == 0:
        return venv
    version = ".".join(map(str, sys.version_info[:2]))
    system = shutil.which(f"python{version}", path="/usr/bin:/bin")
    if not system:
        pytest.skip(f"{user.pw_name} cannot run {sys.executable}, and there is no system python{version} to run "
                    "this venv's packages with")
    wrapper = home / "bin" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {system} "$@"\n')
    wrapper.chmod(0o755)
    os.chown(wrapper.parent, user.pw_uid, user.pw_gid)
    shared = {"PATH": f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}",
              "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    done = _imports_as(user, shared)
    if done.returncode != 0:
        pytest.skip(f"{user.pw_name} cannot import mlflow and psycopg2 here: {done.stderr.strip()[-300:]}")
    return shared


@pytest.mark.slow
def test_an_ordinary_user_runs_it_on_a_postgresql_of_its_own():
    """``nobody``, without sudo: initdb + pg_ctl on a data folder it owns, a socket folder it owns, no TCP port
    for PostgreSQL; the server takes a run; the script again replaces the server it started (by its PID file)."""
    version = _needs_root_and_postgresql()
    if not shutil.which("setpriv"):
        pytest.skip("no setpriv (util-linux) to run the script as an ordinary user")
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user `nobody` to run the script as")
    # short (a unix socket path is at most 107 bytes), and in a folder nobody can enter, unlike pytest's tmp_path
    home = Path(tempfile.mkdtemp(prefix="hpg"))
    home.chmod(0o755)
    os.chown(home, user.pw_uid, user.pw_gid)
    as_user = ("setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups")
    data = home / "pgdata"
    env = {**_script_env(HARNESS_PG_DATA=data, HARNESS_MLFLOW_PORT=procs.free_port(), HARNESS_MLFLOW_WORKERS=1),
           "HOME": str(home), **_python_for(user, home)}
    try:
        first = _start(env, as_user)
        assert f"host={data}/socket" in first.backend
        assert data.stat().st_uid == user.pw_uid
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        assert Path(f"/proc/{postmaster}").stat().st_uid == user.pw_uid
        assert "listen_addresses = ''" in (data / "harness.conf").read_text()
        client = tracking.client(first.url)
        run = client.create_run(client.create_experiment("ordinary_user"))
        client.log_metric(run.info.run_id, "val_acc", 0.5, step=1)
        client.set_terminated(run.info.run_id)

        old_pid = int((home / "mlflow-server.pid").read_text())
        again = _start(env, as_user)  # the database and its role exist now; the old server is replaced
        assert not _group_alive(old_pid) and int((home / "mlflow-server.pid").read_text()) != old_pid
        assert [m.step for m in tracking.client(again.url).get_metric_history(run.info.run_id, "val_acc")] == [1]
    finally:
        _stop(home / "mlflow-server.pid")
        if (data / "postmaster.pid").exists():
            pg_ctl = Path("/usr/lib/postgresql", version, "bin", "pg_ctl")
            subprocess.run([*as_user, str(pg_ctl), "-D", str(data), "stop", "-m", "fast"], capture_output=True,
                           timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("settings,said", [
    ({"HARNESS_PG_DATA": "/tmp/harness-pgdata"}, "HARNESS_PG_DATA is for an ordinary user"),
    ({"HARNESS_PG_CLUSTER": "15"}, "HARNESS_PG_CLUSTER=15 is not VERSION/NAME"),
])
def test_a_failure_is_one_line_and_a_nonzero_exit(settings, said, tmp_path):
    # as another user HARNESS_PG_DATA is valid; root without postgresql would install it
    _needs_root_and_postgresql()
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
                          env=_script_env(HARNESS_MLFLOW_PIDFILE=tmp_path / "pid", **settings))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()] and said in done.stderr, done.stderr
    assert not (tmp_path / "pid").exists()


@pytest.mark.slow
def test_a_server_that_cannot_start_is_one_line_naming_why(pg_server, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**pg_server.env, "HARNESS_MLFLOW_PORT": str(taken.getsockname()[1]),
               "HARNESS_MLFLOW_PIDFILE": str(tmp_path / "pid"), "HARNESS_MLFLOW_LOG": str(tmp_path / "log"),
               "HARNESS_MLFLOW_WORKERS": "1"}
        done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert "address already in use" in done.stderr.lower() and str(tmp_path / "log") in done.stderr, done.stderr
    assert not (tmp_path / "pid").exists()
