"""harness.runs: recorded runs as DataFrames, read back from a real SQLite store written by TrialRun (no Ray)."""
import math

import yaml

from harness import runs, tracking
from harness.config import RunConfig

SWEEP = {"name": "test_runs", "paper": "cross", "artifacts": [],
         "base": {"data": {"dataset": "digits"}, "model": {"name": "digits_cnn"}},
         "profiles": {"paper": {}, "quick": {}, "smoke": {}}}


def _record(uri: str, experiment_id: str, name: str, config: dict, seed: int) -> str:
    cfg = RunConfig.from_dict(config).to_dict()
    run = tracking.TrialRun(uri, experiment_id, name, cfg, {"trial_id": name, "row": name, "seed": seed,
                                                           "profile": "smoke", "config_digest": "d"})
    run.log_final({"val_acc": 50.0 + seed}, keys=["val_acc"])
    run.finish("FINISHED")
    return run.run_id


def test_config_columns_are_typed_as_the_runs_config_yaml(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tmp_path / "test_runs.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    experiment_id = tracking.ensure_experiment(uri, "test_runs")
    _record(uri, experiment_id, "a", {"data": {"dataset": "digits", "train_subset": 64},
                                      "model": {"name": "digits_cnn", "options": {"width": 0.5}},
                                      "train": {"milestones": [2, 4], "epochs": 5}}, 0)
    _record(uri, experiment_id, "b", {"data": {"dataset": "digits"}, "model": {"name": "digits_cnn"}}, 1)
    # a run with params but no config.yaml (what a search records for an infeasible sample)
    c = tracking.client(uri)
    bare = c.create_run(experiment_id, run_name="c", tags={"row": "c", "seed": "2", "profile": "smoke"}).info.run_id
    c.log_param(bare, "train.epochs", "7")
    c.log_param(bare, "model.options.width", "0.25")
    c.log_param(bare, "data.classes", "null")
    c.set_terminated(bare, "FINISHED")

    frame = runs.load_runs(str(sweep), uri).set_index("row").sort_index()
    assert frame.at["a", "config.data.train_subset"] == 64 and isinstance(frame.at["a", "config.data.train_subset"], int)
    assert frame.at["b", "config.data.train_subset"] is None  # null in its config: None, not NaN, not 'null'
    assert frame.at["a", "config.train.milestones"] == (2, 4)  # a list as a tuple: hashable, so groupable
    assert frame.at["a", "config.model.options.width"] == 0.5
    assert math.isnan(frame.at["b", "config.model.options.width"])  # the key is not in b's config at all
    assert frame.at["a", "config.train.nesterov"] is False and frame.at["a", "config.train.lr"] == 0.1
    assert frame["config.data.train_subset"].dtype == object  # ints stay ints beside a missing value
    assert frame.at["c", "config.train.epochs"] == 7 and frame.at["c", "config.model.options.width"] == 0.25
    assert frame.at["c", "config.data.classes"] is None
    assert frame.groupby("config.train.milestones").size().to_dict() == {(2, 4): 1, (): 1}
    assert [runs.config_text(v) for v in (None, (2, 4), 0.5, math.nan, "cifar10")] == ["null", "[2, 4]", "0.5", "",
                                                                                        "cifar10"]


def test_readers_never_create_a_store(tmp_path):
    import pytest

    from harness.errors import ConfigError

    sweep = tmp_path / "test_runs.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    missing = tmp_path / "mistyped.db"
    for read in (runs.load_runs, runs.load_history):
        with pytest.raises(ConfigError) as info:
            read(str(sweep), f"sqlite:///{missing}")
        assert (info.value.key, info.value.value, info.value.valid) == ("tracking_uri", f"sqlite:///{missing}",
                                                                        runs.NO_STORE)
    assert not missing.exists()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.ensure_experiment(uri, "another_sweep")  # a store that exists, without this sweep's experiment
    assert runs.load_runs(str(sweep), uri).empty and runs.load_history(str(sweep), uri).empty


# ---- bulk reads (issue 24): configs typed from the params, histories in bulk, finished runs cached ----

import time  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from harness import runcache, store as store_mod  # noqa: E402
from harness.config import flatten  # noqa: E402

from . import procs  # noqa: E402

BASE = {"data": {"dataset": "digits", "train_subset": 64, "classes": None},
        "model": {"name": "digits_cnn", "options": {}},
        "train": {"epochs": 3, "lr": 0.1, "weight_decay": 1e-05, "milestones": [2, 4], "nesterov": False, "seed": 0}}


@pytest.fixture(autouse=True)
def run_cache(tmp_path, monkeypatch):
    """Each test its own run cache: none reads or writes the user's ~/.cache/harness/runs."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _config(**changes) -> dict:
    """BASE with ``{"train.seed": 1, ...}`` set (a dotted key's parents exist in BASE)."""
    import copy

    config = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[key] = value
    return config


def _write(client, experiment_id: str, name: str, config: dict, config_yaml: bool = True, epochs: int = 3,
           finish: bool = True, tags: dict = None) -> str:
    """A run as a trial writes it (tracking.TrialRun's params and config.yaml, an epoch's metrics per step),
    without the environment it records."""
    run_id = client.create_run(experiment_id, run_name=name, tags={"row": name, "seed": "0", "profile": "smoke",
                                                                    "mlflow.runName": name, **(tags or {})}).info.run_id
    tracking._log_params(client, run_id, flatten(config))
    if config_yaml:
        client.log_text(run_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
    _epochs(client, run_id, range(1, epochs + 1))
    if finish:
        client.set_terminated(run_id, "FINISHED")
    return run_id


def _epochs(client, run_id: str, steps) -> None:
    now = int(time.time() * 1000)
    for step in steps:
        client.log_batch(run_id, metrics=[Metric("val_acc", 10.0 * step, now + step, step),
                                          Metric("lr", 0.1 / step, now + step, step)])


def _store(tmp_path, uri: str):
    sweep = tmp_path / "test_runs.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    return str(sweep), tracking.ensure_experiment(uri, "test_runs")


def _per_run(client, experiment_id: str, uri: str, metrics=("val_acc", "lr")):
    """load_runs' and load_history's frames read run by run: each run's config.yaml, each history alone."""
    listed = [r for r in runs.all_runs(client, experiment_id) if r.data.tags.get("search_parent") != "true"]
    frame = runs._frame(listed, [runs._columns(runs._config_values(client, r)) for r in listed], uri)
    rows = [{"run_id": r["run_id"], "row": r.get("row"), "seed": r.get("seed"), "step": p.step, "metric": m,
             "value": p.value} for _, r in frame.iterrows() for m in metrics
            for p in client.get_metric_history(r["run_id"], m)]
    history = pd.DataFrame(rows, columns=["run_id", "row", "seed", "step", "metric", "value"])
    return frame, history.sort_values(["run_id", "metric", "step"]).reset_index(drop=True)


def _assert_same(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal, and every cell of the same type (assert_frame_equal takes 1 == 1.0 == True in object columns)."""
    pd.testing.assert_frame_equal(frame, expected)
    pd.testing.assert_frame_equal(frame.map(repr), expected.map(repr))


class Counted:
    """Calls of one function, wrapped in place for the test (monkeypatch restores it)."""

    def __init__(self, monkeypatch, owner, name: str):
        original = getattr(owner, name)
        self.calls = 0

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def _varied_runs(client, experiment_id: str) -> dict:
    """Runs whose params read back exactly and runs whose params do not, with and without config.yaml."""
    ids = {}
    for seed in range(4):  # one shape: one config.yaml read types them all
        ids[f"a{seed}"] = _write(client, experiment_id, f"a{seed}", _config(**{"train.seed": seed}))
    # data.classes of 2,000 ints: its param is cut at 6,000 characters, so this run's config.yaml is read
    ids["long"] = _write(client, experiment_id, "long", _config(**{"data.classes": list(range(2000))}))
    # text that reads as a number: both runs have one shape, its check fails, so each run's config.yaml is read
    for k, tag in enumerate(("0.5", "0.7")):
        ids[f"text{k}"] = _write(client, experiment_id, f"text{k}", _config(**{"model.options": {"tag": tag}}))
    # values whose params print as something else: "yes" and "" (YAML: True, None), inf ("inf": text),
    # None in a list ("None": text)
    ids["odd"] = _write(client, experiment_id, "odd", _config(**{"model.options": {
        "word": "yes", "empty": "", "inf": float("inf"), "mixed": [1, "a", None], "nested": [[1, 2], {"k": "v"}]}}))
    # no config.yaml: params read by PyYAML as always (1e-05 is text there), with the a-runs' shape, listed
    # first (the newest), so the check of that shape reads this run, finds nothing and reads the next
    bare = _config(**{"train.seed": 9})
    ids["infeasible"] = _write(client, experiment_id, "infeasible", {"train": {"lr": 0.05, "weight_decay": 1e-05}},
                               config_yaml=False, epochs=0, tags={"infeasible": "true"})
    time.sleep(0.01)
    ids["bare"] = _write(client, experiment_id, "bare", bare, config_yaml=False)
    return ids


def test_bulk_frames_equal_the_per_run_frames_and_a_second_read_reads_nothing(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep, experiment_id = _store(tmp_path, uri)
    client = tracking.client(uri)
    _varied_runs(client, experiment_id)
    expected, expected_history = _per_run(client, experiment_id, uri)

    reads = Counted(monkeypatch, runs, "_config_yaml_text")
    frame = runs.load_runs(sweep, uri)
    _assert_same(frame, expected)
    # the four a-runs cost the bare run's attempt and one file; long, text0, text1 and odd one each
    assert reads.calls == 6, reads.calls
    by_row = frame.set_index("row")
    assert by_row.at["long", "config.data.classes"] == tuple(range(2000))
    assert by_row.loc[["text0", "text1"], "config.model.options.tag"].tolist() == ["0.5", "0.7"]  # text, as written
    assert by_row.at["a3", "config.train.weight_decay"] == 1e-05 and by_row.at["a3", "config.data.classes"] is None
    assert by_row.at["bare", "config.train.weight_decay"] == "1e-05"  # no config.yaml: PyYAML's reading, as before
    assert by_row.at["odd", "config.model.options.inf"] == float("inf")
    assert by_row.at["odd", "config.model.options.mixed"] == (1, "a", None)
    assert math.isnan(by_row.at["a0", "config.model.options.word"])  # a key the run lacks

    history_calls = Counted(monkeypatch, MlflowClient, "get_metric_history")
    _assert_same(runs.load_history(sweep, uri, metrics=("val_acc", "lr")), expected_history)
    assert history_calls.calls == 2 * len(frame)  # a database store has no bulk call: run by run, once

    reads.calls = history_calls.calls = 0
    _assert_same(runs.load_runs(sweep, uri), expected)
    _assert_same(runs.load_history(sweep, uri, metrics=("val_acc", "lr")), expected_history)
    assert reads.calls == 0 and history_calls.calls == 0  # finished runs: all from the cache
    # another metric is read once, the cached ones are not read again
    runs.load_history(sweep, uri, metrics=("val_acc", "lr", "test_acc"))
    assert history_calls.calls == len(frame)


def test_a_run_that_ends_or_is_reopened_is_read_again(tmp_path, monkeypatch, run_cache):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep, experiment_id = _store(tmp_path, uri)
    client = tracking.client(uri)
    _write(client, experiment_id, "done", _config())
    live = _write(client, experiment_id, "live", _config(**{"train.seed": 1}), epochs=2, finish=False)

    def steps():
        h = runs.load_history(sweep, uri, metrics=("val_acc",))
        return h[h["run_id"] == live]["step"].tolist()

    assert steps() == [1, 2] and runs.load_runs(sweep, uri).set_index("row").at["live", "status"] == "RUNNING"
    cached = runcache.RunCache(uri, experiment_id)
    assert live not in cached.read("configs") and live not in cached.read("history")  # RUNNING: never cached
    _epochs(client, live, [3])
    client.set_terminated(live, "FINISHED")
    assert steps() == [1, 2, 3] and runs.load_runs(sweep, uri).set_index("row").at["live", "status"] == "FINISHED"
    assert cached.read("history")[live]["stamp"].startswith("FINISHED:")

    calls = Counted(monkeypatch, MlflowClient, "get_metric_history")
    assert steps() == [1, 2, 3] and calls.calls == 0
    # reopened (harness run --resume), an epoch more, closed again: a new end time, read afresh
    time.sleep(0.01)
    client.update_run(live, "RUNNING")
    _epochs(client, live, [4])
    client.set_terminated(live, "FINISHED")
    assert steps() == [1, 2, 3, 4] and calls.calls == 1


@pytest.mark.slow
def test_a_tracking_server_is_read_in_bulk(tmp_path, monkeypatch):
    server, uri = procs.mlflow_server(tmp_path)
    try:
        sweep, experiment_id = _store(tmp_path, uri)
        client = tracking.client(uri)
        _varied_runs(client, experiment_id)
        expected, expected_history = _per_run(client, experiment_id, uri)

        downloads = Counted(monkeypatch, MlflowClient, "download_artifacts")
        per_run_history = Counted(monkeypatch, MlflowClient, "get_metric_history")
        bulk = Counted(monkeypatch, store_mod, "bulk_history")
        _assert_same(runs.load_runs(sweep, uri), expected)
        assert downloads.calls == 6
        _assert_same(runs.load_history(sweep, uri, metrics=("val_acc", "lr")), expected_history)
        assert (per_run_history.calls, bulk.calls) == (0, 2)  # one request per metric for these 10 runs

        downloads.calls = bulk.calls = 0
        _assert_same(runs.load_runs(sweep, uri), expected)
        _assert_same(runs.load_history(sweep, uri, metrics=("val_acc", "lr")), expected_history)
        assert (downloads.calls, per_run_history.calls, bulk.calls) == (0, 0, 0)
    finally:
        procs.stop(server)


def test_every_smoke_sweep_reads_the_same_in_bulk(smoke_all):
    """The real runs of every sweep (grids, searches with infeasible samples, experiments): in bulk, each
    config column holds what each run's config.yaml gives, value and type, and each history is the same."""
    from harness import catalog

    client = tracking.client(smoke_all.store)
    sweeps = [e for e in client.search_experiments() if e.name in catalog.all_sweeps()]
    metrics = ("val_acc", "test_acc", "train_loss", "lr", "epoch_time_s")  # load_history's
    for experiment in sweeps:
        expected, expected_history = _per_run(client, experiment.experiment_id, smoke_all.store, metrics)
        _assert_same(runs.load_runs(experiment.name, smoke_all.store), expected)
        _assert_same(runs.load_history(experiment.name, smoke_all.store), expected_history)
    assert len(sweeps) >= 20
