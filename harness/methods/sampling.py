"""Reduced random sampling of Jiang (dissertation Sec. 3.2): per-epoch sampling ratios and their theory.

Produces, for a run of N epochs, the ratio alpha_e of every epoch e (Figures 3.6-3.9), the number of
batches trained in it (floor(alpha_e * M) of the same batch size B, M = ceil(D / B), from a fresh
shuffle), and the planner figures: the missing probability of Theorems 1 and 3, the time ratio of
Corollaries 1 and 2, and Theorem 4's ratio given B and D.

Three-stage schedule (Sec. 3.2.3, Figure 3.9), with alpha = (alpha_1, alpha_21, alpha_3),
gamma = (gamma_1, gamma_2, gamma_3) and alpha_22 = se * alpha_21:
  * N_1 = round(gamma_1 * N) and N_3 = round(gamma_3 * N), halves rounded up, and
    N_2 = N - N_1 - N_3, as the text defines N_2 (rounding rule ours: the paper's N are whole).
  * Stage 2 is a chain of bottlenecks [alpha_22] * internal + [alpha_21]; the first borrows stage 1's
    last epoch as its start epoch (so stage 2 opens with squeezed epochs); the chain is cut at N_2
    epochs, so a partial last bottleneck ends on alpha_22 and a full one on alpha_21.
The flat schedule is alpha every epoch; ``full`` is alpha = 1 (the regular method).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError
from ..registry import SAMPLERS


def _ratio(key: str, value: float) -> float:
    if not (0 < value <= 1):
        raise ConfigError(key, value, "a sampling ratio in (0, 1]")
    return float(value)


def stage_epochs(epochs: int, gamma: Sequence[float]) -> tuple[int, int, int]:
    """(N_1, N_2, N_3) for N = ``epochs``; see the module docstring for the rounding rule."""
    if epochs <= 0:
        raise ConfigError("epochs", epochs, "an integer > 0")
    if len(gamma) != 3 or any(g < 0 for g in gamma) or abs(sum(gamma) - 1) > 1e-6:
        raise ConfigError("sampler.gamma", list(gamma), "three fractions >= 0 that sum to 1")
    n1 = math.floor(gamma[0] * epochs + 0.5)
    n3 = math.floor(gamma[2] * epochs + 0.5)
    n1, n3 = min(n1, epochs), min(n3, epochs - min(n1, epochs))
    return n1, epochs - n1 - n3, n3


def full_ratios(epochs: int) -> list[float]:
    """The regular method: every batch of every epoch."""
    return [1.0] * epochs


def flat_ratios(epochs: int, alpha: float) -> list[float]:
    """Flat reduced random sampling (Sec. 3.2.1): the same ratio alpha every epoch."""
    return [_ratio("sampler.alpha", alpha)] * epochs


def three_stage_ratios(epochs: int, alpha: Sequence[float], gamma: Sequence[float], se: float,
                       internal: int = 4) -> list[float]:
    """Three-stage training with bottleneck sampling in stage 2 (Sec. 3.2.2-3.2.3)."""
    if len(alpha) != 3:
        raise ConfigError("sampler.alpha", list(alpha), "three ratios (alpha_1, alpha_21, alpha_3)")
    a1, a21, a3 = (_ratio(f"sampler.alpha[{i}]", a) for i, a in enumerate(alpha))
    if not (0 < se <= 1):
        raise ConfigError("sampler.se", se, "a squeeze ratio in (0, 1]")
    if internal < 1:
        raise ConfigError("sampler.internal", internal, "an integer >= 1")
    a22 = a21 * se
    n1, n2, n3 = stage_epochs(epochs, gamma)
    block = [a22] * internal + [a21]
    stage2 = [block[i % len(block)] for i in range(n2)]
    return [a1] * n1 + stage2 + [a3] * n3


# The samplers ``sampler.name`` chooses: each maps the sampler section (harness.config.SamplerConfig)
# and the run's epochs to the per-epoch ratios, reading the settings its schedule takes.

@SAMPLERS.register("full")
def _full(sampler, epochs: int) -> list[float]:
    return full_ratios(epochs)


@SAMPLERS.register("flat")
def _flat(sampler, epochs: int) -> list[float]:
    if len(sampler.alpha) != 1:
        raise ConfigError("sampler.alpha", list(sampler.alpha), "one ratio for the flat sampler")
    return flat_ratios(epochs, sampler.alpha[0])


@SAMPLERS.register("three_stage")
def _three_stage(sampler, epochs: int) -> list[float]:
    return three_stage_ratios(epochs, sampler.alpha, sampler.gamma, sampler.se, sampler.internal)


def schedule_from_config(sampler, epochs: int) -> list[float]:
    """The per-epoch ratios of a ``SamplerConfig``; raises ConfigError on bad settings."""
    return SAMPLERS.get(sampler.name)(sampler, epochs)


def batches_per_epoch(ratio: float, full_batches: int) -> int:
    """M_alpha = floor(alpha * M) (Theorem 2); alpha = 1 keeps all M, the last possibly partial.

    At least one batch, so a tiny quick-profile epoch still trains.
    """
    if ratio >= 1:
        return full_batches
    return max(1, math.floor(ratio * full_batches + 1e-9))


def miss_probability(ratios: Sequence[float]) -> float:
    """Theorems 1 and 3: p = prod_e (1 - alpha_e), each epoch an independent draw."""
    p = 1.0
    for a in ratios:
        p *= 1.0 - a
    return p


def time_ratio(ratios: Sequence[float]) -> float:
    """Corollaries 1 and 2: T_B / T ~ sum_i alpha_i N_i / N (alpha M >> 1, T_0alpha ~ T_0)."""
    return sum(ratios) / len(ratios)


def theorem4(ratios: Sequence[float], batch_size: int, samples: int) -> dict:
    """Theorem 4 (eq. 12) with T_0alpha = T_0: sum_e M_e / ((M - 1) + T_1/T_0) N.

    T_1 / T_0, the last regular batch's time over a full batch's, is taken as its share of B
    samples; eq. (9)'s bounds (T_1 in (0, T_0]) are returned too.
    """
    if batch_size <= 0:
        raise ConfigError("batch", batch_size, "an integer > 0")
    if samples <= 0:
        raise ConfigError("samples", samples, "an integer > 0")
    m = math.ceil(samples / batch_size)
    last_fraction = (samples - (m - 1) * batch_size) / batch_size
    per_epoch = [batches_per_epoch(a, m) for a in ratios]
    n = len(ratios)
    total = sum(per_epoch)
    return {
        "M": m,
        "batches_per_epoch": per_epoch,
        "batches_total": total,
        "time_ratio": total / (((m - 1) + last_fraction) * n),
        "time_ratio_bounds": [total / (m * n), total / (max(m - 1, 1e-12) * n)],
    }


@dataclass(frozen=True)
class Plan:
    ratios: list[float]
    stage_epochs: tuple[int, int, int]
    time_ratio: float
    miss_probability: float
    theorem4: dict | None

    def to_dict(self) -> dict:
        return {"ratios": self.ratios, "stage_epochs": list(self.stage_epochs), "time_ratio": self.time_ratio,
                "miss_probability": self.miss_probability, "theorem4": self.theorem4}


def plan(epochs: int, alpha: Sequence[float], gamma: Sequence[float] = (1.0, 0.0, 0.0), se: float = 1.0,
         internal: int = 4, batch_size: int | None = None, samples: int | None = None) -> Plan:
    """What ``harness sampling`` prints: one alpha is the flat method, three the three-stage one."""
    if epochs <= 0:
        raise ConfigError("epochs", epochs, "an integer > 0")
    if len(alpha) == 1:
        ratios = flat_ratios(epochs, alpha[0])
        stages = (epochs, 0, 0)
    else:
        ratios = three_stage_ratios(epochs, alpha, gamma, se, internal)
        stages = stage_epochs(epochs, gamma)
    t4 = None
    if (batch_size is None) != (samples is None):
        raise ConfigError("--batch/--samples", (batch_size, samples), "both given, or neither")
    if batch_size is not None:
        t4 = theorem4(ratios, batch_size, samples)
    return Plan(ratios, stages, time_ratio(ratios), miss_probability(ratios), t4)
