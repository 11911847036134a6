"""Initialization of Max-Min kernels (Jin 2018, Secs. 2.4, 3.2, 3.3): variance factors and scaled He init.

A Max-Min kernel keeps two of a kernel's n = k x k elements (its maximum and minimum) or replaces
them by a binary pair, so at initialization the re-derived weight's variance is a fraction (or a
multiple) of the dense weight's. ``variance_factor(mode, k)`` returns that ratio,
E[w'^2] / Var[w] for i.i.d. Gaussian w, by numerical integration of

  sparse             eq. 2.7   2 ∫ x² Φ^(n-1)(x) dΦ(x)                                   0.569 at k = 3
  binary_heuristic   eq. 3.3   (n-1) ∬ |x-y|² |Φ(x)-Φ(y)|^(n-2) dΦ(x) dΦ(y)              2.105 at k = 3
  binary_approx      eq. 3.8   ¼ (n-1) ∬ (|x|+|y|)² |Φ(x)-Φ(y)|^(n-2) dΦ(x) dΦ(y)        0.527 at k = 3

and ``he_std(fan_in, factor)`` the standard deviation that puts a layer on He's critical line
(eqs. 2.8, 3.4, 3.9): ½ n_l Var[W] factor = 1, n_l = fan_in. ``variance_factor_for(mode, n)``
does the same for any group of n elements (a 1x7 kernel, or a 1x1 layer's input channels for the
channel-wise variant).

All three are one expectation over the joint law of (min, max) of n standard normals: the
re-derived kernel puts nonzeros only at those two positions, so factor = E[h(min, max)] / n with
h = min² + max² (sparse), 2 (max - min)² (heuristic: ±(max - min)) or 2 (½(|max| + |min|))²
(approximation: sign times α* = ½‖W̃‖₁). The density of (min, max) = (x, y), x < y, is
n (n-1) (Φ(y) - Φ(x))^(n-2) φ(x) φ(y); we integrate it with Gauss-Legendre rules on pieces where
the integrand is smooth (split at x = y and at 0, where |x| bends), which is exact to ~1e-10.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import ConfigError

MODES = ("sparse", "binary_heuristic", "binary_approx")
TAIL = 12.0  # integration limits ±TAIL: the normal density there is below 1e-31
NODES = 192  # Gauss-Legendre nodes per piece and dimension


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _h(mode: str, lo, hi):
    """The sum of squares of the re-derived kernel's two nonzeros, given its min and max."""
    if mode == "sparse":
        return lo * lo + hi * hi
    if mode == "binary_heuristic":
        return 2.0 * (hi - lo) ** 2
    return 0.5 * (np.abs(lo) + np.abs(hi)) ** 2


def _check_mode(mode) -> None:
    if mode not in MODES:
        raise ConfigError("mode", mode, "one of " + ", ".join(MODES))


def _check_elements(key: str, n) -> None:
    # a public formula, called with any value (kernel shapes, tests, notebooks), not a config option
    # that the typed option check has seen: so its type is checked here
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 2):
        # with one element the maximum and the minimum coincide: nothing to choose
        raise ConfigError(key, n, "an integer >= 2 (elements per kernel or group)")


@functools.lru_cache(maxsize=None)
def variance_factor_for(mode: str, n: int) -> float:
    """E[w'^2] / Var[w] for a group of ``n`` i.i.d. Gaussian elements re-derived by ``mode``."""
    from scipy.special import ndtr  # here, not at import: scipy costs the driver's checks 0.3 s

    _check_mode(mode)
    _check_elements("n", n)
    t, w = np.polynomial.legendre.leggauss(NODES)
    t, w = (t + 1.0) / 2.0, w / 2.0  # on [0, 1]

    def rule(a, b):
        """Nodes and weights on [a, b], for arrays of interval ends (one interval per row)."""
        a, b = np.asarray(a, dtype=float)[..., None], np.asarray(b, dtype=float)[..., None]
        return a + (b - a) * t, (b - a) * w

    total = 0.0
    for x_lo, x_hi in ((-TAIL, 0.0), (0.0, TAIL)):  # the minimum x
        x, wx = rule(x_lo, x_hi)
        # the maximum y runs over (x, TAIL); split at 0 where |y| bends (only when x < 0)
        pieces = [(x, np.zeros_like(x)), (np.zeros_like(x), np.full_like(x, TAIL))] if x_hi <= 0 else \
                 [(x, np.full_like(x, TAIL))]
        for y_lo, y_hi in pieces:
            y, wy = rule(y_lo, y_hi)
            spread = np.clip(ndtr(y) - ndtr(x)[:, None], 0.0, 1.0) ** (n - 2)
            inner = (_h(mode, x[:, None], y) * spread * _phi(y) * wy).sum(axis=1)
            total += float((inner * _phi(x) * wx).sum())
    return n * (n - 1) * total / n


def variance_factor(mode: str, k: int) -> float:
    """The factor of eq. 2.7 (``sparse``), 3.3 (``binary_heuristic``) or 3.8 (``binary_approx``) for a k x k kernel."""
    _check_mode(mode)
    if not (isinstance(k, int) and not isinstance(k, bool) and k >= 2):  # public, not an option: see _check_elements
        raise ConfigError("k", k, "an integer >= 2 (the kernel side; a 1x1 kernel has nothing to choose)")
    return variance_factor_for(mode, k * k)


def he_std(fan_in: int, factor: float = 1.0) -> float:
    """Standard deviation with ½ fan_in Var[W] factor = 1 (He et al. 2015, scaled as in eqs. 2.8, 3.4, 3.9)."""
    return math.sqrt(2.0 / (fan_in * factor))
