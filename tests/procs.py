"""Processes the cluster and fault-tolerance tests start: free ports, an MLflow server, Ray nodes.

Every process is started in its own session and stopped by its process group, never `ray stop`
(which would end every Ray process on the machine, the test run's own included).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# MLflow 3's server also starts a job runner and seven huey consumers for its GenAI jobs, which harness never
# uses: without it a server answers /health in less than half the time and CPU (benchmarks/RESULTS.md)
NO_SERVER_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def start(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**NO_SERVER_JOBS, **os.environ, **(env or {})})


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout_s: float = 20) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def kill_matching(text: str) -> None:
    """SIGKILL leftover processes whose command line contains ``text`` (a temp dir we own)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def mlflow_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    """A real `mlflow server` on 127.0.0.1 with a SQLite backend and a local artifact store."""
    port = free_port()
    proc = start([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
                  "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                  "--workers", "2"], tmp / "mlflow-server.log")
    uri = f"http://127.0.0.1:{port}"
    wait_http(uri + "/health", proc, tmp / "mlflow-server.log")
    return proc, uri


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout_s} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def two_node_ray():
    """A Ray head and a second node on 127.0.0.1, one CPU each, each with its own short temp dir (socket
    paths): yields ``address`` and ``temp_dirs`` (head's, worker's); both stopped by their process groups."""
    ray_bin = str(BIN / "ray")
    port = free_port()
    dirs = [Path(tempfile.mkdtemp(prefix="rh", dir="/tmp")), Path(tempfile.mkdtemp(prefix="rw", dir="/tmp"))]
    # no 30 s drain on SIGTERM at teardown; ray[default]'s client server on a free port, not the fixed
    # 10001 another Ray on this machine may hold
    env = {"RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    common = ["--num-cpus", "1", "--num-gpus", "0", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = start([ray_bin, "start", "--head", "--port", str(port), "--temp-dir", str(dirs[0]),
                  "--ray-client-server-port", str(free_port()),
                  "--include-dashboard=false", *common], dirs[0] / "start.log", env)
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"

        def status() -> subprocess.CompletedProcess:
            return subprocess.run([ray_bin, "status", "--address", address], capture_output=True, text=True,
                                  env={**os.environ, **env})

        wait_for(lambda: status().returncode == 0, 90, "the Ray head")
        nodes.append(start([ray_bin, "start", "--address", address, "--temp-dir", str(dirs[1]), *common],
                           dirs[1] / "start.log", env))
        wait_for(lambda: "2.0 CPU" in status().stdout.replace("0.0/2.0 CPU", "2.0 CPU"), 90, "the second node to join")
        yield types.SimpleNamespace(address=address, temp_dirs=dirs)
    finally:
        for node in reversed(nodes):
            stop(node)
        for d in dirs:
            kill_matching(str(d))
            shutil.rmtree(d, ignore_errors=True)


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.5):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"waited {timeout_s} s for {what}")
