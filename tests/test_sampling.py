"""The reduced random sampling schedules and planner against Jiang's Sec. 3.2, Theorems 1-4."""
import math

import pytest

from harness.errors import ConfigError
from harness.methods import sampling


def test_theorem1_values_printed_in_the_paper():
    # eq. (7a), (7b): N = 120 epochs
    assert sampling.miss_probability(sampling.flat_ratios(120, 0.8)) == pytest.approx(1.3292e-84, rel=1e-4)
    assert sampling.miss_probability(sampling.flat_ratios(120, 0.618)) == pytest.approx(7.0405e-51, rel=1e-4)


def test_corollary1_flat_time_ratio_is_alpha():
    assert sampling.time_ratio(sampling.flat_ratios(120, 0.618)) == pytest.approx(0.618)


def test_three_stage_r3_schedule_by_hand():
    # R3: alpha = [0.8, 0.8, 0.25], gamma = [1/3, 1/2, 1/6], se = 0.8 over 120 epochs
    r = sampling.three_stage_ratios(120, [0.8, 0.8, 0.25], [1 / 3, 1 / 2, 1 / 6], 0.8)
    assert sampling.stage_epochs(120, [1 / 3, 1 / 2, 1 / 6]) == (40, 60, 20)
    assert r[:40] == [0.8] * 40
    # stage 2 opens squeezed (the first bottleneck borrows stage 1's last epoch), 12 full blocks
    assert r[40:45] == pytest.approx([0.64, 0.64, 0.64, 0.64, 0.8])
    assert r[40:100] == pytest.approx([0.64, 0.64, 0.64, 0.64, 0.8] * 12)
    assert r[100:] == [0.25] * 20
    # Theorem 3: N21 = 12 epochs at 0.8 and N22 = 48 at 0.64 in stage 2
    expected = 0.2 ** 40 * 0.2 ** 12 * 0.36 ** 48 * 0.75 ** 20
    assert sampling.miss_probability(r) == pytest.approx(expected, rel=1e-9)
    # Corollary 2: (0.8*40 + 0.8*12 + 0.64*48 + 0.25*20) / 120
    assert sampling.time_ratio(r) == pytest.approx((32 + 9.6 + 30.72 + 5) / 120)


def test_partial_last_bottleneck_ends_squeezed():
    # N2 = 7: one full block (4 squeezed + 1) and a partial one of 2 squeezed epochs
    r = sampling.three_stage_ratios(9, [1.0, 1.0, 1.0], [1 / 9, 7 / 9, 1 / 9], 0.5)
    assert r == [1.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0]
    assert r[7] == 0.5  # the last epoch of stage 2 is alpha_22 when N2 is not a multiple of 5


def test_stage_rounding_rule_halves_up():
    assert sampling.stage_epochs(15, [1 / 3, 1 / 2, 1 / 6]) == (5, 7, 3)  # 2.5 -> 3
    assert sampling.stage_epochs(10, [1 / 3, 1 / 3, 1 / 3]) == (3, 4, 3)


def test_theorem4_counts_batches_with_floor():
    # D = 50,000, B = 128: M = 391 batches, the last holds 80 images; alpha = 0.8 -> floor(312.8) = 312
    t4 = sampling.theorem4(sampling.flat_ratios(10, 0.8), 128, 50000)
    assert t4["M"] == 391
    assert t4["batches_per_epoch"] == [312] * 10
    assert t4["time_ratio"] == pytest.approx(312 / (390 + 80 / 128))
    lo, hi = t4["time_ratio_bounds"]
    assert lo == pytest.approx(312 / 391) and hi == pytest.approx(312 / 390)
    assert lo <= t4["time_ratio"] < hi  # eq. (9)


def test_full_epoch_keeps_the_partial_last_batch():
    assert sampling.batches_per_epoch(1.0, 391) == 391
    assert sampling.batches_per_epoch(0.618, 391) == math.floor(0.618 * 391)


@pytest.mark.parametrize("alpha,gamma,se,key", [
    ([0.8, 1.2, 0.8], [1 / 3] * 3, 0.8, "sampler.alpha[1]"),
    ([0.8, 0.8, 0.8], [0.5, 0.5, 0.5], 0.8, "sampler.gamma"),
    ([0.8, 0.8, 0.8], [1 / 3] * 3, 0.0, "sampler.se"),
    ([0.0], [1, 0, 0], 1.0, "sampler.alpha"),
])
def test_bad_settings_name_the_key(alpha, gamma, se, key):
    with pytest.raises(ConfigError) as e:
        sampling.plan(12, alpha, gamma, se)
    assert e.value.key == key


def test_the_sampler_is_chosen_through_its_registry(monkeypatch):
    """A sampler registered in SAMPLERS is a valid ``sampler.name`` and is what a run's ratios come
    from: no list of names in the config, no branch over names in the dispatch."""
    from harness.config import RunConfig
    from harness.registry import SAMPLERS

    SAMPLERS.names()  # filled from harness.methods.sampling first, so the test's entry is the only one added
    monkeypatch.setitem(SAMPLERS._items, "test_halving", lambda sampler, epochs: [0.5 ** e for e in range(epochs)])
    monkeypatch.setitem(SAMPLERS._meta, "test_halving", {})
    cfg = RunConfig.from_dict({"train": {"epochs": 3}, "sampler": {"name": "test_halving"}})
    assert sampling.schedule_from_config(cfg.sampler, 3) == [1.0, 0.5, 0.25]
    cfg = RunConfig.from_dict({"train": {"epochs": 3}, "sampler": {"name": "three_stage", "alpha": [1, 0.5, 1],
                                                                   "gamma": [1 / 3] * 3, "internal": 1}})
    assert sampling.schedule_from_config(cfg.sampler, 3) == [1.0, 0.5, 1.0]  # one epoch per stage, internal 1
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict({"sampler": {"name": "flat", "alpha": [0.5, 0.5]}})  # the flat sampler's own check
    assert (e.value.key, e.value.valid) == ("sampler.alpha", "one ratio for the flat sampler")
