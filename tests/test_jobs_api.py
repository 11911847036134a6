"""The README's Ray Jobs API command, for real: a local Ray head with its dashboard, `ray job submit
--working-dir <repo> -- python cluster/entrypoint.py run jiang-table-4-9 --profile smoke`, and the
runs the job leaves in MLflow (one FINISHED run per cell, val_acc for every epoch)."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import catalog, tracking

from . import procs

ROOT = Path(__file__).resolve().parents[1]
RAY = str(procs.BIN / "ray")
ARTIFACT = "jiang-table-4-9"  # the README's own example; its smoke profile is as fast as the 1-cell sweeps
CLI_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def jobs_head():
    """A Ray head with the dashboard (the Jobs API) on 127.0.0.1; yields (dashboard URL, temp dir).

    Its own short temp dir (socket paths) holds its ray_current_cluster, so a ``ray.init()`` elsewhere
    never finds this head by /tmp/ray, and nothing exports RAY_ADDRESS. Every port Ray would otherwise
    fix (6379, 8265, 10001 for the client server, 52365 for the agent) is a free one: another Ray on
    this machine must neither stop this head from starting nor receive its jobs. Stopped by its
    process group, never `ray stop`.
    """
    temp = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))
    port, dashboard, client, agent = (procs.free_port() for _ in range(4))
    # The job's entrypoint is a shell command run with the head's environment, so its `python` is
    # whatever the head's PATH finds first: the venv's only when the venv is active, as a user's is
    # after `source .venv/bin/activate`. A bare `python` here is pyenv's, without ray or torch.
    env = {"RAY_AUTH_MODE": "disabled", "PATH": f"{procs.BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           # SIGTERM would otherwise drain the node for 30 s (for Serve replicas, of which there are none)
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    log = temp / "start.log"
    head = procs.start([RAY, "start", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                        "--dashboard-port", str(dashboard), "--include-dashboard=true",
                        "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
                        "--temp-dir", str(temp / "ray"), "--num-cpus", "2", "--num-gpus", "0", "--block",
                        "--node-ip-address", "127.0.0.1", "--disable-usage-stats"], log, env)
    try:
        url = f"http://127.0.0.1:{dashboard}"
        procs.wait_http(url + "/api/version", head, log, timeout_s=60)
        yield url, temp
    finally:
        procs.stop(head)
        procs.kill_matching(str(temp))
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_readme_job_submit_runs_a_smoke_sweep_into_mlflow(jobs_head):
    url, temp = jobs_head
    db, job_id = temp / "mlflow.db", "harness-smoke"
    submit = subprocess.run(
        [RAY, "job", "submit", "--address", url, "--submission-id", job_id, "--working-dir", str(ROOT), "--",
         "python", "cluster/entrypoint.py", "run", ARTIFACT, "--profile", "smoke",
         "--tracking-uri", f"sqlite:///{db}", "--storage-path", str(temp / "ray_results")],
        capture_output=True, text=True, timeout=240, env=CLI_ENV)
    assert submit.returncode == 0, submit.stdout[-4000:] + submit.stderr[-2000:]
    status = subprocess.run([RAY, "job", "status", "--address", url, job_id], capture_output=True, text=True,
                            timeout=60, env=CLI_ENV)
    assert f"Job '{job_id}' succeeded" in status.stdout, status.stdout  # how the CLI prints SUCCEEDED

    # The upload honours .gitignore: the project's files, not .venv (GBs) or local stores.
    session = (temp / "ray" / "session_latest").resolve()  # the job's log names the real session dir
    unpacked = [p for p in session.glob("runtime_resources/working_dir_files/_ray_pkg_*") if p.is_dir()]
    assert len(unpacked) == 1, unpacked
    package = unpacked[0]
    assert (package / "cluster" / "entrypoint.py").is_file() and (package / "sweeps" / "jiang_table_4_9.yaml").is_file()
    assert not (package / ".venv").exists() and not (package / "mlflow.db").exists()
    assert sum(f.stat().st_size for f in package.rglob("*") if f.is_file()) < 20 * 2**20
    # ... and the job ran that copy (PYTHONPATH puts it first), not the head's install of the project
    assert f"{package}/sweeps/jiang_table_4_9.yaml" in submit.stdout

    sweep = catalog.resolve(ARTIFACT)[0]
    cells = sweep.cells("smoke")
    client = tracking.client(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name(sweep.name).experiment_id])
    assert len(runs) == len(cells)
    for cell in cells:
        (run,) = [r for r in runs if r.data.tags["config_digest"] == cell.digest]
        assert run.info.status == "FINISHED", (cell.name, run.data.tags.get("failure_reason"))
        epochs = cell.config["train"]["epochs"]
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_acc"))
        assert steps == list(range(1, epochs + 1)), cell.name
