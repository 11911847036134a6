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


@pytest.mark.parametrize("sampler_class,objectives", [(TPESampler, {"val_acc": "max"}), (NSGAIISampler, OBJECTIVES)])
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
