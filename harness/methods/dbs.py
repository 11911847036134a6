"""Dynamic batch size (``method: {name: dbs}``): Zheng et al. Sec. 3.4, Algorithm 1, Sec. 5.3.

Per epoch the method sets the learning rate, the momentum and the batch size (the Trainer logs
them as ``lr``, ``momentum``, ``batch_size``); it also logs ``dbs_phase`` (0 warm-up, 1 learning-
rate doubling, 2 momentum increase, 3 scaling over) and ``dbs_b_line3`` (line 3's batch size
before Round & Clip and Stepwise). Phases, with E the run's epochs:

0. Warm-up: the learning rate rises linearly from ``lr_start`` (0.01) to ``lr`` (0.02) over the
   first ``warmup`` (10 %) of the epochs, epoch e of W using lr_start + (lr - lr_start)(e-1)/W.
1. Every ``double_every`` epochs (the paper's n, not given: 2 by default) the learning rate doubles while the validation accuracy at the
   end of a period is not below the one at the end of the period before; when it falls, the last
   doubling is undone and phase 2 starts (our reading of "until validation accuracy falls"). A
   doubling that would need a batch above B_max is not made; phase 2 starts instead.
2. The momentum follows eqs. 17-18, y'' y = k with y = 1 - m the distance to the line m = 1 and
   the independent variable the proportion p of the run's epochs since phase 2 began. Sec. 5.3's
   initial conditions: y(0) = 1 - m0 = 0.10 and y'(0) = -``rate`` = -0.50 per unit p, so that with
   k = 0 the momentum would reach 1.00 at p = 0.20, as the text says. The paper gives no unit for k.
   The rise stops (y' = 0) at y = y0 exp(-Π), Π = rate² / (2 k k_scale), the ODE solved as
   y'' y = k k_scale in units of momentum and p. Read with k_scale = 1 (k in those units), k = 1.6
   gives Π = 0.078: the momentum peaks at 0.9075 at p = 0.03 and the batch barely moves. Our
   reading fixes the unit by Sec. 5.3's own rule, "the k value that achieves the faster increase
   subject to the best convergence when the portion of total epochs is 0.30": of the ODE's own
   (un-held) curves, the highest momentum at p = 0.30 is the one at Π = 2.874, so k = 1.60 is that
   optimum when k_scale = 0.125 / (2.874 x 1.60) = 0.0272 (``K_SCALE``; tests/test_dbs.py re-derives
   it). Then k = 1.6 raises the momentum to 0.9943 at p = 0.25, flat by p = 0.30. After y' = 0 the
   ODE's y would grow again, so the momentum is held at its peak. ``momentum_curve`` solves the ODE
   (scipy's solve_ivp); Figure 5b plots it. Epoch e of phase 2 uses m(p), p = (e - e2 + 1)/E, but
   never more than the momentum at which line 3 gives B_max: the batch follows the momentum until
   it reaches its limit. Phase 2 ends when the validation accuracy falls (the momentum goes back to
   its last value), when the momentum has peaked, or when the batch size reaches B_max.
3. The batch size stays; the learning rate keeps its value.
Throughout (after warm-up) the learning rate is multiplied by ``decay`` (0.1) after ``patience``
(5) epochs without a new best validation accuracy, which also ends phases 1-2.

Batch size (Algorithm 1, lines 2-4), recomputed in phases 1-2 from the learning rate and momentum:
B = Stepwise(Round&Clip(η(1 - m0) / (η0 (1 - m)) B0, B_min, B_max)), with B0 = B_min =
``min_batch`` (default ``train.batch_size``), η0 = ``lr`` and m0 the momentum at the start of the
scaling period (our reading: Algorithm 1 is "the scaling period", after warm-up; during warm-up
η < η0, so line 3 gives B_min anyway). Stepwise rounds down to a multiple of 32 but not below B_min.
B_max is the smallest of ``max_batch`` (the device-memory limit: the user's number, 1024 by default,
the largest batch of the paper's grids) and N/10 (N training images; the linear scaling constraint
B << N/10 read as B <= N/10); the third limit, non-decreasing validation accuracy, is the rule
that ends phases 1 and 2.

The optimizer is torch's SGD (v = m v + g, θ -= η v); Algorithm 1 writes v = m v + η g, the same
update while η is constant.

``warmup_plateau`` is the same learning-rate strategy without the scaling period (phases 1-2): the
warm-up, then the plateau decay, at the row's fixed batch size and momentum. The fixed-batch rows
of Zheng's sweeps train with it, so their figures compare the batch policy alone.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import ConfigError
from ..registry import METHODS
from .base import TrainMethod

STEP = 32  # Algorithm 1's Stepwise: batch sizes are multiples of 32
PHASES = ("warmup", "lr", "momentum", "done")
K_SCALE = 0.0272  # eq. 18's unit: k = 1.60 gives the highest momentum at p = 0.30 (module docstring)


@functools.lru_cache(maxsize=64)
def _solve(k: float, m0: float, rate: float):
    from scipy.integrate import solve_ivp

    def peaked(p, state):
        return state[1]  # y' = 0: the rise of the momentum has stopped

    peaked.terminal, peaked.direction = True, 1
    return solve_ivp(lambda p, s: [s[1], k / s[0]], (0.0, 10.0), [1.0 - m0, -rate], events=peaked,
                     dense_output=True, rtol=1e-9, atol=1e-12)


def momentum_curve(p, k: float = 1.6, m0: float = 0.9, rate: float = 0.5, k_scale: float = K_SCALE,
                   held: bool = True) -> np.ndarray:
    """Momentum m(p) = 1 - y(p), y'' y = k k_scale, y(0) = 1 - m0, y'(0) = -rate; held at its peak after
    y' = 0 (``held=False``: the ODE's own curve, which turns back down, for p up to 10)."""
    if not k > 0:  # DBS passes its checked option; a caller's own k gets this range check only
        raise ConfigError("k", k, "a number > 0 (eq. 17's constant; the paper's range is 1.30 ... 1.75)")
    if not k_scale > 0:
        raise ConfigError("k_scale", k_scale, "a number > 0 (the unit of eq. 18's k; 1 reads k in momentum per p²)")
    solution = (_solve if held else _solve_free)(float(k) * float(k_scale), float(m0), float(rate))
    p = np.clip(np.asarray(p, dtype=float), 0.0, solution.t[-1])
    return 1.0 - solution.sol(p)[0]


@functools.lru_cache(maxsize=64)
def _solve_free(k: float, m0: float, rate: float):
    from scipy.integrate import solve_ivp

    return solve_ivp(lambda p, s: [s[1], k / s[0]], (0.0, 10.0), [1.0 - m0, -rate], dense_output=True,
                     rtol=1e-9, atol=1e-12)


def peak_p(k: float = 1.6, m0: float = 0.9, rate: float = 0.5, k_scale: float = K_SCALE) -> float:
    """The proportion of epochs at which the rise stops (y' = 0)."""
    return float(_solve(float(k) * float(k_scale), float(m0), float(rate)).t[-1])


def round_clip_step(b: float, b_min: int, b_max: int) -> int:
    """Algorithm 1 lines 3-4: Round & Clip into [b_min, b_max], then Stepwise (down to a multiple of 32, >= b_min)."""
    b = min(max(int(round(b)), b_min), b_max)
    return max(b_min, STEP * (b // STEP))


def _positive(key: str, value, integer: bool = False, allow_none: bool = False):
    """The range of an option; its type (``integer``: an int) is DynamicBatchSize's annotation."""
    if value is None and allow_none:
        return None
    if not value > 0:
        raise ConfigError(f"method.options.{key}", value, ("an integer" if integer else "a number") + " > 0"
                          + (" or null" if allow_none else ""))
    return value


@METHODS.register("dbs")
class DynamicBatchSize(TrainMethod):
    """Zheng et al.'s dynamic batch size: warm-up, lr doubling, momentum rise (y''y = k), B from Algorithm 1."""

    scaling = True  # the scaling period (phases 1-2) follows the warm-up; warmup_plateau has none
    owns = frozenset({"lr", "momentum", "batch_size"})  # set every epoch (warmup_plateau: to the run's own)

    def __init__(self, lr_start: float = 0.01, lr: float = 0.02, warmup: float = 0.1, double_every: int = 2,
                 k: float = 1.6, rate: float = 0.5, min_batch: int | None = None, max_batch: int = 1024,
                 patience: int = 5, decay: float = 0.1, k_scale: float = K_SCALE):
        self.lr_start, self.lr0 = _positive("lr_start", lr_start), _positive("lr", lr)
        if not 0 <= warmup < 1:
            raise ConfigError("method.options.warmup", warmup, "a fraction of the epochs in [0, 1)")
        self.warmup = float(warmup)
        self.double_every = _positive("double_every", double_every, integer=True)
        self.k, self.rate = _positive("k", k), _positive("rate", rate)
        self.k_scale = _positive("k_scale", k_scale)
        self.min_batch = _positive("min_batch", min_batch, integer=True, allow_none=True)
        self.max_batch = _positive("max_batch", max_batch, integer=True)
        if self.min_batch is not None and self.min_batch > self.max_batch:
            raise ConfigError("method.options.min_batch", min_batch, f"at most max_batch ({max_batch})")
        self.patience = _positive("patience", patience, integer=True)
        if not 0 < decay <= 1:
            raise ConfigError("method.options.decay", decay, "a factor in (0, 1]")
        self.decay = float(decay)
        self.state = {"phase": 0, "lr": self.lr0, "momentum": None, "period_epochs": 0, "period_ref": -math.inf,
                      "prev_val": -math.inf, "phase2_start": None, "prev_momentum": None, "best": -math.inf,
                      "bad_epochs": 0, "batch": None, "doublings": 0}

    # -- setup: the limits that need the run (B0, N, epochs, m0)
    def setup(self, ctx) -> None:
        t = ctx.cfg.train
        self.epochs = t.epochs
        self.b0 = self.min_batch or t.batch_size
        n_train = ctx.batches.num_samples
        self.b_max = min(self.max_batch, n_train // 10)
        if self.scaling and self.b0 > self.b_max:
            raise ConfigError("method.options.min_batch" if self.min_batch else "train.batch_size", self.b0,
                              f"at most B_max = min(max_batch {self.max_batch}, N/10 = {n_train // 10} for "
                              f"N = {n_train} training images)")
        self.m0 = t.momentum
        if self.scaling and not 0 < self.m0 < 1:
            raise ConfigError("train.momentum", self.m0, "a momentum in (0, 1): the DBS momentum phase raises it")
        self.warm_epochs = int(self.warmup * self.epochs + 0.5)
        if self.state["momentum"] is None:
            self.state.update(momentum=self.m0, batch=self.b0, phase=0 if self.warm_epochs else self.after_warmup)

    @property
    def after_warmup(self) -> int:
        return 1 if self.scaling else 3

    def line3(self, lr: float, momentum: float) -> float:
        return lr * (1.0 - self.m0) / (self.lr0 * (1.0 - momentum)) * self.b0

    def batch_for(self, lr: float, momentum: float) -> int:
        return round_clip_step(self.line3(lr, momentum), self.b0, self.b_max)

    def momentum_cap(self, lr: float) -> float:
        """The momentum at which line 3 gives B_max: beyond it the batch could not follow."""
        return 1.0 - lr * (1.0 - self.m0) * self.b0 / (self.lr0 * self.b_max)

    def before_epoch(self, ctx, epoch: int) -> dict:
        s = self.state
        if s["phase"] == 0 and epoch > self.warm_epochs:
            s["phase"] = self.after_warmup
        phase = s["phase"]  # the phase this epoch trains in (logged)
        if phase == 0:
            lr = self.lr_start + (self.lr0 - self.lr_start) * (epoch - 1) / self.warm_epochs
            s["batch"] = self.b0
        else:
            lr = s["lr"]
            if phase == 2:
                if s["phase2_start"] is None:
                    s["phase2_start"] = epoch
                p = (epoch - s["phase2_start"] + 1) / self.epochs
                s["prev_momentum"] = s["momentum"]
                rise, cap = float(momentum_curve(p, self.k, self.m0, self.rate, self.k_scale)), self.momentum_cap(lr)
                s["momentum"] = max(s["momentum"], min(rise, cap))
                if rise >= cap or p >= peak_p(self.k, self.m0, self.rate, self.k_scale):
                    s["phase"] = 3  # B_max reached or the momentum has peaked: this epoch is the last rise
            if phase in (1, 2):
                s["batch"] = self.batch_for(lr, s["momentum"])
        for group in ctx.optimizer.param_groups:
            group["lr"] = lr
            group["momentum"] = s["momentum"]
        ctx.batches.batch_size = s["batch"]
        return {"dbs_phase": phase, "dbs_b_line3": self.line3(lr, s["momentum"]) if phase else float(self.b0),
                "dbs_lr_doublings": s["doublings"]}

    def after_epoch(self, ctx, epoch: int, metrics: dict) -> dict:
        s, val = self.state, metrics.get("val_acc", math.nan)
        if math.isnan(val) or s["phase"] == 0:
            s["prev_val"] = val if not math.isnan(val) else s["prev_val"]
            return {}
        if s["phase"] == 1:
            s["period_epochs"] += 1
            if s["period_epochs"] >= self.double_every:
                s["period_epochs"] = 0
                if val < s["period_ref"]:
                    if s["doublings"]:
                        s["lr"] /= 2.0  # undo the doubling that lowered the validation accuracy
                        s["doublings"] -= 1
                    s["phase"] = 2
                elif self.line3(2.0 * s["lr"], s["momentum"]) > self.b_max:
                    s["phase"] = 2  # the next doubling would need a batch above B_max
                else:
                    s["period_ref"] = val
                    s["lr"] *= 2.0
                    s["doublings"] += 1
        elif s["phase"] == 2 and val < s["prev_val"]:
            s["momentum"] = s["prev_momentum"]  # the rise lowered the validation accuracy: step back, stop
            s["batch"] = self.batch_for(s["lr"], s["momentum"])
            s["phase"] = 3
        s["prev_val"] = val
        if val > s["best"]:
            s["best"], s["bad_epochs"] = val, 0
        else:
            s["bad_epochs"] += 1
            if s["bad_epochs"] >= self.patience:
                s["lr"] *= self.decay
                s["bad_epochs"] = 0
                if s["phase"] in (1, 2):
                    s["phase"] = 3
        return {}

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, sd: dict) -> None:
        self.state.update(sd)


@METHODS.register("warmup_plateau")
class WarmupPlateau(DynamicBatchSize):
    """DBS's learning-rate strategy alone: warm-up from lr_start to lr, then x decay after patience epochs
    without a better validation accuracy; batch size and momentum stay the run's."""

    scaling = False

    def __init__(self, lr_start: float = 0.01, lr: float = 0.02, warmup: float = 0.1, patience: int = 5,
                 decay: float = 0.1):
        super().__init__(lr_start=lr_start, lr=lr, warmup=warmup, patience=patience, decay=decay)
