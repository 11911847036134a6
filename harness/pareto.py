"""The Pareto front of a set of runs: the rows no other row dominates, as Optuna's ``Study.best_trials``.

The driver uses it for a search's summary and its parent run's ``front.json``; ``harness_analysis.pareto``
renders tables and figures around it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DIRECTIONS = ("max", "min")


def check_objectives(frame: pd.DataFrame, objectives: dict) -> dict:
    objectives = dict(objectives or {})
    if not objectives:
        raise ValueError("a Pareto front needs objectives: a dict of metric column -> 'max' or 'min'")
    for name, direction in objectives.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"objective {name!r}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        if name not in frame.columns:
            metrics = [c for c in frame.columns if not str(c).startswith("config.")]
            raise ValueError(f"objective {name!r}: no column {name!r} in the runs; columns are {metrics}")
    return objectives


def _as_minimized(frame: pd.DataFrame, objectives: dict) -> np.ndarray:
    # one sign convention (smaller is better) makes dominance a single comparison
    columns = [pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float) * (-1.0 if d == "max" else 1.0)
               for name, d in objectives.items()]
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def pareto_front(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The rows of ``frame`` that no other row dominates, in ``frame``'s order.

    Row a dominates b when a is at least as good in every objective and strictly better in one;
    rows with a NaN objective are never on the front; equal rows do not dominate each other, so
    every copy of a front point is kept.
    """
    objectives = check_objectives(frame, objectives)
    values = _as_minimized(frame, objectives)
    complete = ~np.isnan(values).any(axis=1)
    candidates = values[complete]
    # all pairs at once, O(n^2 k) memory: a search here records at most a few hundred configurations
    no_worse = (candidates[:, None, :] <= candidates[None, :, :]).all(axis=2)
    better = (candidates[:, None, :] < candidates[None, :, :]).any(axis=2)
    dominated = (no_worse & better).any(axis=0)
    on_front = np.zeros(len(frame), dtype=bool)
    on_front[np.flatnonzero(complete)[~dominated]] = True
    return frame[on_front]


def hypervolume(frame: pd.DataFrame, objectives: dict[str, str], reference: dict[str, float]) -> float:
    """The volume the rows of ``frame`` dominate, bounded by ``reference`` (one value per objective, a
    point every row should be better than): the hypervolume indicator, in the objectives' own units
    (``val_acc`` % x ``macs``, say). Rows with a NaN objective, or not better than the reference in
    every objective, add nothing.

    Written here: Optuna 5.1 computes it only in its private ``optuna._hypervolume`` (public only
    inside a plot), and no other library in the lock has one. Exact, by slicing along the last
    objective (HSO, While et al. 2006): the few hundred points of a search in 2 or 3 objectives."""
    objectives = check_objectives(frame, objectives)
    missing = [name for name in objectives if name not in reference]
    if missing:
        raise ValueError(f"hypervolume: no reference value for {missing}; reference is {reference}")
    values = _as_minimized(frame, objectives)
    ref = np.array([reference[n] * (-1.0 if d == "max" else 1.0) for n, d in objectives.items()], dtype=float)
    inside = values[~np.isnan(values).any(axis=1) & (values < ref).all(axis=1)]
    return float(_volume(inside, ref))


def _volume(points: np.ndarray, ref: np.ndarray) -> float:
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    # sweep the last objective from its best value: each slab's cross-section is the (k-1)-D volume of the
    # points at or below the slab's lower edge
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    edges = np.append(points[:, -1], ref[-1])
    total = 0.0
    for i in range(len(points)):
        depth = edges[i + 1] - edges[i]
        if depth > 0:
            total += depth * _volume(points[:i + 1, :-1], ref[:-1])
    return total
