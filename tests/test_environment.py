"""harness.environment: what a run ran on. A new trial run carries ``environment.json`` and the tag
``lock_digest`` in a real SQLite MLflow store (a continued run is not logged twice), ``harness env
--json`` reports the versions importlib.metadata reports, and the digest is the lock file's sha256."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from harness import cli, environment, tracking

LOCK_SHA256 = hashlib.sha256(environment.lock_path().read_bytes()).hexdigest() if environment.lock_path() else None


def _trial(uri: str, experiment: str) -> tracking.TrialRun:
    tags = {"artifact": "test-artifact", "paper": "test", "profile": "smoke", "row": "r1", "trial_id": "t1"}
    return tracking.TrialRun(uri, experiment, "r1-seed0", {"train": {"epochs": 1}}, tags)


def test_a_new_run_logs_environment_json_and_the_lock_digest(store, tmp_path):
    experiment = tracking.ensure_experiment(store, "test_environment")
    run = _trial(store, experiment)
    c = MlflowClient(tracking_uri=store)
    recorded = c.get_run(run.run_id)
    assert recorded.data.tags["lock_digest"] == LOCK_SHA256
    with open(c.download_artifacts(run.run_id, "environment.json", str(tmp_path))) as f:
        env = json.load(f)
    assert env["lock_digest"] == LOCK_SHA256 and env["torch"] == torch.__version__
    assert len(env["distributions"]) > 100  # every installed one, not a chosen few
    for name in ("torch", "mlflow", "ray", "optuna"):
        assert env["distributions"][name] == importlib.metadata.version(name), name

    _trial(store, experiment)  # a retried trial continues its run: nothing logged again
    assert [a.path for a in c.list_artifacts(run.run_id) if a.path.startswith("environment")] == ["environment.json"]


def test_harness_env_json_reports_the_installed_versions_and_the_lock_digest(capsys):
    assert cli.main(["env", "--json"]) == 0
    env = json.loads(capsys.readouterr().out)
    for name in ("torch", "mlflow", "ray", "optuna", "numpy"):
        assert env["distributions"][name] == importlib.metadata.version(name), name
    assert env["torch"] == torch.__version__
    assert env["lock_digest"] == LOCK_SHA256 and len(LOCK_SHA256) == 64
    assert ("cuda" in env) == bool(torch.version.cuda)
    if not torch.cuda.is_available():
        assert "nvidia_driver" not in env and "gpus" not in env


def test_harness_env_prints_collect_env_style_text(capsys):
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"PyTorch version: {torch.__version__}\n" in out
    assert f"Lock digest (requirements.lock sha256): {LOCK_SHA256}\n" in out
    assert f"[pip] mlflow=={importlib.metadata.version('mlflow')}\n" in out


def test_the_digest_is_the_files_sha256_and_none_without_a_lock(tmp_path):
    lock = tmp_path / "requirements.lock"
    assert environment.lock_digest(lock) == environment.NO_LOCK == "none"
    lock.write_bytes(b"torch==2.14.1 --hash=sha256:00\n")
    assert environment.lock_digest(lock) == hashlib.sha256(lock.read_bytes()).hexdigest()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_driver_cuda_and_cudnn_are_recorded():
    import pynvml

    env = environment.describe()
    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
    finally:
        pynvml.nvmlShutdown()
    assert env["nvidia_driver"] == (driver.decode() if isinstance(driver, bytes) else driver)
    assert env["cuda"] == torch.version.cuda and env["cudnn"] == torch.backends.cudnn.version()
    assert env["gpus"] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
