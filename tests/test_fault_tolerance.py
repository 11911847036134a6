"""Trials and sweeps that survive failures (issue 7): a worker killed with SIGKILL mid-epoch, a
driver killed mid-sweep, and re-runs that skip what is recorded — on real Ray and real MLflow."""
import os
import signal
import sys
import threading

import pytest
import yaml

from harness import catalog, tracking
from harness.sweep import run_sweep
from harness.train import train

from . import procs

pytestmark = pytest.mark.slow

DATA = {"dataset": "digits", "train_subset": 600, "test_subset": 100, "val_size": 50}


def _sweep_file(tmp_path, name, rows, train_cfg, model="resnet20", axes=None):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "paper": "jiang",
        "artifacts": [{"id": name, "kind": "table", "number": "0", "title": name,
                       "report": "harness_analysis.jiang:make_performance_table",
                       "options": {"published": "4-9"}}],
        "base": {"data": DATA, "model": {"name": model}, "train": train_cfg},
        "rows": rows, "axes": axes or {}, "profiles": {"paper": {}, "quick": {}, "smoke": {}}}))
    return catalog.load_sweep(path)


def _runs(uri, name):
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(name)
    return c, (c.search_runs([exp.experiment_id]) if exp else [])


def test_worker_killed_mid_epoch_resumes_to_identical_metrics(ray_session, store, tmp_path):
    train_cfg = {"epochs": 6, "batch_size": 32, "milestones": [4], "seed": 3}
    sweep = _sweep_file(tmp_path, "ft_trial", [{"label": "Re-impl.", "config": {}}], train_cfg)
    cells = sweep.cells("smoke")
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        summary=run_sweep(sweep, "smoke", cells, tracking_uri=store, max_failures=2, progress=False,
                          storage_path=str(tmp_path / "ray"))))
    thread.start()
    client, _ = _runs(store, "ft_trial")

    def after_epoch_2():
        _, runs = _runs(store, "ft_trial")
        if runs and len(client.get_metric_history(runs[0].info.run_id, "epoch_time_s")) >= 2:
            return runs[0]
    run = procs.wait_for(after_epoch_2, 300, "epoch 2 of the trial", every_s=0.1)
    pid = int(run.data.tags["worker"].rpartition(":")[2])
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)  # mid-epoch 3: no handler runs, the run is left RUNNING for now
    thread.join(timeout=600)
    summary = result["summary"]
    assert [t.status for t in summary.trials] == ["FINISHED"]

    _, runs = _runs(store, "ft_trial")
    assert len(runs) == 1  # the retry continued the same MLflow run
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["attempt"] == "2"
    for metric in ("train_loss", "val_acc", "test_acc", "epoch_time_s", "lr", "samples_seen"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, metric)) == [1, 2, 3, 4, 5, 6], metric

    uninterrupted = train(cells[0].config, threads=1)
    for key in ("train_loss", "train_acc", "val_acc", "test_acc", "test_acc5", "samples_seen"):
        assert run.data.metrics[key] == pytest.approx(uninterrupted[key], rel=1e-6, abs=1e-9), key


def _harness(*args):
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def test_driver_killed_then_resume_and_digest_skip(store, tmp_path):
    train_cfg = {"epochs": 4, "batch_size": 32, "milestones": [3]}
    rows = [{"label": f"R{i}", "config": {"train": {"seed": i}}} for i in range(4)]
    sweep = _sweep_file(tmp_path, "ft_driver", rows, train_cfg, model="digits_cnn")
    storage = tmp_path / "ray"
    common = ["--profile", "smoke", "--tracking-uri", store, "--storage-path", storage, "--quiet",
              "--max-concurrent", "1"]
    env = {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.getcwd()}
    driver = procs.start(_harness("run", sweep.path, *common), tmp_path / "driver.log", env)
    client, _ = _runs(store, "ft_driver")
    try:
        procs.wait_for(lambda: sum(r.info.status == "FINISHED" for r in _runs(store, "ft_driver")[1]) >= 2,
                       300, "two finished trials")
    finally:
        procs.stop(driver, signal.SIGKILL)  # the driver and its in-process Ray die together
    procs.kill_matching(str(storage))
    before = {r.data.tags["trial_id"]: r for r in _runs(store, "ft_driver")[1]}
    finished_before = {t for t, r in before.items() if r.info.status == "FINISHED"}
    assert len(finished_before) >= 2 and len(before) < 4 + 1

    resumed = procs.start(_harness("run", sweep.path, *common, "--resume"), tmp_path / "resume.log", env)
    assert resumed.wait(timeout=600) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    after = {r.data.tags["trial_id"]: r for r in _runs(store, "ft_driver")[1]}
    assert len(after) == 4 and {r.info.status for r in after.values()} == {"FINISHED"}
    for trial_id in before:  # no new run for a resumed trial
        assert after[trial_id].info.run_id == before[trial_id].info.run_id
    for trial_id in finished_before:  # finished trials were not run again
        assert after[trial_id].info.end_time == before[trial_id].info.end_time
        assert after[trial_id].data.tags["attempt"] == "1"
    for r in after.values():
        assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "train_loss")) == [1, 2, 3, 4]

    # a finished sweep run again skips every recorded cell; --rerun runs them anew
    again = procs.start(_harness("run", sweep.path, *common), tmp_path / "again.log", env)
    assert again.wait(timeout=300) == 0
    assert "skipped 4 cell(s)" in (tmp_path / "again.log").read_text()
    assert len(_runs(store, "ft_driver")[1]) == 4
