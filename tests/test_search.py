"""harness.search and the catalog's SearchPlan: the search: block's schema, its checks before Ray
starts, the Tune domains and their decoding, and the feasibility gate's counts. The searches
themselves run on real Ray in tests/test_search_e2e.py."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import catalog, cli, measure, models, search, stopping
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.searchers import EachPoint, Gate

ROOT = Path(__file__).resolve().parents[1]

SPACE = {
    "model.options.width": {"uniform": [0.25, 1.0]},
    "train.lr": {"loguniform": [0.01, 0.3]},
    "train.batch_size": {"choice": [16, 32]},
    "method": {"choice": [{"name": "none"}, {"name": "prune", "options": {"sparsity": {"uniform": [0.2, 0.8]}}}]},
}
BASE = {"data": {"dataset": "digits", "train_subset": 128, "test_subset": 32, "val_size": 32},
        "model": {"name": "digits_cnn"}, "train": {"epochs": 2, "batch_size": 16, "lr": 0.05, "threads": 1}}


def write_search_sweep(tmp_path: Path, search_block: dict, name: str = "search_test", axes=None, base=None,
                       profiles=None) -> catalog.Sweep:
    """A search sweep file in tmp_path, as a user would write one, loaded with the catalog."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "paper": "cross",
        "artifacts": [{"id": f"{name}-pareto", "kind": "table", "number": "T", "title": name,
                       "report": "harness_analysis.pareto:make_pareto_table"}],
        "base": base or BASE, "axes": axes or {}, "search": search_block,
        "profiles": profiles or {"paper": {}, "quick": {}, "smoke": {}}}, sort_keys=False))
    return catalog.load_sweep(path)


def block(**overrides) -> dict:
    out = {"space": copy.deepcopy(SPACE), "num_samples": 4, "algorithm": "random", "seed": 0,
           "objectives": {"val_acc": "max", "macs": "min"}}
    out.update(overrides)
    return out


# ---- the schema and its checks ----

def test_a_search_block_parses_into_tune_domains_and_decodes_back():
    spec = search.parse_search(block())
    names = search.domains(spec)
    assert sorted(names) == ["method", "method[1].options.sparsity", "model.options.width", "train.batch_size",
                             "train.lr"]
    assert names["model.options.width"].lower == 0.25 and names["model.options.width"].upper == 1.0
    assert names["method"].categories == [0, 1]  # options are sampled by index
    sampled = {"model.options.width": 0.5, "train.lr": 0.1, "train.batch_size": 1, "method": 1,
               "method[1].options.sparsity": 0.4}
    values = search.decode(spec, sampled)
    assert values == {"model.options.width": 0.5, "train.lr": 0.1, "train.batch_size": 32,
                      "method": {"name": "prune", "options": {"sparsity": 0.4}}}
    sampled["method"] = 0  # the nested value is ignored when its option is not chosen
    assert search.decode(spec, sampled)["method"] == {"name": "none"}


def test_sampled_values_apply_whole_sub_configs_first_and_never_write_into_the_values():
    values = {"model.options.conv": "maxmin", "model": {"name": "resnet20", "options": {"width": 0.5}}}
    kept = copy.deepcopy(values)
    out = search.apply_values({"model": {"name": "vgg16", "options": {"batch_norm": False}}}, values)
    assert out["model"] == {"name": "resnet20", "options": {"width": 0.5, "conv": "maxmin"}}  # base's options replaced
    assert values == kept


def test_quniform_of_integers_gives_integers_and_randint_excludes_its_high_bound():
    spec = search.parse_search(block(space={"train.batch_size": {"quniform": [16, 64, 16]},
                                            "train.epochs": {"randint": [1, 3]}}))
    values = search.decode(spec, {"train.batch_size": 48.0, "train.epochs": 2})
    assert values == {"train.batch_size": 48, "train.epochs": 2} and isinstance(values["train.batch_size"], int)
    assert ("train.epochs", 2) in list(search.corners(spec)) and ("train.epochs", 3) not in list(search.corners(spec))


BAD_BLOCKS = [
    ({"space": {"train.lr": {"gaussian": [0, 1]}}}, "search.space.train.lr", "a distribution among"),
    ({"space": {"train.lr": {"uniform": [0.3, 0.01]}}}, "search.space.train.lr.uniform", "low < high"),
    ({"space": {"train.lr": {"uniform": [0.1, 0.1]}}}, "search.space.train.lr.uniform", "low < high"),
    ({"space": {"train.lr": {"loguniform": [0, 0.1]}}}, "search.space.train.lr.loguniform", "low > 0"),
    ({"space": {"train.lr": {"uniform": ["a", 0.1]}}}, "search.space.train.lr.uniform", "a number"),
    ({"space": {"train.batch_size": {"choice": []}}}, "search.space.train.batch_size.choice", "non-empty list"),
    ({"space": {"train.lr": {"quniform": [0.1, 0.5, 0]}}}, "search.space.train.lr.quniform", "a step > 0"),
    ({"space": {}}, "search.space", "non-empty mapping"),
    ({"num_samples": 0}, "search.num_samples", "an integer >= 1"),
    ({"num_samples": True}, "search.num_samples", "an integer >= 1"),
    ({"algorithm": "hyperopt"}, "search.algorithm", "random, optuna"),
    ({"objectives": {"val_loss": "max"}}, "search.objectives", "a metric trials report"),
    ({"objectives": {"val_acc": "maximize"}}, "search.objectives.val_acc", "max or min"),
    ({"objectives": {"test_acc": "max"}}, "search.objectives.test_acc", "selection happens on validation"),
    ({"objectives": {}}, "search.objectives", "a mapping of metric"),
    ({"constraints": {"latency_s": {"max": 1}}}, "search.constraints", "a count among"),
    ({"constraints": {"macs": {"below": 1}}}, "search.constraints.macs", "{max: number}"),
    ({"scheduler": {"name": "pbt"}}, "search.scheduler", "asha"),
    ({"scheduler": {"name": "asha"}, "objectives": {"macs": "min"}}, "search.scheduler", "every epoch"),
    ({"trials": 3}, "search.trials", "a key among"),
    ({"reference_point": [0, 1e7]}, "search.reference_point", "a mapping of objective: number"),
    ({"reference_point": {"mac": 1e7}}, "search.reference_point", "one of the objectives: val_acc, macs"),
    ({"reference_point": {"macs": "lots"}}, "search.reference_point.macs", "a number, not text"),
]


@pytest.mark.parametrize("overrides,key,valid", BAD_BLOCKS, ids=[b[1] + ":" + b[2][:12] for b in BAD_BLOCKS])
def test_a_bad_search_block_names_the_key_the_value_and_what_is_valid(overrides, key, valid):
    with pytest.raises(ConfigError) as e:
        search.parse_search(block(**overrides))
    assert e.value.key == key and valid in e.value.valid, str(e.value)


def test_optuna_missing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(ConfigError) as e:
        search.parse_search(block(algorithm="optuna"))
    assert e.value.key == "search.algorithm" and "pip install optuna" in e.value.valid


@pytest.mark.parametrize("space_key,valid", [
    ("train.learning_rate", "a config key: train.epochs"),
    ("trainer.lr", "a config key: data, model"),
    ("train.lr.value", "train.lr is a value"),
])
def test_a_space_key_that_is_not_a_config_key_fails_before_ray(tmp_path, space_key, valid):
    sweep = write_search_sweep(tmp_path, block(space={space_key: {"uniform": [0.01, 0.1]}}))
    with pytest.raises(ConfigError) as e:
        sweep.search_plan("smoke")
    assert e.value.key == f"search.space.{space_key}" and valid in e.value.valid


def test_options_keys_are_checked_by_the_models_builder_at_the_corners(tmp_path):
    sweep = write_search_sweep(tmp_path, block(space={"model.options.widht": {"uniform": [0.5, 1.0]}}))
    with pytest.raises(ConfigError) as e:
        sweep.search_plan("smoke")
    assert e.value.key == "search.space.model.options.widht" and "model.options.widht=" in e.value.valid


def test_a_corner_out_of_range_fails_before_ray(tmp_path):
    sweep = write_search_sweep(tmp_path, block(space={"train.momentum": {"uniform": [0.5, 1.5]}}))
    with pytest.raises(ConfigError) as e:
        sweep.search_plan("smoke")
    assert e.value.key == "search.space.train.momentum" and e.value.value == 1.5 and "[0, 1)" in e.value.valid


def test_a_space_key_may_not_also_be_a_grid_axis_or_a_set(tmp_path):
    sweep = write_search_sweep(tmp_path, block(space={"train.seed": {"randint": [0, 9]}}), axes={"train.seed": [0, 1]})
    with pytest.raises(ConfigError) as e:
        sweep.search_plan("smoke")
    assert e.value.key == "search.space.train.seed" and "grid axis" in e.value.valid
    sweep = write_search_sweep(tmp_path, block())
    with pytest.raises(ConfigError) as e:
        sweep.search_plan("smoke", sets=["train.lr=0.1"])
    assert e.value.key == "search.space.train.lr" and "--set" in e.value.valid


def test_a_scheduler_needs_trials_of_two_epochs_and_takes_only_tunes_options(tmp_path):
    spec = search.parse_search(block(scheduler={"name": "asha", "grace_period": 1}))
    with pytest.raises(ConfigError) as e:
        stopping.build_scheduler(spec, 1)
    assert "train.epochs >= 2" in e.value.valid
    spec = search.parse_search(block(scheduler={"name": "asha", "grace": 1}))
    with pytest.raises(ConfigError) as e:
        stopping.build_scheduler(spec, 4)
    assert e.value.key == "search.scheduler.grace" and "grace_period" in e.value.valid
    spec = search.parse_search(block(scheduler={"name": "median", "metric": "val_acc"}))
    with pytest.raises(ConfigError) as e:
        stopping.build_scheduler(spec, 4)
    assert e.value.key == "search.scheduler.metric"
    asha = stopping.build_scheduler(search.parse_search(block(scheduler={"name": "asha", "grace_period": 1,
                                                                       "reduction_factor": 2})), 4)
    assert (asha._time_attr, asha._metric, asha._mode, asha._max_t) == ("epoch", "val_acc", "max", 5)


def test_profiles_and_the_command_line_override_the_search(tmp_path):
    sweep = write_search_sweep(tmp_path, block(num_samples=20), profiles={
        "paper": {}, "quick": {}, "smoke": {"search": {"num_samples": 2, "scheduler": {"name": "none"}}}})
    assert sweep.search_plan("paper").spec.num_samples == 20
    assert sweep.search_plan("smoke").spec.num_samples == 2
    plan = sweep.search_plan("smoke", num_samples=5, seed=7)
    assert (plan.spec.num_samples, plan.spec.seed) == (5, 7)
    assert sweep.objectives("smoke") == {"val_acc": "max", "macs": "min"}


def test_a_grid_sweep_refuses_num_samples_and_a_search_sweep_refuses_cells(tmp_path):
    grid = catalog.resolve("jiang-table-4-9")[0]
    with pytest.raises(ConfigError) as e:
        grid.search_plan("smoke", num_samples=3)
    assert e.value.key == "--num-samples" and "is a grid" in e.value.valid
    with pytest.raises(ConfigError):
        write_search_sweep(tmp_path, block()).cells("smoke")


def test_rows_beside_a_search_are_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "paper": "cross", "artifacts": [], "base": BASE,
                                    "rows": [{"label": "a"}], "search": block(),
                                    "profiles": {"paper": {}, "quick": {}, "smoke": {}}}))
    with pytest.raises(ConfigError) as e:
        catalog.load_sweep(path)
    assert e.value.key == "bad.yaml.rows"


def test_bad_search_input_exits_2_before_ray_starts(tmp_path):
    """Through the command line in a fresh process: one line naming the key, exit 2, Ray never started."""
    write_search_sweep(tmp_path, block(space={"train.lr": {"loguniform": [-1, 0.1]}}))
    code = ("import sys, ray; from harness import cli; rc = cli.main(sys.argv[1:]); "
            "print('ray started' if ray.is_initialized() else 'ray not started'); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, "run", str(tmp_path / "search_test.yaml"), "--profile", "smoke",
                          "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [
        "harness: error: search.space.train.lr.loguniform=[-1, 0.1] is not valid: expected low > 0 (a log scale)"]
    assert "ray not started" in out.stdout and "Traceback" not in out.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded for a search that never started


# ---- the gate: resolution, counts and cost limits, in the driver ----

def _plan(tmp_path, **overrides):
    return write_search_sweep(tmp_path, block(**overrides)).search_plan("smoke")


@pytest.mark.parametrize("name,options", [("digits_cnn", {"width": 0.5}), ("resnet20", {"width": 0.25}),
                                          ("crnet_cib", {"exp": 2, "g": 2})])
def test_the_gates_counts_equal_the_counts_a_trial_measures(tmp_path, name, options):
    plan = _plan(tmp_path)
    cfg = plan.resolve({"model": {"name": name, "options": options}}, 0)
    counted = plan.counts(cfg)
    # what the Trainer measures: the real model, built for the dataset's shape (digits: 1x8x8, 10 classes)
    real = measure.profile(models.build(name, num_classes=10, in_channels=1, image_size=8, **options), (1, 8, 8))
    assert counted == {k: real[k] for k in search.COUNTS}


class _Trial:
    """What the gate reads and writes of a Tune Trial: its config and its display name."""

    def __init__(self, sample: dict):
        self.config = {"sample": sample}
        self.custom_trial_name = None
        self.trial_id = "t"


def test_the_gate_refuses_an_over_budget_sample_and_records_why(tmp_path, monkeypatch):
    recorded = []
    monkeypatch.setattr("harness.tracking.record_infeasible", lambda ctx, *a: recorded.append(a))
    plan = _plan(tmp_path, space={"model.options.width": {"uniform": [0.25, 1.0]}},
                 constraints={"macs": {"max": 1000000}})
    # digits_cnn on 8x8: 3x3 convs c1 = 32w at 8x8, c2 = 64w at 8x8, (2x2 pool) c3 = 128w at 4x4, fc to 10
    large = 64 * 32 * 9 * 1 + 64 * 64 * 9 * 32 + 16 * 128 * 9 * 64 + 128 * 10  # width 1: 2,379,008
    small = 64 * 8 * 9 * 1 + 64 * 16 * 9 * 8 + 16 * 32 * 9 * 16 + 32 * 10  # width 0.25: 152,384
    assert plan.counts(plan.resolve({"model.options.width": 0.25}, 0))["macs"] == small
    assert plan.counts(plan.resolve({"model.options.width": 1.0}, 0))["macs"] == large
    gate = Gate(plan, ctx={})
    assert gate.admit(_Trial({"model.options.width": 0.25}))
    assert not gate.admit(_Trial({"model.options.width": 1.0}))
    name, values, reason, counts = recorded[0]
    assert name == "sample002" and values == {"model.options.width": 1.0} and counts["macs"] == large
    assert reason == "macs=2,379,008 > max 1,000,000"
    assert [i["name"] for i in gate.infeasible] == ["sample002"]


def test_an_invalid_combination_is_infeasible_not_a_crash(tmp_path, monkeypatch):
    """Strict Winograd needs every conv 3x3 stride 1: digits_cnn has only those, resnet20 does not.
    Each value is valid on its own (the corners pass), the pair (resnet20, strict) is infeasible."""
    monkeypatch.setattr("harness.tracking.record_infeasible", lambda *a: None)
    base = copy.deepcopy(BASE)
    base["model"]["options"] = {"conv": "winograd"}
    sweep = write_search_sweep(tmp_path, block(space={
        "model.name": {"choice": ["digits_cnn", "resnet20"]},
        "model.options.conv_options": {"choice": [{"strict": False}, {"strict": True}]}}), base=base)
    gate = Gate(sweep.search_plan("smoke"), ctx={})
    assert gate.admit(_Trial({"model.name": 0, "model.options.conv_options": 1}))
    assert gate.admit(_Trial({"model.name": 1, "model.options.conv_options": 0}))
    assert not gate.admit(_Trial({"model.name": 1, "model.options.conv_options": 1}))
    assert [i["name"] for i in gate.infeasible] == ["sample003"]
    assert "3x3, stride 1" in gate.infeasible[0]["reason"]


def test_each_point_tells_the_searcher_the_mean_of_every_objective():
    told = []

    class Searcher:
        metric, mode = ["val_acc", "macs"], ["max", "min"]

        def suggest(self, trial_id):
            return {"x": 1}

        def on_trial_complete(self, trial_id, result=None, error=False):
            told.append((trial_id, result, error))

        def set_search_properties(self, *a, **k):
            return True

    repeater = EachPoint(Searcher(), repeat=2, set_index=False)
    assert repeater.suggest("a") == {"x": 1} and repeater.suggest("b") == {"x": 1}
    repeater.on_trial_complete("a", {"val_acc": 80.0, "macs": 100.0})
    assert told == []
    repeater.on_trial_complete("b", {"val_acc": 90.0, "macs": 100.0})
    assert told == [("a", {"val_acc": 85.0, "macs": 100.0}, False)]
    repeater.suggest("c"), repeater.suggest("d")
    repeater.on_trial_complete("c", error=True)
    repeater.on_trial_complete("d", error=True)
    assert told[-1] == ("c", None, True)  # every point failed: the searcher is told it failed


def test_the_shipped_cross_paper_space_is_valid_at_every_profile():
    sweep = catalog.resolve("cross_paper_pareto")[0]
    for profile in ("paper", "quick", "smoke"):
        plan = sweep.search_plan(profile)
        assert plan.spec.objectives == {"val_acc": "max", "macs": "min"}
    assert sweep.search_plan("quick").base["data"]["dataset"] == "fashion_mnist"
    assert sweep.search_plan("paper").spec.num_samples >= 200 and sweep.search_plan("paper").spec.scheduler_name == "asha"
    families = {o["name"] for o in sweep.search["space"]["model"]["choice"]}
    assert {"resnet20", "crnet_cb", "crnet_cib", "mobilenetv2", "calli_cifar", "ensemble"} <= families
    convs = set(sweep.search["space"]["model.options.conv"]["choice"])
    assert {"dense", "maxmin", "separable", "winograd_relu"} <= convs and any("binary" in c for c in convs)
    assert {m["name"] for m in sweep.search["space"]["method"]["choice"]} == {"none", "prune", "dbs"}
    assert {s["name"] for s in sweep.search["space"]["sampler"]["choice"]} == {"full", "flat", "three_stage"}


def test_cli_help_names_the_search_options():
    text = cli.build_parser().format_help()
    run_help = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--help"], capture_output=True, text=True,
                              cwd=ROOT).stdout
    assert "run" in text and "--num-samples" in run_help and "--search-seed" in run_help and "--verbose" in run_help


def test_config_error_survives_pickling():
    import pickle

    e = pickle.loads(pickle.dumps(ConfigError("train.lr", -1, "a number > 0")))
    assert (e.key, e.value, e.valid) == ("train.lr", -1, "a number > 0") and "train.lr=-1" in str(e)
    assert RunConfig.from_dict(BASE).train.epochs == 2


def test_the_reference_point_is_declared_or_derived_from_the_constraints():
    # no constraint: a maximized metric's reference is 0; a minimized one has none until declared
    values, sources = search.parse_search(block()).reference_point()
    assert values == {"val_acc": 0.0, "macs": None} and "declare search.reference_point.macs" in sources["macs"]
    # a max constraint on a minimized count bounds every feasible sample: it is the reference
    values, sources = search.parse_search(block(constraints={"macs": {"max": 2.0e7, "min": 1.0e5}})).reference_point()
    assert values == {"val_acc": 0.0, "macs": 2.0e7} and sources["macs"] == "the constraint macs <= 2e+07"
    # declared wins over both
    values, sources = search.parse_search(block(constraints={"macs": {"max": 2.0e7}},
                                                 reference_point={"val_acc": 10, "macs": 3.0e8})).reference_point()
    assert values == {"val_acc": 10, "macs": 3.0e8} and sources["val_acc"].startswith("declared")
