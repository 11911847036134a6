"""Zheng et al.'s dynamic batch size (harness/methods/dbs.py): Algorithm 1's batch rule, the momentum ODE
(eqs. 17-18) and the unit of its k, the per-epoch schedule a run gets, and the warm-up + plateau strategy
the fixed-batch rows share with it."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.methods import base as methods_base
from harness.methods import dbs


def _stub_context(epochs=30, batch=128, n_train=45000, momentum=0.9):
    optimizer = SimpleNamespace(param_groups=[{"lr": 0.02, "momentum": momentum}])
    return SimpleNamespace(cfg=SimpleNamespace(train=SimpleNamespace(epochs=epochs, batch_size=batch, momentum=momentum)),
                           optimizer=optimizer, batches=SimpleNamespace(num_samples=n_train, batch_size=batch))


def _schedule(method, ctx, val_acc):
    """(phase, lr, momentum, batch) of every epoch, from the method's own hooks, given val_acc per epoch."""
    method.setup(ctx)
    log = []
    for epoch, val in enumerate(val_acc, 1):
        extra = method.before_epoch(ctx, epoch)
        group = ctx.optimizer.param_groups[0]
        log.append((extra["dbs_phase"], group["lr"], group["momentum"], ctx.batches.batch_size))
        method.after_epoch(ctx, epoch, {"val_acc": val})
    return log


# The docs' scenario: 30 epochs, validation accuracy rising every epoch but at epoch 9, where it falls
# below epoch 7's, so the second doubling (epochs 8-9) is undone and the momentum phase starts at epoch 10.
SCENARIO = [5.0 if e == 9 else float(e) for e in range(1, 31)]


def test_algorithm_1_round_clip_stepwise():
    assert dbs.round_clip_step(200.4, 128, 1024) == 192
    assert dbs.round_clip_step(100, 128, 1024) == 128
    assert dbs.round_clip_step(5000, 128, 1024) == 1024
    assert dbs.round_clip_step(1000, 128, 1000) == 992
    with pytest.raises(ConfigError, match="min_batch"):
        dbs.DynamicBatchSize(min_batch=2048, max_batch=1024)


def test_momentum_curve_follows_the_ode():
    assert dbs.momentum_curve(0.0) == pytest.approx(0.9)
    assert dbs.momentum_curve(1e-4) == pytest.approx(0.9 + 0.5e-4, abs=1e-6)  # y'(0) = -0.5 per unit p
    for k in (1.3, 1.6, 1.75):  # energy: y'^2/2 - k k_scale ln y is constant, so y' = 0 at y0 exp(-rate^2 / 2 k k_scale)
        for k_scale in (1.0, dbs.K_SCALE):
            assert dbs.momentum_curve(5.0, k, k_scale=k_scale) == pytest.approx(
                1 - 0.1 * math.exp(-0.125 / (k * k_scale)), abs=1e-6)
    curve = dbs.momentum_curve(np.linspace(0, 0.3, 50))
    assert np.all(np.diff(curve) >= -1e-12)  # held at its peak, never falls back
    free = dbs.momentum_curve(np.linspace(0, 0.6, 61), held=False)
    assert free[-1] < free.max() - 0.05  # the ODE's own curve turns back down after y' = 0
    with pytest.raises(ConfigError):
        dbs.momentum_curve(0.1, k=0)
    with pytest.raises(ConfigError, match="k_scale"):
        dbs.momentum_curve(0.1, k_scale=0)


def test_k_scale_makes_k_1_60_the_papers_optimum():
    """Sec. 5.3: "the k value that achieves the faster increase subject to the best convergence when the
    portion of total epochs is 0.30" is 1.60. Of the ODE's own curves for k = 1.30 ... 1.75, the highest
    momentum at p = 0.30 is at k = 1.60 under K_SCALE, at the range's edge (1.30) when k is read in units of
    momentum and p (k_scale = 1), where the momentum has fallen back to 0.47-0.57 by p = 0.30."""
    ks = np.round(np.arange(1.30, 1.7501, 0.01), 2)
    at_030 = [float(dbs.momentum_curve(0.30, k, held=False)) for k in ks]
    assert ks[int(np.argmax(at_030))] == pytest.approx(1.60)
    literal = [float(dbs.momentum_curve(0.30, k, held=False, k_scale=1.0)) for k in ks]
    assert ks[int(np.argmax(literal))] == pytest.approx(1.30) and max(literal) < 0.58
    # what each reading does at k = 1.6: the peak and where it is
    assert dbs.momentum_curve(1.0, k_scale=1.0) == pytest.approx(0.9075, abs=1e-4)
    assert dbs.peak_p(k_scale=1.0) == pytest.approx(0.0297, abs=1e-4)
    assert dbs.momentum_curve(1.0) == pytest.approx(0.9943, abs=1e-4)
    assert dbs.peak_p() == pytest.approx(0.2535, abs=1e-4)


def test_dbs_schedule_at_30_epochs_from_batch_128():
    """The docs' table: warm-up (3 epochs), lr doubling with the batch (B = 128 x lr / 0.02), the fall at
    epoch 9 undoes the second doubling, then the momentum follows m(p), p = 1/30, 2/30, ..., and the batch
    follows it until line 3 reaches B_max = 1024, where the momentum stops at 1 - 2 x 0.1 x 128 / 1024."""
    log = _schedule(dbs.DynamicBatchSize(), _stub_context(), SCENARIO)
    phases, lrs, momenta, batches = zip(*log)
    assert phases[:16] == (0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3) and set(phases[16:]) == {3}
    assert [round(lr, 4) for lr in lrs[:10]] == [0.01, 0.0133, 0.0167, 0.02, 0.02, 0.04, 0.04, 0.08, 0.08, 0.04]
    assert set(lrs[9:]) == {0.04}  # no plateau: the accuracy keeps rising after epoch 9
    assert [round(m, 4) for m in momenta[9:16]] == [0.9164, 0.9322, 0.9473, 0.9615, 0.9744, 0.975, 0.975]
    assert batches == (128,) * 5 + (256, 256, 512, 512, 288, 352, 480, 640, 992) + (1024,) * 16
    for epoch in range(10, 15):  # momenta from the ODE, batches from Algorithm 1 lines 3-4
        m = float(dbs.momentum_curve((epoch - 9) / 30))
        assert momenta[epoch - 1] == pytest.approx(m)
        assert batches[epoch - 1] == 32 * (round(0.04 / 0.02 * 0.1 / (1 - m) * 128) // 32)
    assert momenta[14] == pytest.approx(1 - 2 * 0.1 * 128 / 1024)


def test_dbs_schedule_at_30_epochs_from_batch_1024():
    """B0 = 1024 = B_max: no doubling fits and the momentum stays, as the batch could not follow it.
    With max_batch 4500 (CIFAR's N/10) it runs as from 128, to 4480 (Stepwise of 4500)."""
    pinned = _schedule(dbs.DynamicBatchSize(), _stub_context(batch=1024), SCENARIO)
    assert {(m, b) for _, _, m, b in pinned} == {(0.9, 1024)}
    assert [p for p, *_ in pinned[:7]] == [0, 0, 0, 1, 1, 2, 3]
    lifted = _schedule(dbs.DynamicBatchSize(max_batch=4500), _stub_context(batch=1024), SCENARIO)
    assert [b for *_, b in lifted[:14]] == [1024] * 5 + [2048, 2048, 4096, 4096, 2432, 3008, 3872, 4480, 4480]
    assert [round(m, 4) for _, _, m, _ in lifted[9:14]] == [0.9164, 0.9322, 0.9473, 0.9545, 0.9545]
    assert lifted[12][2] == pytest.approx(1 - 2 * 0.1 * 1024 / 4500)


def test_literal_k_units_reduce_dbs_to_warmup_and_lr_doubling():
    """Issue 15's finding, kept reproducible: with k in units of momentum and p the momentum peaks at 0.9075
    in the first epoch of its phase and the batch grows by at most 32 from B0 (none from 128 or 256)."""
    for b0 in (128, 256, 512):
        method = dbs.DynamicBatchSize(k_scale=1.0, double_every=1)  # the fall at epoch 5 undoes the one doubling
        log = _schedule(method, _stub_context(batch=b0), [3.5 if e == 5 else float(e) for e in range(1, 31)])
        assert [round(lr, 4) for _, lr, _, _ in log[3:7]] == [0.02, 0.04, 0.02, 0.02]
        momenta = {round(m, 4) for _, _, m, _ in log}
        assert momenta == {0.9, 0.9075} and log[5][2] == pytest.approx(0.9075, abs=1e-4)  # from epoch 6 on
        grown = max(b for *_, b in log[5:]) - b0
        assert grown == {128: 0, 256: 0, 512: 32}[b0]  # 0.1 / 0.0925 x B0: 138 -> 128, 277 -> 256, 554 -> 544


def test_dbs_plateau_decay_and_checkpoint():
    ctx = _stub_context(epochs=20, n_train=20000)
    method = dbs.DynamicBatchSize(double_every=1)
    vals = [50, 60, 70, 75, 74, 80, 80, 80, 80, 80, 80, 81]
    log = _schedule(method, ctx, vals)
    assert [(round(lr, 4), b, p) for p, lr, _, b in log[:5]] == [
        (0.01, 128, 0), (0.015, 128, 0), (0.02, 128, 1), (0.04, 256, 1), (0.08, 512, 1)]
    assert log[5][0] == 2 and log[5][1] == pytest.approx(0.04)  # val fell: lr undone, the momentum rises
    assert log[5][2] == pytest.approx(float(dbs.momentum_curve(1 / 20)))
    # an equal val_acc is not a fall: the rise goes on, p = 2/20, 3/20, until line 3 reaches B_max (epoch 9)
    assert [p for p, *_ in log[5:]] == [2, 2, 2, 2, 3, 3, 3]
    assert [b for *_, b in log[5:9]] == [320, 480, 800, 1024] and log[8][2] == pytest.approx(0.975)
    # val 80 at epoch 6 is the best; epochs 7-11 do not beat it: lr x 0.1 from epoch 12, the batch stays
    assert log[11][1] == pytest.approx(0.004) and log[11][2:] == (0.975, 1024)
    restored = dbs.DynamicBatchSize(double_every=1)
    restored.load_state_dict(method.state_dict())
    assert restored.state == method.state


def test_dbs_batch_limits_are_checked_before_training():
    method = dbs.DynamicBatchSize()
    with pytest.raises(ConfigError, match="N/10"):
        method.setup(_stub_context(batch=128, n_train=1000))  # B0 = 128 > N/10 = 100
    with pytest.raises(ConfigError, match="method.options.k_scale"):
        methods_base.build_method("dbs", {"k_scale": -1})


def test_warmup_plateau_is_dbs_lr_strategy_at_a_fixed_batch():
    """The fixed-batch rows: the same warm-up and plateau decay, no scaling period, any batch (no N/10 limit)."""
    ctx = _stub_context(epochs=20, batch=1024, n_train=3000)  # 1024 > N/10 = 300: allowed, nothing scales
    method = methods_base.build_method("warmup_plateau", {})
    vals = [50, 60, 70, 71, 72, 73, 73, 73, 73, 73, 73, 74, 74]
    log = _schedule(method, ctx, vals)
    assert [round(lr, 4) for _, lr, _, _ in log] == [0.01, 0.015] + [0.02] * 9 + [0.002] * 2
    assert {(p, m, b) for p, _, m, b in log[2:]} == {(3, 0.9, 1024)}
    with pytest.raises(ConfigError, match="method.options.k"):
        methods_base.build_method("warmup_plateau", {"k": 1.6})  # no momentum phase to tune
