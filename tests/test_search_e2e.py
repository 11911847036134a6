"""Search sweeps end to end on real Ray Tune and a real MLflow store: seeded random search, TPE and
NSGA-II (Optuna), ASHA early stopping, cost limits before training, the parent/child run layout,
the Pareto report against a brute-force front, and a search surviving its driver's SIGKILL."""
from __future__ import annotations

import itertools
import json
import os
import signal
import sys

import pandas as pd
import pytest

from harness import runs as recorded, cli, tracking

from . import procs
from .test_search import BASE, write_search_sweep

pytestmark = pytest.mark.slow


def _children(uri: str, name: str) -> tuple[list, list]:
    """(the trial and infeasible runs, the parent runs) of experiment ``name``."""
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("search_parent") == "true"]
    return [r for r in runs if r.data.tags.get("search_parent") != "true"], parents


def _run(tmp_path, sweep_path, uri, *extra) -> int:
    return cli.main(["run", str(sweep_path), "--profile", "smoke", "--tracking-uri", uri, "--quiet",
                     "--storage-path", str(tmp_path / "ray"), *map(str, extra)])


def _epochs(client, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "epoch_time_s"))


def test_seeded_random_search_repeats_itself_and_never_trains_an_over_budget_sample(ray_session, tmp_path, capsys):
    # digits_cnn at width w costs between 152,384 (w = 0.25) and 2,379,008 MACs (w = 1): see test_search
    sweep = write_search_sweep(tmp_path, {"space": {"model.options.width": {"uniform": [0.25, 1.0]},
                                                    "train.lr": {"loguniform": [0.01, 0.2]}},
                                          "num_samples": 5, "algorithm": "random", "seed": 0,
                                          "objectives": {"val_acc": "max", "macs": "min"},
                                          "constraints": {"macs": {"max": 1000000}}},
                               base={**BASE, "train": {**BASE["train"], "epochs": 1}})
    sequences = {}
    for label, seed in (("a", 0), ("b", 0), ("c", 1)):
        uri = f"sqlite:///{tmp_path / f'{label}.db'}"
        assert _run(tmp_path, sweep.path, uri, "--search-seed", seed) == 0
        runs, parents = _children(uri, "search_test")
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parents[0].info.run_id}
        by_sample = {r.data.tags["row"]: r for r in runs}
        assert sorted(by_sample) == [f"sample{i:03d}" for i in range(1, 6)]  # every sample has one run
        sequences[label] = [by_sample[s].data.tags["sample"] for s in sorted(by_sample)]
        client = tracking.client(uri)
        # the README's filter for the UI's search box finds every run of the artifact
        exp_id = client.get_experiment_by_name("search_test").experiment_id
        found = client.search_runs([exp_id], "tags.\"artifact.search_test-pareto\" = 'true'")
        assert len(found) == len(runs) + 1  # the trials and their parent
        for r in runs:
            if r.data.tags.get("infeasible") == "true":  # recorded with its counts and reason, never trained
                assert r.data.metrics["macs"] > 1000000 and _epochs(client, r.info.run_id) == []
                assert r.data.tags["infeasible_reason"].startswith("macs=") and r.info.status == "FINISHED"
                assert float(r.data.params["model.options.width"]) > 0.25
            else:
                assert r.data.metrics["macs"] <= 1000000 and _epochs(client, r.info.run_id) == [1]
                assert r.data.tags["mlflow.source.name"] == f"{tmp_path.name}/search_test.yaml"
        path = client.download_artifacts(parents[0].info.run_id, "front.json", str(tmp_path))
        front = json.loads(open(path).read())
        assert front["objectives"] == {"val_acc": "max", "macs": "min"}
        sequences[label + "_infeasible"] = sorted(i["name"] for i in front["infeasible"])
    assert sequences["a"] == sequences["b"] and sequences["a_infeasible"] == sequences["b_infeasible"]
    assert sequences["a"] != sequences["c"]
    assert sequences["a_infeasible"]  # the seed-0 sequence samples at least one width over the budget
    out = capsys.readouterr().out
    assert "infeasible sample(s) recorded, never trained" in out and "Pareto front over val_acc (max), macs (min)" in out


def _brute_force_front(points: dict, objectives: dict) -> set:
    """Sample names no other sample dominates, comparing every pair (the test's own reference)."""
    sign = {o: (-1 if d == "max" else 1) for o, d in objectives.items()}
    front = set()
    for a, pa in points.items():
        dominated = False
        for b, pb in points.items():
            no_worse = all(sign[o] * pb[o] <= sign[o] * pa[o] for o in objectives)
            better = any(sign[o] * pb[o] < sign[o] * pa[o] for o in objectives)
            dominated |= a != b and no_worse and better
        if not dominated:
            front.add(a)
    return front


def test_optuna_tpe_and_nsga2_with_seeds_as_an_axis(ray_session, tmp_path):
    space = {"model.options.width": {"uniform": [0.25, 1.0]}, "train.lr": {"loguniform": [0.01, 0.2]}}
    base = {**BASE, "train": {**BASE["train"], "epochs": 2}}
    # TPE on one objective; each sample runs once per seed and Optuna is told the mean
    tpe = write_search_sweep(tmp_path, {"space": space, "num_samples": 2, "algorithm": "optuna", "seed": 0,
                                        "objectives": {"val_acc": "max"}}, name="tpe", base=base,
                             axes={"train.seed": [0, 1]})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _run(tmp_path, tpe.path, uri) == 0
    runs, parents = _children(uri, "tpe")
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    for sample, group in itertools.groupby(sorted(runs, key=lambda r: r.data.tags["row"]), lambda r: r.data.tags["row"]):
        group = list(group)
        assert sorted(r.data.params["train.seed"] for r in group) == ["0", "1"]
        assert len({r.data.tags["sample"] for r in group}) == 1  # one sampled configuration, two seeds
    assert parents[0].data.params["search.algorithm"] == "optuna"

    # NSGA-II on two objectives, the front rendered by the generic Pareto report
    nsga = write_search_sweep(tmp_path, {"space": space, "num_samples": 4, "algorithm": "optuna", "seed": 0,
                                         "objectives": {"val_acc": "max", "macs": "min"}}, name="nsga", base=base)
    assert _run(tmp_path, nsga.path, uri) == 0
    assert cli.main(["report", str(nsga.path), "--tracking-uri", uri, "--out", str(tmp_path / "reports")]) == 0
    table = pd.read_csv(tmp_path / "reports" / "nsga-pareto.csv")
    frame = recorded.load_runs(str(nsga.path), uri, status="FINISHED")
    points = {r["row"]: {"val_acc": r["val_acc"], "macs": r["macs"]} for _, r in frame.iterrows()}
    assert len(points) == 4
    expected = _brute_force_front(points, {"val_acc": "max", "macs": "min"})
    widths = {frame.loc[frame["row"] == s, "config.model.options.width"].iloc[0] for s in expected}
    assert {str(w) for w in table["model.options.width"]} == {str(w) for w in widths}


def test_asha_stops_trials_and_each_stopped_trial_is_one_finished_run(ray_session, tmp_path):
    sweep = write_search_sweep(tmp_path, {"space": {"train.lr": {"loguniform": [0.0001, 0.5]}},
                                          "num_samples": 6, "algorithm": "random", "seed": 3,
                                          "objectives": {"val_acc": "max"},
                                          "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2}},
                               base={**BASE, "train": {**BASE["train"], "epochs": 4}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _run(tmp_path, sweep.path, uri, "--max-concurrent", "1") == 0  # one at a time: each rung decided in order
    runs, _ = _children(uri, "search_test")
    client = tracking.client(uri)
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    stopped = [r for r in runs if r.data.tags.get("stopped_early") == "true"]
    assert 1 <= len(stopped) < 6
    for r in runs:
        epochs = _epochs(client, r.info.run_id)
        assert epochs == list(range(1, len(epochs) + 1))  # each epoch logged once
        if r in stopped:
            assert len(epochs) < 4 and r.data.tags["epochs_run"] == str(len(epochs))
            assert r.data.metrics["best_val_acc"] == max(m.value for m in client.get_metric_history(r.info.run_id, "val_acc"))
            assert r.data.metrics["macs"] > 0
        else:
            assert epochs == [1, 2, 3, 4]


def test_mo_asha_on_real_tune_decides_each_rung_by_pareto_rank(ray_session, tmp_path):
    # Width varies macs, lr varies val_acc: two objectives that disagree. One trial at a time, so each
    # rung's decision sees exactly the earlier trials' results at that epoch, which the store holds.
    sweep = write_search_sweep(tmp_path, {"space": {"model.options.width": {"choice": [0.25, 0.5, 1.0]},
                                                    "train.lr": {"loguniform": [0.0001, 0.5]}},
                                          "num_samples": 6, "algorithm": "random", "seed": 3,
                                          "objectives": {"val_acc": "max", "macs": "min"},
                                          "scheduler": {"name": "mo_asha", "grace_period": 1, "reduction_factor": 2}},
                               base={**BASE, "train": {**BASE["train"], "epochs": 4}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _run(tmp_path, sweep.path, uri, "--max-concurrent", "1") == 0
    runs, _ = _children(uri, "search_test")
    client = tracking.client(uri)
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    trials = []
    for r in sorted(runs, key=lambda r: r.info.start_time):
        epochs = _epochs(client, r.info.run_id)
        assert epochs == list(range(1, len(epochs) + 1))  # each epoch logged once
        val = {m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_acc")}
        trials.append({"name": r.info.run_name, "epochs": len(epochs), "val": val, "macs": r.data.metrics["macs"],
                       "stopped": r.data.tags.get("stopped_early") == "true"})
    assert any(t["stopped"] for t in trials) and not all(t["stopped"] for t in trials)
    # An independent check of every decision the Pareto ranking fixes on its own (without the epsilon-net
    # tie-break): at a rung (epochs 1, 2: ASHA's grace 1 x 2^k below max_t = 5) with n results so far and
    # ceil(n / 2) going on, a trial dominated by at least ceil(n / 2) others ranks below all of them and
    # stops there; a non-dominated one goes on when the first front has at most ceil(n / 2) members.
    checked = 0
    for i, t in enumerate(trials):
        for rung in (1, 2):
            if t["epochs"] < rung:
                break
            here = [u for u in trials[:i + 1] if u["epochs"] >= rung]
            top = -(-len(here) // 2)

            def dominates(a, b):
                return (a["val"][rung] >= b["val"][rung] and a["macs"] <= b["macs"]
                        and (a["val"][rung] > b["val"][rung] or a["macs"] < b["macs"]))

            went_on = t["epochs"] > rung
            front = [u for u in here if not any(dominates(v, u) for v in here)]
            if sum(dominates(u, t) for u in here) >= top:
                assert not went_on and t["stopped"], (t["name"], rung, "dominated by enough to stop")
                checked += 1
            elif t in front and len(front) <= top:
                assert went_on, (t["name"], rung, "on a first front small enough to go on")
                checked += 1
    assert checked >= 3, checked


def _harness(*args):
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def test_a_search_survives_its_driver_killed_and_resumes_into_the_same_runs(tmp_path):
    sweep = write_search_sweep(tmp_path, {"space": {"train.lr": {"loguniform": [0.01, 0.2]}},
                                          "num_samples": 4, "algorithm": "optuna", "seed": 0,
                                          "objectives": {"val_acc": "max"}},
                               base={**BASE, "train": {**BASE["train"], "epochs": 3}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = tmp_path / "ray"
    common = ["--profile", "smoke", "--tracking-uri", uri, "--storage-path", storage, "--quiet", "--max-concurrent", "1"]
    env = {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.getcwd()}
    driver = procs.start(_harness("run", sweep.path, *common), tmp_path / "driver.log", env)
    try:
        # the launch file is written once the driver has created the store: reading it earlier would
        # race the driver's own creation of its tables
        procs.wait_for(lambda: list(storage.glob("search_test-smoke-*/harness-launch.json")), 120, "the launch")
        procs.wait_for(lambda: sum(r.info.status == "FINISHED" for r in _children(uri, "search_test")[0]) >= 2,
                       300, "two finished trials")
    finally:
        procs.stop(driver, signal.SIGKILL)  # the driver and its in-process Ray die together
    procs.kill_matching(str(storage))
    before = {r.data.tags["trial_id"]: r for r in _children(uri, "search_test")[0]}
    finished_before = {t for t, r in before.items() if r.info.status == "FINISHED"}
    assert len(finished_before) >= 2

    resumed = procs.start(_harness("run", sweep.path, *common, "--resume"), tmp_path / "resume.log", env)
    assert resumed.wait(timeout=600) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    runs, parents = _children(uri, "search_test")
    # A trial Tune had not yet saved when its driver died is gone from the restored state (the
    # snapshot can lag by more than one trial, even behind a trial that finished), and the searcher
    # proposes another in its place: its run stays as recorded (KILLED, or FINISHED), tagged lost.
    lost = [r for r in runs if r.data.tags.get("lost_on_resume") == "true"]
    assert {r.info.status for r in lost} <= {"KILLED", "FINISHED"}
    runs = [r for r in runs if r not in lost]
    after = {r.data.tags["trial_id"]: r for r in runs}
    assert len(runs) == len(after) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # the same parent, reopened and closed
    for trial_id in before:  # no new run for a resumed trial, finished ones untouched
        if trial_id in after:
            assert after[trial_id].info.run_id == before[trial_id].info.run_id
    for trial_id in finished_before & set(after):
        assert after[trial_id].info.end_time == before[trial_id].info.end_time
    client = tracking.client(uri)
    for r in runs:
        assert _epochs(client, r.info.run_id) == [1, 2, 3]
    assert sorted(r.data.tags["row"] for r in runs) == [f"sample{i:03d}" for i in range(1, 5)]
    assert {r.info.run_id for r in lost} <= {r.info.run_id for r in before.values()}  # only a run from before


def test_a_worker_killed_mid_search_is_retried_into_the_same_run(ray_session, tmp_path):
    import threading

    from harness.search_run import run_search

    sweep = write_search_sweep(tmp_path, {"space": {"train.lr": {"loguniform": [0.01, 0.1]}},
                                          "num_samples": 1, "algorithm": "random", "seed": 0,
                                          "objectives": {"val_acc": "max"}},
                               base={**BASE, "train": {**BASE["train"], "epochs": 6}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_search(
        sweep, "smoke", sweep.search_plan("smoke"), tracking_uri=uri, max_failures=2, progress=False,
        storage_path=str(tmp_path / "ray"))))
    thread.start()

    def after_epoch_2():
        if not list((tmp_path / "ray").glob("search_test-smoke-*/harness-launch.json")):
            return None  # the driver is still creating the store
        runs, _ = _children(uri, "search_test")
        if runs and len(_epochs(tracking.client(uri), runs[0].info.run_id)) >= 2:
            return runs[0]
    run = procs.wait_for(after_epoch_2, 300, "epoch 2 of the trial", every_s=0.1)
    os.kill(int(run.data.tags["worker"].rpartition(":")[2]), signal.SIGKILL)
    thread.join(timeout=600)
    assert [t.status for t in result["summary"].trials] == ["FINISHED"]
    runs, parents = _children(uri, "search_test")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.tags["attempt"] == "2"
    assert _epochs(tracking.client(uri), runs[0].info.run_id) == [1, 2, 3, 4, 5, 6]
    assert parents[0].info.status == "FINISHED"
