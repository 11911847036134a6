"""MO-ASHA: asynchronous successive halving that promotes by Pareto rank, not by one metric.

Schmucker, Donini, Zafar, Salinas and Archambeau, "Multi-objective Asynchronous Successive Halving"
(2021, arXiv:2106.12639). Written here because Ray Tune has no multi-objective scheduler (its ASHA,
HyperBand and median rule compare one ``metric``), and Syne Tune's ``MOASHA``, the authors' own, is
a scheduler for Syne Tune's orchestrator, not a Tune ``TrialScheduler``. It uses only Tune's public
scheduler interface (``FIFOScheduler``: ``on_trial_add`` / ``on_trial_result`` / ``on_trial_complete``
returning ``CONTINUE`` or ``STOP``).

The rungs are ASHA's (one bracket, as Tune's ASHA by default): a trial's result at ``time_attr >=
grace_period * reduction_factor**k`` (below ``max_t``) is recorded at rung k, once. The trial goes on
when it is among the top ``ceil(n / reduction_factor)`` of the n results recorded at that rung (its
own included), ranked as the paper ranks them:

1. non-dominated sorting (NSGA-II's fronts) on all the objectives, each ``max`` or ``min``;
2. within a front, the paper's epsilon-net tie-break (its EPS-NET variant, the one it recommends over
   NSGA-II's crowding distance): objectives scaled to [0, 1] over the rung's results, the points of
   earlier fronts count as already chosen, and the next pick is the point farthest (Euclidean, in the
   scaled space) from every point chosen so far; the very first pick, with nothing chosen yet, is the
   best point on the first objective. Equal distances go to the earlier-recorded trial.

A trial whose first ``ceil(n / rf)`` place depends on a later arrival is not revisited: as in ASHA, a
decision at a rung is made once, with the results recorded so far (the first trial at a rung always
goes on). Tune's ASHA stops a trial when its value is below the percentile ``1 - 1/rf`` of the *other*
recorded values; ``ceil(n / rf)`` of all n is the same rule stated on ranks, which is what a Pareto
ranking gives.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler


def nondominated_fronts(points: np.ndarray) -> list[list[int]]:
    """Row indices of ``points`` (all objectives minimized) by front: the first front is the rows no
    row dominates, the next those only the first front dominates, and so on (Deb et al.'s sort; a
    rung holds at most a few hundred results, so the O(n^2) pairwise form)."""
    n = len(points)
    no_worse = (points[:, None, :] <= points[None, :, :]).all(axis=2)
    better = (points[:, None, :] < points[None, :, :]).any(axis=2)
    dominates = no_worse & better  # [i, j]: i dominates j
    remaining = set(range(n))
    fronts = []
    while remaining:
        front = [j for j in sorted(remaining) if not any(dominates[i, j] for i in remaining)]
        fronts.append(front)
        remaining -= set(front)
    return fronts


def pareto_rank(points: np.ndarray) -> list[int]:
    """Every row index of ``points`` (all objectives minimized), best first: by front, and within a
    front by the epsilon-net order described in the module's docstring."""
    if len(points) == 0:
        return []
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (points - low) / span
    order: list[int] = []
    for front in nondominated_fronts(points):
        left = list(front)
        while left:
            if not order:
                pick = min(left, key=lambda i: (points[i, 0], i))
            else:
                chosen = scaled[order]
                distance = [float(np.min(np.linalg.norm(chosen - scaled[i], axis=1))) for i in left]
                pick = left[int(np.argmax(distance))]  # argmax: the first (earliest) of equal distances
            order.append(pick)
            left.remove(pick)
    return order


class MOASHAScheduler(FIFOScheduler):
    """ASHA's rungs with promotion by Pareto rank over ``objectives`` (metric -> "max" | "min")."""

    def __init__(self, objectives: dict, time_attr: str = "training_iteration", max_t: int = 100,
                 grace_period: int = 1, reduction_factor: float = 3):
        if not objectives or any(mode not in ("max", "min") for mode in objectives.values()):
            raise ValueError(f"objectives must map each metric to 'max' or 'min', got {objectives!r}")
        if not (isinstance(grace_period, (int, float)) and grace_period > 0):
            raise ValueError(f"grace_period must be > 0, got {grace_period!r}")
        if not (isinstance(reduction_factor, (int, float)) and reduction_factor > 1):
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor!r}")
        if not (isinstance(max_t, (int, float)) and max_t > grace_period):
            raise ValueError(f"grace_period ({grace_period}) must be below max_t ({max_t!r}), or no rung is left")
        super().__init__()
        self.objectives = dict(objectives)
        self.time_attr, self.max_t = time_attr, max_t
        self.grace_period, self.reduction_factor = grace_period, reduction_factor
        # ASHA's milestones below max_t: grace, grace*rf, grace*rf^2, ...
        self.milestones: list[float] = []
        milestone = grace_period
        while milestone < max_t:
            self.milestones.append(milestone)
            milestone *= reduction_factor
        # per rung: trial id -> its objectives as minimized (max objectives negated), in arrival order
        self.rungs: list[dict[str, tuple]] = [{} for _ in self.milestones]
        self.decisions: list[tuple[str, float, str]] = []  # (trial id, milestone, CONTINUE|STOP), as made
        self.num_stopped = 0

    # ``metric`` stays Tune's None: Tune checks a scheduler's single metric against each result, and the
    # objectives here are several (each checked by ``_point``, a result without them is let go on)
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec) -> bool:
        # the objectives are the scheduler's own; a single metric from TuneConfig cannot replace them
        return not metric and not mode

    def _point(self, result: dict) -> Optional[tuple]:
        values = []
        for metric, mode in self.objectives.items():
            value = result.get(metric)
            if value is None or not math.isfinite(float(value)):
                return None
            values.append(-float(value) if mode == "max" else float(value))
        return tuple(values)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        t = result.get(self.time_attr)
        point = self._point(result)
        if t is None or point is None:
            return TrialScheduler.CONTINUE
        action = TrialScheduler.CONTINUE
        # the highest rung this result reaches and the trial has not yet been ranked at
        for k in reversed(range(len(self.milestones))):
            if t >= self.milestones[k]:
                if trial.trial_id not in self.rungs[k]:
                    action = self._rank_at(k, trial.trial_id, point)
                break
        return action

    def _rank_at(self, k: int, trial_id: str, point: tuple) -> str:
        rung = self.rungs[k]
        rung[trial_id] = point
        ids = list(rung)
        order = pareto_rank(np.array([rung[i] for i in ids], dtype=float))
        top = math.ceil(len(ids) / self.reduction_factor)
        promoted = {ids[i] for i in order[:top]}
        action = TrialScheduler.CONTINUE if trial_id in promoted else TrialScheduler.STOP
        self.decisions.append((trial_id, self.milestones[k], action))
        if action == TrialScheduler.STOP:
            self.num_stopped += 1
        return action

    def debug_string(self) -> str:
        rungs = ", ".join(f"t>={m:g}: {len(r)} ranked" for m, r in zip(self.milestones, self.rungs))
        return f"Using MO-ASHA on {self.objectives}: num_stopped={self.num_stopped} ({rungs})"
