"""The Tune search algorithm of a search sweep: Tune's own searcher behind a feasibility gate.

``build_search_alg`` returns, for ``algorithm: random``, Tune's ``BasicVariantGenerator`` (seeded,
``constant_grid_search`` so a sampled configuration runs once per grid-axis point), and for
``algorithm: tpe | nsga2`` Tune's ``OptunaSearch`` with that Optuna sampler on every objective
(``optuna``: TPE for one objective, NSGA-II for several) in Tune's ``SearchGenerator``, with
``EachPoint`` repeating a suggestion per axis point and Tune's
``ConcurrencyLimiter`` for ``--max-concurrent``. In front of either, ``FeasibleSearch`` lets a
proposed trial reach a worker only when its configuration resolves, validates and meets the cost
limits; the rest are recorded as infeasible runs, never trained. Random search is told they failed;
Optuna's TPE and NSGA-II learn where they are (below).

Two small classes are written here because Tune has neither: a gate that can refuse a suggestion
before it is scheduled (BasicVariantGenerator has no constraints, and Optuna's only rank a trial
after it is told), and a repeater that averages several objectives (Tune's ``Repeater`` averages
one metric). Optuna's samplers are used through ``FreshLocks`` subclasses, which pickle as Tune
needs them to.

The infeasible region taught to Optuna (``Violations``): the sampler gets a ``constraints_func``,
Optuna's own hook, which computes from a finished trial's ``params`` (Tune's sampled names, public on
Optuna's FrozenTrial) the same meta-device counts the gate computes, as one value per constraint
(> 0: violated), and an infeasible sample is told to OptunaSearch as *completed* through its public
``on_trial_complete`` (a failed trial is never passed to ``constraints_func``, and NSGA-II only keeps
completed trials), with placeholder objectives (see ``FeasibleSearch``). Constrained TPE puts trials
with a violation among its bad trials, ordered by how much they violate; constrained NSGA-II ranks
any feasible trial above any infeasible one. The gate still refuses the sample: it is never trained.
Optuna 5.0 deprecates ``constraints_func`` (removal planned for 7.0) in favour of
``Trial.set_constraint`` on the live trial, which OptunaSearch hands out only to a define-by-run
space function; that would replace the Tune domains a search samples (and so every seeded
sequence), so the deprecated hook is used, its FutureWarning silenced where the sampler is built.
"""
from __future__ import annotations

import json
import math
import threading
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from ray.tune.search import ConcurrencyLimiter, Repeater, SearchAlgorithm, SearchGenerator, Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator

from . import search, tracking
from .errors import ConfigError

try:  # optional: a random search runs without it, and search.parse_search says what to install
    import optuna
except ImportError:
    optuna = None

GATE_STATE = "harness-gate-state.json"
_LOCK_FACTORIES = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class LockPlaceholder:
    """Stands in for a lock in a pickled sampler; unpickling puts a new, unheld one of its kind there."""

    def __init__(self, factory):
        self.factory = factory


class FreshLocks:
    """An Optuna sampler that pickles whole, RNG state included, except for its locks, which are made
    anew when it is unpickled (as Optuna's own storages do).

    Tune pickles the search algorithm, its Optuna study and so the sampler, when the Tuner is built and
    at every experiment snapshot that ``--resume`` restores from. Optuna 5.1's genetic-algorithm samplers
    (NSGA-II) hold a ``threading.Lock`` and define no ``__getstate__``, so pickling them raises
    ``TypeError: cannot pickle '_thread.lock' object``. Locks are found by their type, so that no
    attribute of Optuna's is named here.
    """

    def __getstate__(self):
        return {k: LockPlaceholder(_LOCK_FACTORIES[type(v)]) if type(v) in _LOCK_FACTORIES else v
                for k, v in vars(self).items()}

    def __setstate__(self, state: dict):
        vars(self).update({k: v.factory() if isinstance(v, LockPlaceholder) else v for k, v in state.items()})


if optuna is not None:
    class TPESampler(FreshLocks, optuna.samplers.TPESampler):
        """Optuna's TPE sampler, picklable whatever Optuna's version."""

    class NSGAIISampler(FreshLocks, optuna.samplers.NSGAIISampler):
        """Optuna's NSGA-II sampler, picklable whatever Optuna's version (5.1's is not)."""


def sampler(cls, seed: Optional[int], constraints_func=None):
    """``cls(seed=seed)``, with ``constraints_func`` when given (its deprecation warning silenced:
    see the module's docstring for why it is the route taken)."""
    if constraints_func is None:
        return cls(seed=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*constraints_func.*", category=FutureWarning)
        return cls(seed=seed, constraints_func=constraints_func)


def assess(plan, values: dict) -> dict:
    """A sample checked as the gate checks it: ``reason`` (None when every axis point is a valid config,
    its model runs a forward pass on the meta device and its counts are within the cost limits),
    ``counts`` (the last point's) and ``violations``, Optuna's constraint values: first 1.0 when a point
    does not resolve or build (else 0.0), then per ``search.constraints`` bound its relative excess,
    ``(count - max) / max`` or ``(min - count) / min`` (> 0: violated; relative, so that TPE's sum of
    violations weighs a MAC limit and a parameter limit alike; a bound of 0 divides by 1), the largest
    over the points counted. Stops at the first point that fails, as the gate's verdict does."""
    bounds = [(count, side, limit) for count, b in plan.spec.constraints.items() for side, limit in b.items()]
    excess = [-math.inf] * len(bounds)
    counts: dict = {}
    reason, broken = None, 0.0
    for i in range(len(plan.points)):
        try:
            cfg = plan.resolve(values, i)
            counts = plan.counts(cfg)
        except ConfigError as e:
            reason, broken = str(e), 1.0
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:  # e.g. a kernel larger than the input
            reason, broken = ("the model does not build or run at this input: " f"{type(e).__name__}: "
                              + (str(e).splitlines() or [""])[0]), 1.0
        if broken:
            break
        for j, (count, side, limit) in enumerate(bounds):
            over = counts[count] - limit if side == "max" else limit - counts[count]
            excess[j] = max(excess[j], over / (abs(limit) or 1))
            if over > 0 and reason is None:
                reason = f"{count}={counts[count]:,} {'>' if side == 'max' else '<'} {side} {limit:,}"
        if reason is not None:
            break
    violations = [broken] + [0.0 if broken or e == -math.inf else float(e) for e in excess]
    return {"reason": reason, "counts": counts, "violations": violations}


def placeholder(objectives: dict, counts: dict) -> dict:
    """What an infeasible sample is told as having scored (see ``FeasibleSearch``)."""
    return {m: float(counts.get(m, 0.0)) for m in objectives}


class Violations:
    """Optuna's ``constraints_func`` for a search plan: a finished trial's constraint values
    (``assess``'s ``violations``) from its sampled ``params``, which Tune names ``sample/<name>``.
    Plain data and a cache: it pickles with the sampler."""

    PREFIX = "sample/"

    def __init__(self, plan):
        self.plan = plan
        self.cache: dict[str, list] = {}

    def __call__(self, trial) -> list[float]:
        sampled = {k[len(self.PREFIX):]: v for k, v in trial.params.items() if k.startswith(self.PREFIX)}
        key = json.dumps(sampled, sort_keys=True, default=str)
        if key not in self.cache:
            self.cache[key] = assess(self.plan, search.decode(self.plan.spec, sampled))["violations"]
        return self.cache[key]


class EachPoint(Repeater):
    """Tune's Repeater, telling the searcher the mean of *every* objective over a sample's axis
    points (Tune's own averages the searcher's single metric and fails on a list of metrics).

    Tune's Repeater proposes its searcher's suggestion ``repeat`` times in a row; the groups are
    kept here as the suggestions come (``groups``: the first trial's id -> each trial's scores),
    not read from the Repeater's own bookkeeping."""

    def __init__(self, searcher, repeat: int = 1, set_index: bool = True):
        super().__init__(searcher, repeat=repeat, set_index=set_index)
        self.groups: dict[str, dict] = {}  # a suggestion's first trial id -> {trial id: scores or None}
        self.group_of: dict[str, str] = {}  # trial id -> its suggestion's first trial id
        self.last_group: Optional[str] = None

    def suggest(self, trial_id: str) -> Optional[dict]:
        config = super().suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return config
        if self.last_group is None or len(self.groups[self.last_group]) == self.repeat:
            self.last_group = trial_id  # the Repeater asked its searcher: a new suggestion
            self.groups[trial_id] = {}
        self.groups[self.last_group][trial_id] = None
        self.group_of[trial_id] = self.last_group
        return config

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False, **kwargs):
        metrics = self.searcher.metric if isinstance(self.searcher.metric, list) else [self.searcher.metric]
        primary = self.group_of[trial_id]
        group = self.groups[primary]
        group[trial_id] = tuple(float(result.get(m, math.nan)) if result and not error else math.nan
                                for m in metrics)
        if len(group) == self.repeat and None not in group.values():
            scores = np.array(list(group.values()), dtype=float)
            if np.isnan(scores).all(axis=0).any():
                self.searcher.on_trial_complete(primary, error=True)
            else:
                mean = np.nanmean(scores, axis=0)
                self.searcher.on_trial_complete(primary, result=dict(zip(metrics, mean.tolist())))


class Gate:
    """Resolves, checks and counts each proposed configuration in the driver, before a worker.

    Trials arrive one axis point after another for each sample (BasicVariantGenerator with
    constant_grid_search, EachPoint), so the n-th proposed trial is point n mod P of sample n // P.
    """

    def __init__(self, plan, ctx):  # plan: a catalog.SearchPlan; ctx: the launch's harness.trial.TrialContext
        self.plan, self.ctx = plan, ctx
        self.trials_seen = 0
        self.infeasible: list[dict] = []  # name, reason, counts, values of every refused sample
        self._verdict: Optional[dict] = None

    def __getstate__(self):  # Tune pickles the search algorithm with the experiment
        return {k: v for k, v in self.__dict__.items() if k != "_client"}

    def admit(self, trial) -> bool:
        points = len(self.plan.points)
        sample_id, point = self.trials_seen // points + 1, self.trials_seen % points
        self.trials_seen += 1
        values = search.decode(self.plan.spec, trial.config["sample"])
        if point == 0:
            self._verdict = self._check(values)
            if self._verdict is not None:
                self._record(sample_id, values, self._verdict)
        trial.config["sample_id"] = sample_id
        trial.config["point"] = point
        trial.custom_trial_name = self.plan.name(sample_id, point)
        return self._verdict is None

    def _check(self, values: dict) -> Optional[dict]:
        """None when the sample is feasible (``assess``), else its reason and counts."""
        verdict = assess(self.plan, values)
        return None if verdict["reason"] is None else {"reason": verdict["reason"], "counts": verdict["counts"]}

    @property
    def verdict(self) -> Optional[dict]:
        """The last sample's verdict (None: feasible)."""
        return self._verdict

    def _record(self, sample_id: int, values: dict, verdict: dict) -> None:
        name = self.plan.name(sample_id, None)
        self.infeasible.append({"name": name, "values": values, **verdict})
        tracking.record_infeasible(self.ctx, name, values, verdict["reason"], verdict["counts"])

    def state(self) -> dict:
        return {"trials_seen": self.trials_seen, "infeasible": self.infeasible, "verdict": self._verdict}

    def set_state(self, state: dict) -> None:
        self.trials_seen, self.infeasible, self._verdict = state["trials_seen"], state["infeasible"], state["verdict"]


class FeasibleSearch(SearchAlgorithm):
    """A Tune search algorithm whose proposals pass ``gate.admit`` before Tune schedules them.

    A refused proposal is told to the searcher as failed, or, with ``tell_completed`` (a sampler with
    ``constraints_func``, which reads only completed trials), as completed with placeholder objectives:
    an objective the gate counted (macs, params, ...) gets the count, any other 0.0. A constrained
    sampler ranks an infeasible trial by its violations, not by these values (they only order
    infeasible trials of equal violation within an NSGA-II front)."""

    def __init__(self, inner: SearchAlgorithm, gate: Gate, tell_completed: bool = False):
        self.inner, self.gate, self.tell_completed = inner, gate, tell_completed
        super().__init__()

    @property
    def metric(self):
        return self.inner.metric

    @property
    def total_samples(self):
        return self.inner.total_samples

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def add_configurations(self, experiments):
        self.inner.add_configurations(experiments)

    def next_trial(self):
        while True:  # bounded: the inner algorithm runs out after num_samples proposals
            trial = self.inner.next_trial()
            if trial is None or self.gate.admit(trial):
                return trial
            if self.tell_completed:  # infeasible: the sampler learns where from its constraints_func
                self.inner.on_trial_complete(trial.trial_id, result=placeholder(self.gate.plan.spec.objectives,
                                                                               self.gate.verdict["counts"]))
            else:
                self.inner.on_trial_complete(trial.trial_id, error=True)  # infeasible: the searcher learns so

    def on_trial_result(self, trial_id: str, result: dict):
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False):
        self.inner.on_trial_complete(trial_id, result=result, error=error)

    def is_finished(self) -> bool:
        return self.inner.is_finished()

    def set_finished(self):
        self.inner.set_finished()

    def has_checkpoint(self, dirpath: str) -> bool:
        return self.inner.has_checkpoint(dirpath)

    def save_to_dir(self, dirpath: str, session_str: str):
        self.inner.save_to_dir(dirpath, session_str)
        (Path(dirpath) / GATE_STATE).write_text(json.dumps(self.gate.state(), default=str))

    def restore_from_dir(self, dirpath: str):
        self.inner.restore_from_dir(dirpath)
        path = Path(dirpath) / GATE_STATE
        if path.exists():
            self.gate.set_state(json.loads(path.read_text()))


def build_search_alg(plan, ctx, max_concurrent: Optional[int], learn_infeasible: bool = True
                     ) -> tuple[FeasibleSearch, int]:
    """The gated search algorithm and the ``num_samples`` Tune must be given for it. With
    ``learn_infeasible`` (Optuna only) the sampler gets ``Violations(plan)`` as its constraints_func
    (benchmarks/search.py measures it off and on)."""
    spec = plan.spec
    points = len(plan.points)
    if spec.algorithm == "random":
        inner = BasicVariantGenerator(constant_grid_search=True, random_state=spec.seed, max_concurrent=max_concurrent or 0)
        return FeasibleSearch(inner, Gate(plan, ctx)), spec.num_samples  # Tune repeats it over the "point" grid
    from ray.tune.search.optuna import OptunaSearch

    metrics, modes = list(spec.objectives), list(spec.objectives.values())
    constraints = Violations(plan) if learn_infeasible else None
    kind = spec.algorithm if spec.algorithm != "optuna" else ("tpe" if len(metrics) == 1 else "nsga2")
    chosen = sampler(TPESampler if kind == "tpe" else NSGAIISampler, spec.seed, constraints)  # TPE: multi-objective too
    if len(metrics) == 1:
        searcher = OptunaSearch(metric=metrics[0], mode=modes[0], sampler=chosen)
    else:
        searcher = OptunaSearch(metric=metrics, mode=modes, sampler=chosen)
    if points > 1:
        searcher = EachPoint(searcher, repeat=points, set_index=False)
    if max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return FeasibleSearch(SearchGenerator(searcher), Gate(plan, ctx), tell_completed=learn_infeasible), \
        spec.num_samples * points
