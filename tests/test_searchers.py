"""Optuna's samplers as harness.searchers hands them to Tune: they pickle whatever Optuna's version
(5.1's NSGA-II holds a threading.Lock), and a searcher saved and restored the way ``--resume``
restores it (``save_to_dir`` / ``restore_from_dir``) proposes what the uninterrupted one proposes
next. No Ray cluster: OptunaSearch is driven directly."""
from __future__ import annotations

import pickle
import threading

import pytest

optuna = pytest.importorskip("optuna")
from ray import tune  # noqa: E402
from ray.tune.search import SearchGenerator  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from harness.searchers import FeasibleSearch, Gate, LockPlaceholder, NSGAIISampler, TPESampler  # noqa: E402

SPACE = {"lr": tune.loguniform(0.01, 0.2), "width": tune.uniform(0.25, 1.0)}
OBJECTIVES = {"val_acc": "max", "macs": "min"}


def _searcher(sampler_class, objectives: dict):
    """OptunaSearch as build_search_alg makes it, given the space as Tune gives it (param_space)."""
    metrics, modes = list(objectives), list(objectives.values())
    if len(metrics) == 1:
        metrics, modes = metrics[0], modes[0]
    searcher = OptunaSearch(metric=metrics, mode=modes, sampler=sampler_class(seed=0))
    searcher.set_search_properties(None, None, SPACE)
    return searcher


def _complete(searcher, trial_id: str, objectives: dict) -> dict:
    config = searcher.suggest(trial_id)
    searcher.on_trial_complete(trial_id, result={m: config["lr"] * (i + 1) for i, m in enumerate(objectives)})
    return config


@pytest.mark.parametrize("sampler_class", [TPESampler, NSGAIISampler])
def test_a_sampler_pickles_and_comes_back_with_fresh_locks(sampler_class):
    sampler = sampler_class(seed=0)
    state = sampler.__getstate__()
    locks = [k for k, v in state.items() if isinstance(v, LockPlaceholder)]
    restored = pickle.loads(pickle.dumps(sampler))
    assert type(restored) is sampler_class
    for key in locks:  # a new lock, usable and unheld
        assert vars(restored)[key] is not vars(sampler)[key] and vars(restored)[key].acquire(blocking=False)
    assert not [k for k, v in vars(restored).items() if isinstance(v, LockPlaceholder)]


def test_optuna_5_nsga2_is_the_sampler_that_needed_it():
    """Why FreshLocks exists; skips once Optuna's own NSGA-II pickles again (4.x and 5.0 do)."""
    try:
        pickle.dumps(optuna.samplers.NSGAIISampler(seed=0))
    except TypeError as e:
        assert "lock" in str(e)
        assert any(isinstance(v, type(threading.Lock())) for v in vars(NSGAIISampler(seed=0)).values())
    else:
        pytest.skip(f"optuna {optuna.__version__}'s NSGAIISampler pickles by itself")


@pytest.mark.parametrize("sampler_class,objectives", [(TPESampler, {"val_acc": "max"}), (NSGAIISampler, OBJECTIVES),
                                                      (TPESampler, OBJECTIVES)])  # algorithm: tpe on two objectives
def test_a_restored_searcher_proposes_what_the_uninterrupted_one_would(tmp_path, sampler_class, objectives):
    searcher = _searcher(sampler_class, objectives)
    search_alg = FeasibleSearch(SearchGenerator(searcher), Gate(None, {}))
    for i in range(3):
        _complete(searcher, f"t{i}", objectives)
    search_alg.save_to_dir(str(tmp_path), session_str="default")  # what Tune's experiment snapshot calls
    uninterrupted = [_complete(searcher, f"t{i}", objectives) for i in range(3, 5)]

    fresh = _searcher(sampler_class, objectives)
    restored = FeasibleSearch(SearchGenerator(fresh), Gate(None, {}))
    assert restored.has_checkpoint(str(tmp_path))
    restored.restore_from_dir(str(tmp_path))
    assert [_complete(fresh, f"t{i}", objectives) for i in range(3, 5)] == uninterrupted


# ---- the infeasible region taught to Optuna (constraints_func) ----

# digits_cnn on 8x8 with a 1,000,000-MAC limit: width 1.0 counts 2,379,008 MACs, width 0.25 152,384
# (tests/test_search.py derives both by hand). Relative excess (macs - max) / max:
# width 1.0: 1,379,008 / 1e6 = 1.379008 (violated); width 0.25: -847,616 / 1e6 = -0.847616 (met)
LARGE, SMALL = 2_379_008, 152_384


def _constrained_plan(tmp_path):
    from tests.test_search import _plan

    return _plan(tmp_path, space={"model.options.width": {"uniform": [0.25, 1.0]}}, algorithm="optuna",
                 constraints={"macs": {"max": 1000000}})


def test_a_constrained_optuna_sweep_gets_a_sampler_with_constraints_func(tmp_path, monkeypatch):
    from harness import searchers

    plan, built = _constrained_plan(tmp_path), []
    real = searchers.sampler
    monkeypatch.setattr(searchers, "sampler", lambda cls, seed, cf=None: built.append((cls, cf)) or real(cls, seed, cf))
    searchers.build_search_alg(plan, {}, None)
    (cls, constraints), = built
    assert cls is NSGAIISampler and isinstance(constraints, searchers.Violations) and constraints.plan is plan
    searchers.build_search_alg(plan, {}, None, learn_infeasible=False)
    assert built[-1] == (NSGAIISampler, None)
    # it still pickles (Tune pickles the searcher), constraints_func and its cache included
    sampler = real(NSGAIISampler, 0, constraints)
    assert constraints(_Frozen(1.0)) == [0.0, 1.379008]
    restored = pickle.loads(pickle.dumps(sampler))
    assert type(restored) is NSGAIISampler


@pytest.mark.parametrize("algorithm,objectives,expected", [
    ("optuna", {"val_acc": "max"}, TPESampler), ("optuna", OBJECTIVES, NSGAIISampler),
    ("tpe", OBJECTIVES, TPESampler), ("nsga2", OBJECTIVES, NSGAIISampler), ("nsga2", {"val_acc": "max"}, NSGAIISampler)])
def test_the_algorithm_names_the_sampler_and_every_objective_reaches_it(tmp_path, monkeypatch, algorithm, objectives,
                                                                        expected):
    from harness import searchers
    from tests.test_search import _plan

    plan, built = _plan(tmp_path, algorithm=algorithm, objectives=objectives), []
    real = searchers.sampler
    monkeypatch.setattr(searchers, "sampler", lambda cls, seed, cf=None: built.append(cls) or real(cls, seed, cf))
    searchers.build_search_alg(plan, {}, None)
    assert built == [expected]


class _Frozen:
    """What Violations reads of Optuna's FrozenTrial: params, named as Tune names them."""

    def __init__(self, width):
        self.params = {"sample/model.options.width": width}


def test_the_constraint_values_are_the_relative_excess_over_the_limit(tmp_path):
    from harness.searchers import Violations

    v = Violations(_constrained_plan(tmp_path))
    assert v(_Frozen(1.0)) == pytest.approx([0.0, (LARGE - 1e6) / 1e6]) == [0.0, 1.379008]
    assert v(_Frozen(0.25)) == pytest.approx([0.0, -0.847616])


def test_an_infeasible_sample_reaches_optunas_constraints_func_as_violated(tmp_path, monkeypatch):
    """The public route: the gate refuses the sample, FeasibleSearch tells OptunaSearch it completed
    (placeholder objectives: the counted MACs, val_acc 0.0), Optuna calls constraints_func on it."""
    from harness import searchers, search as search_space

    monkeypatch.setattr("harness.tracking.record_infeasible", lambda *a: None)
    plan, seen, told = _constrained_plan(tmp_path), [], []

    class Recording(searchers.Violations):
        def __call__(self, trial):
            out = super().__call__(trial)
            seen.append((trial.params["sample/model.options.width"], out))
            return out

    optuna_search = OptunaSearch(metric=["val_acc", "macs"], mode=["max", "min"],
                                 sampler=searchers.sampler(NSGAIISampler, 0, Recording(plan)),
                                 points_to_evaluate=[{"sample/model.options.width": 1.0},
                                                     {"sample/model.options.width": 0.25}])
    optuna_search.set_search_properties(None, None, {"sample": search_space.domains(plan.spec)})
    trials = iter(["t1", "t2"])

    class Inner:  # Tune's SearchGenerator as FeasibleSearch drives it: proposals, then what it is told
        def next_trial(self):
            trial_id = next(trials, None)
            if trial_id is None:
                return None
            trial = type("T", (), {})()
            trial.trial_id, trial.custom_trial_name = trial_id, None
            trial.config = optuna_search.suggest(trial_id)
            return trial

        def on_trial_complete(self, trial_id, result=None, error=False):
            told.append((trial_id, result, error))
            optuna_search.on_trial_complete(trial_id, result=result, error=error)

    gated = FeasibleSearch(Inner(), Gate(plan, ctx={}), tell_completed=True)
    admitted = gated.next_trial()  # t1 (width 1.0) refused and told; t2 (width 0.25) admitted
    assert admitted.trial_id == "t2"
    gated.on_trial_complete("t2", result={"val_acc": 90.0, "macs": float(SMALL)})
    assert told[0] == ("t1", {"val_acc": 0.0, "macs": float(LARGE)}, False)
    assert seen == [(1.0, pytest.approx([0.0, 1.379008])), (0.25, pytest.approx([0.0, -0.847616]))]
