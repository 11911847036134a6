"""Shared fixtures: one in-process Ray for the whole test run, a fresh MLflow store per test."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def run_cache_folder(tmp_path_factory):
    """harness.runcache writes under the run's own temp folder, never the user's ~/.cache/harness/runs."""
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("run_cache"))


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


@pytest.fixture
def no_ray(tmp_path, monkeypatch):
    """A working folder whose store and Tune state stay in tmp_path, and Ray behind a tripwire: a
    bad input that got past every check fails the test instead of starting Ray."""
    from harness import launcher

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HARNESS_RAY_RESULTS", str(tmp_path / "ray_results"))

    def tripwire(*args, **kwargs):
        raise AssertionError("Ray would start: this bad input got past every check")

    monkeypatch.setattr(launcher, "init_ray", tripwire)
    return tmp_path


@pytest.fixture(scope="session")
def smoke_all(ray_session, tmp_path_factory):
    """Every sweep file (but jiang_table_4_9, which test_sweep runs on its own) at its smoke profile, once
    per test run, as a user would: ``harness run`` each into one MLflow store, then ``harness report``
    each into one folder (so a report that reads another sweep's runs, as Jin's Table 2.2 does, sees
    them). Returns an object with ``store``, ``reports`` and ``rc[sweep] = (run rc, report rc)``;
    each sweep's test asserts its own codes, so one broken sweep fails only its own tests.
    """
    import types

    from harness import catalog, cli

    root = tmp_path_factory.mktemp("smoke_all")
    result = types.SimpleNamespace(store=f"sqlite:///{root / 'mlflow.db'}", reports=root / "reports", rc={})
    names = sorted(s for s in catalog.all_sweeps() if s != "jiang_table_4_9")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        runs = {name: cli.main(["run", name, "--profile", "smoke", "--tracking-uri", result.store, "--quiet"])
                for name in names}
        for name in names:
            report = cli.main(["report", name, "--tracking-uri", result.store, "--out", str(result.reports)])
            result.rc[name] = (runs[name], report)
    return result


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """A test that needs smoke_all (every sweep run and reported, minutes) is a slow test whether or not its
    module says so: `make test-fast` (-m "not slow") must never pay for it."""
    for item in items:
        if "smoke_all" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
