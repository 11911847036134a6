"""The one place that talks to MLflow: one run per trial, one experiment per sweep.

A trial's run carries the whole resolved config as params (flattened, ``train.lr``), the tags
``artifact``, ``paper``, ``profile``, ``dataset``, ``config_digest``, ``git_sha``, ``trial_id``,
``row`` (the paper's row label), ``device`` and package versions, per-epoch metrics with
``step = epoch`` (one ``log_batch`` per epoch), the config as ``config.yaml`` and a final status:
FINISHED, FAILED (tag ``failure_reason``) or KILLED.

Embedded default store: ``sqlite:///<cwd>/mlflow.db`` (MLflow 3 refuses the ./mlruns file store);
``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` for a server.
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import yaml

from .config import flatten
from .errors import ConfigError

PARAM_BATCH = 100  # MLflow accepts at most 100 params per log_batch call
PARAM_VALUE_MAX = 6000  # and values of at most 6000 characters


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def resolve_uri(uri: Optional[str]) -> str:
    uri = uri or default_tracking_uri()
    if "://" not in uri and not uri.startswith("databricks"):
        raise ConfigError("tracking_uri", uri, "sqlite:///path/to/mlflow.db or http(s)://host:port")
    return uri


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail before any trial when the store cannot be reached (a server down, a bad path)."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
                if r.status != 200:
                    raise OSError(f"HTTP {r.status}")
        except (OSError, urllib.error.URLError) as e:
            raise ConfigError("tracking_uri", uri, f"a reachable MLflow server ({e})") from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError("tracking_uri", uri, f"a SQLite file in an existing writable folder ({folder})")
    client(uri).search_experiments(max_results=1)


def client(uri: Optional[str] = None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolve_uri(uri))


def ensure_experiment(uri: str, name: str, tags: Optional[dict] = None) -> str:
    """The sweep's experiment id, created once by the driver so trials never race to create it."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, tags=tags or {})


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_tags() -> dict:
    import mlflow
    import torch

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        ray_version = "none"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {"device": device, "torch_version": torch.__version__, "mlflow_version": mlflow.__version__,
            "ray_version": ray_version, "python_version": platform.python_version(), "host": platform.node()}


class TrialRun:
    """An MLflow run for one trial, created and finished from inside the trial."""

    def __init__(self, uri: str, experiment_id: str, run_name: str, config: dict, tags: dict):
        from mlflow.entities import Param, RunTag

        self.client = client(uri)
        self.run_id = self.client.create_run(experiment_id, run_name=run_name,
                                             tags={**tags, "mlflow.runName": run_name}).info.run_id
        params = [Param(k, _param_text(v)) for k, v in sorted(flatten(config).items())]
        for i in range(0, len(params), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + PARAM_BATCH])
        self.client.log_text(self.run_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in environment_tags().items()])

    def log_epoch(self, epoch: int, metrics: dict) -> None:
        """One request per epoch: all of its metrics at ``step = epoch``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=rows)

    def log_final(self, results: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        keys = ("params", "macs", "flops", "best_val_acc", "test_acc_at_best_val", "best_epoch", "predicted_time_ratio")
        rows = [Metric(k, float(results[k]), now, 0) for k in keys if k in results]
        self.client.log_batch(self.run_id, metrics=rows)

    def log_torch(self, obj, name: str) -> None:
        """Save ``obj`` with torch.save as the run's artifact ``name`` (plain tensors and containers)."""
        import tempfile

        import torch

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            torch.save(obj, path)
            self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str = "FINISHED", reason: Optional[str] = None) -> None:
        if reason:
            self.client.set_tag(self.run_id, "failure_reason", reason[:PARAM_VALUE_MAX])
        self.client.set_terminated(self.run_id, status=status)


def _param_text(v) -> str:
    text = "null" if v is None else str(v)
    return text[:PARAM_VALUE_MAX]
