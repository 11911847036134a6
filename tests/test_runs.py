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
