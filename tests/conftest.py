"""Shared fixtures: one in-process Ray for the whole test run, a fresh MLflow store per test."""
import os

import pytest


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """Ray starts once per test run (it takes seconds); stopped by ray.shutdown, never `ray stop`."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["HARNESS_RAY_RESULTS"] = str(tmp_path_factory.mktemp("ray_results"))
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A SQLite MLflow store in tmp_path; the working directory moves there too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
