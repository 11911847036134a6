"""What the end-to-end launch tests share: a small digits sweep that a signal or a failing store can land
in (about half a second an epoch on one core), the `harness` command as a subprocess, and the store's
runs and epochs as they read them."""
from __future__ import annotations

import signal
import sys

from harness import tracking

from . import procs


def digits_sweep(name: str, epochs: int, milestone: int) -> dict:
    """One row, two seeds: a signal sent while the first trial runs finds the second not started."""
    return {"name": name, "paper": "jiang",
            "artifacts": [{"id": name.replace("_", "-"), "kind": "table", "number": "0", "title": name,
                           "report": "harness_analysis.jiang:make_performance_table", "options": {"published": "4-9"}}],
            "base": {"data": {"dataset": "digits", "train_subset": 1000, "test_subset": 100, "val_size": 50},
                     "model": {"name": "resnet20"},
                     "train": {"epochs": epochs, "batch_size": 32, "milestones": [milestone]}},
            "rows": [{"label": "Re-impl.", "config": {}}], "axes": {"train.seed": [0, 1]},
            "profiles": {"paper": {}, "quick": {}, "smoke": {}}}


def harness(*args) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def start(tmp, sweep: dict, store: str, storage, log_name: str):
    """``harness run`` of ``sweep`` (written to tmp/my_sweep.yaml) at smoke, one trial at a time, into
    ``store`` as a subprocess in its own process group; (driver, common arguments, env, log path)."""
    import os

    import yaml

    sweep_file = tmp / "my_sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))
    env = {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.getcwd()}
    common = [sweep_file, "--profile", "smoke", "--storage-path", storage, "--max-concurrent", "1",
              "--tracking-uri", store]
    log = tmp / log_name
    return procs.start(harness("run", *common), log, env), common, env, log


def runs(uri: str, experiment: str) -> dict:
    """run name -> run, of the experiment (empty when it does not exist yet)."""
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in c.search_runs([exp.experiment_id])} if exp else {}


def epochs(uri: str, run) -> list:
    """The epochs a run has logged, by the metric every epoch logs."""
    return sorted(m.step for m in tracking.client(uri).get_metric_history(run.info.run_id, tracking.EPOCH_MARKER))


def resume_finishes(args: list, env: dict, log, storage, uri: str, experiment: str, n_epochs: int,
                    before: dict = None) -> dict:
    """``harness run *args --resume`` exits 0 and leaves both trials FINISHED with every epoch once; each
    run in ``before`` (name -> run) continued its own run. Returns the runs."""
    resumed = procs.start(harness("run", *args, "--resume"), log, env)
    try:
        assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        procs.stop(resumed, signal.SIGKILL)
        procs.kill_matching(str(storage))
    found = runs(uri, experiment)
    assert sorted(found) == ["Re-impl.-seed0", "Re-impl.-seed1"], sorted(found)
    assert {r.info.status for r in found.values()} == {"FINISHED"}
    for name, run in (before or {}).items():  # a stopped trial continued its own run
        assert found[name].info.run_id == run.info.run_id
    for run in found.values():
        assert epochs(uri, run) == list(range(1, n_epochs + 1))  # every epoch once
    return found
