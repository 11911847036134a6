"""From one machine to a cluster (issue 7): launcher configs against Ray's schema, the `ray submit`
entrypoint, a real two-node Ray cluster on loopback with a real MLflow server, and 8 concurrent
trials losing no metric row."""
import copy
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from harness import tracking
from harness.sweep import run_sweep

from . import procs
from .test_fault_tolerance import _sweep_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cluster"))
import entrypoint  # noqa: E402


@pytest.mark.parametrize("name", ["aws", "gcp", "local"])
def test_launcher_configs_pass_rays_schema_and_hold_no_secrets(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    text = (ROOT / "cluster" / f"{name}.yaml").read_text()
    config = yaml.safe_load(text)
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["file_mounts"]["~/harness"] == "."  # the project on every node
    assert any("setup_node.sh" in c for c in config["setup_commands"])
    assert any("tracking_server.sh" in c for c in config["head_start_ray_commands"])
    for secret in ("aws_secret_access_key", "AKIA", "password:", "private_key_id", "BEGIN RSA"):
        assert secret not in text


def test_tracking_server_binds_the_cluster_address_only():
    script = (ROOT / "cluster" / "tracking_server.sh").read_text()
    assert '--host "$HEAD_IP"' in script and "0.0.0.0" not in script
    assert "postgresql+psycopg2:///mlflow" in script  # local socket, peer authentication: no password


def test_entrypoint_joins_the_cluster_and_its_tracking_server():
    env = {"RAY_HEAD_IP": "10.0.0.5", "HARNESS_RAY_RESULTS": "s3://bucket/ray"}
    args = entrypoint.harness_args(["--", "run", "jiang-table-4-9", "--profile", "paper"], env)
    assert args == ["run", "jiang-table-4-9", "--profile", "paper", "--address", "auto",
                    "--tracking-uri", "http://10.0.0.5:5000", "--storage-path", "s3://bucket/ray"]
    explicit = entrypoint.harness_args(["run", "x", "--address", "ray://h:10001", "--tracking-uri", "http://t"], env)
    assert explicit.count("--address") == 1 and explicit.count("--tracking-uri") == 1
    assert entrypoint.harness_args(["list"], env) == ["list"]
    out = subprocess.run([sys.executable, str(ROOT / "cluster" / "entrypoint.py"), "--", "list", "--json",
                          "--tracking-uri", "sqlite:///" + tempfile.mkdtemp() + "/m.db"],
                         capture_output=True, text=True, check=True).stdout
    assert '"id": "jiang-table-4-9"' in out


@pytest.fixture
def two_node_cluster():
    """A Ray head and a second node on 127.0.0.1 (tests/procs.py: two_node_ray): its address."""
    with procs.two_node_ray() as cluster:
        yield cluster.address


@pytest.mark.slow
def test_sweep_trials_land_on_both_nodes_and_log_to_one_server(two_node_cluster, tmp_path):
    server, uri = procs.mlflow_server(tmp_path)
    try:
        rows = [{"label": f"R{i}", "config": {"train": {"seed": i}}} for i in range(2)]
        sweep = _sweep_file(tmp_path, "cluster_sweep", rows, {"epochs": 8, "batch_size": 32}, model="resnet20")
        driver = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(sweep.path), "--profile", "smoke", "--address",
             two_node_cluster, "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray"), "--quiet"],
            capture_output=True, text=True, timeout=600, env={**procs.os.environ, "RAY_AUTH_MODE": "disabled"})
        assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
        client = tracking.client(uri)
        runs = client.search_runs([client.get_experiment_by_name("cluster_sweep").experiment_id])
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        assert len({r.data.tags["ray_node_id"] for r in runs}) == 2  # one trial on each node
        for r in runs:
            assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "val_acc")) == list(range(1, 9))
    finally:
        procs.stop(server)


EPOCH_KEYS = ["train_loss", "train_acc", "epoch_time_s", "images_per_s", "samples_seen", "train_time_s", "lr",
              "momentum", "batch_size", "sampling_ratio", "batches", "val_acc", "test_acc", "test_acc5", "eval_time_s",
              "data_time_s", "compute_time_s"]
FINAL_KEYS = ["params", "macs", "flops", "nonzero_params", "binary_adds", "best_val_acc", "test_acc_at_best_val", "best_epoch", "predicted_time_ratio",
              "checkpoint_total_s", "log_total_s"]


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["server", "sqlite"])
def test_eight_parallel_trials_lose_no_metric_row(ray_session, tmp_path, store_kind):
    if store_kind == "server":
        server, uri = procs.mlflow_server(tmp_path)
        db = tmp_path / "server.db"
    else:  # the embedded default: SQLite written by every trial process directly
        server, db = None, tmp_path / "trials.db"
        uri = f"sqlite:///{db}"
    try:
        epochs = 2
        rows = [{"label": f"R{i}", "config": {"train": {"seed": i}}} for i in range(8)]
        sweep = _sweep_file(tmp_path, "concurrency", rows, {"epochs": epochs, "batch_size": 64}, model="digits_cnn")
        summary = run_sweep(sweep, "smoke", sweep.cells("smoke"), tracking_uri=uri, cpus_per_trial=0.25,
                            max_concurrent=8, progress=False, storage_path=str(tmp_path / "ray"))
        assert [t.status for t in summary.trials] == ["FINISHED"] * 8
        client = tracking.client(uri)
        runs = client.search_runs([client.get_experiment_by_name("concurrency").experiment_id])
        assert len(runs) == 8
        for r in runs:
            assert sorted(r.data.metrics) == sorted(EPOCH_KEYS + FINAL_KEYS)
            for key in EPOCH_KEYS:
                assert [m.step for m in client.get_metric_history(r.info.run_id, key)] == list(range(1, epochs + 1))
        with sqlite3.connect(db) as conn:  # every row written to the store
            (rows_written,) = conn.execute("SELECT COUNT(*) FROM metrics").fetchone()
        assert rows_written == 8 * (len(EPOCH_KEYS) * epochs + len(FINAL_KEYS))
    finally:
        if server is not None:
            procs.stop(server)
