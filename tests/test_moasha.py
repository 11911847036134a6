"""harness.moasha: MO-ASHA's promotions on constructed learning curves whose fronts are worked out by
hand, driven through Tune's public scheduler methods (no Ray cluster), and ``scheduler: {name: mo_asha}``
in a search sweep."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from harness import search, stopping
from harness.errors import ConfigError
from harness.moasha import MOASHAScheduler, nondominated_fronts, pareto_rank
from tests.test_search import block, write_search_sweep

GO, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
OBJECTIVES = {"val_acc": "max", "macs": "min"}


def _report(scheduler, trial_id: str, epoch: int, val_acc: float, macs: float) -> str:
    """One epoch's report as harness.trial makes it: the epoch's metrics with the model's counts."""
    trial = SimpleNamespace(trial_id=trial_id)
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_acc": val_acc, "macs": macs, "params": 1.0})


def test_fronts_and_the_epsilon_net_order_by_hand():
    # minimized points: (1, 4) (2, 2) (4, 1) are mutually non-dominated; (3, 3) is dominated by (2, 2)
    # only; (5, 5) by all four
    points = np.array([[3, 3], [1, 4], [5, 5], [2, 2], [4, 1]], dtype=float)
    assert nondominated_fronts(points) == [[1, 3, 4], [0], [2]]
    # scaled to [0, 1] (both spans 4): row1 (0, .75), row3 (.25, .25), row4 (.75, 0), row0 (.5, .5).
    # first pick: the best on the first objective, row 1; then the farthest from row 1: row 4
    # (dist sqrt(.75^2 + .75^2) = 1.06) over row 3 (sqrt(.0625 + .25) = .56); then row 3; then front 2, 3
    assert pareto_rank(points) == [1, 4, 3, 0, 2]


def test_mo_asha_keeps_the_cheap_trial_that_asha_on_val_acc_would_stop():
    # grace 1, rf 2, max_t 5 (4 epochs + 1, as build_scheduler sets it): rungs at epochs 1, 2, 4
    s = MOASHAScheduler(OBJECTIVES, time_attr="epoch", max_t=5, grace_period=1, reduction_factor=2)
    assert s.milestones == [1, 2, 4]
    # rung 1, in arrival order (val_acc %, macs):
    assert _report(s, "A", 1, 50, 10) == GO    # alone: top ceil(1/2) = 1
    assert _report(s, "B", 1, 60, 40) == GO    # A, B non-dominated; top 1 of 2: B (best val_acc, the first pick)
    assert _report(s, "C", 1, 45, 50) == STOP  # dominated by A and by B: front 2; top 2 of 3 is B, A
    # D: the cheapest, least accurate. Front 1 = A, B, D. Top 2 of 4: B first; scaled (val span 20,
    # macs span 45) B = (0, .778), A = (.5, .111), D = (1, 0): D is farther from B (1.27) than A (.83)
    assert _report(s, "D", 1, 40, 5) == GO
    # (Tune's ASHA on val_acc alone: cutoff = median of 50, 60, 45 = 50 > 40: it stops D.)
    # E = (55, 30) sits on the front (C is dominated by it too) but next to B: scaled E = (.25, .556),
    # 0.33 from B; top 3 of 5 by the net: B, D (1.27 from B), then A (.51 from D) over E (.33 from B)
    assert _report(s, "E", 1, 55, 30) == STOP
    # a later report below the next rung is not ranked again
    assert _report(s, "D", 1, 41, 5) == GO and len(s.rungs[0]) == 5
    # rung 2: B first (alone); then D, non-dominated by B but top 1 of 2 is B (best val_acc)
    assert _report(s, "B", 2, 65, 40) == GO
    assert _report(s, "D", 2, 42, 5) == STOP
    # a result without one of the objectives is let go on and recorded nowhere
    assert s.on_trial_result(None, SimpleNamespace(trial_id="F"), {"epoch": 1, "val_acc": 70.0}) == GO
    assert "F" not in s.rungs[0]
    assert [(t, m, a) for t, m, a in s.decisions] == [
        ("A", 1, GO), ("B", 1, GO), ("C", 1, STOP), ("D", 1, GO), ("E", 1, STOP), ("B", 2, GO), ("D", 2, STOP)]
    assert s.num_stopped == 3


def test_a_min_accuracy_objective_and_a_max_cost_flip_the_ranking():
    # the same arrivals with both modes reversed (the least accurate, most costly is best): A and B
    # are non-dominated and the first pick is the best on val_acc, now A (50 < 60): B stops; C (45, 50)
    # dominates both, alone on the first front: it goes on
    s = MOASHAScheduler({"val_acc": "min", "macs": "max"}, time_attr="epoch", max_t=5, grace_period=1,
                        reduction_factor=2)
    assert [_report(s, t, 1, v, m) for t, v, m in [("A", 50, 10), ("B", 60, 40), ("C", 45, 50)]] == [GO, STOP, GO]


def test_mo_asha_in_a_search_sweep_takes_the_sweeps_objectives(tmp_path):
    sweep = write_search_sweep(tmp_path, block(scheduler={"name": "mo_asha", "grace_period": 1, "reduction_factor": 2}))
    spec = sweep.search_plan("paper").spec
    s = stopping.build_scheduler(spec, 4)
    assert isinstance(s, MOASHAScheduler)
    assert (s.objectives, s.time_attr, s.max_t, s.milestones) == (OBJECTIVES, "epoch", 5, [1, 2, 4])


@pytest.mark.parametrize("options, key, valid", [
    ({"grace": 1}, "search.scheduler.grace", "grace_period"),
    ({"objectives": {"val_acc": "max"}}, "search.scheduler.objectives", "from search.objectives"),
    ({"reduction_factor": 1}, "search.scheduler", "reduction_factor must be > 1"),
    ({"grace_period": 5}, "search.scheduler", "must be below max_t"),
])
def test_bad_mo_asha_options_name_the_key_and_what_is_valid(options, key, valid):
    spec = search.parse_search(block(scheduler={"name": "mo_asha", **options}))
    with pytest.raises(ConfigError) as e:
        stopping.build_scheduler(spec, 4)
    assert e.value.key == key and valid in e.value.valid


def test_mo_asha_needs_an_objective_reported_every_epoch():
    with pytest.raises(ConfigError) as e:
        search.parse_search(block(scheduler={"name": "mo_asha"}, objectives={"macs": "min", "params": "min"}))
    assert e.value.key == "search.scheduler" and "every epoch" in e.value.valid
