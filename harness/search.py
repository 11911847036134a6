"""Search sweeps: a sweep file's ``search:`` block mapped onto Ray Tune's own searchers and schedulers.

  search:
    space:                      dotted RunConfig key -> one distribution (data, never evaluated)
      model.options.width: {uniform: [0.25, 1.0]}
      train.lr: {loguniform: [0.01, 0.3]}
      train.batch_size: {choice: [32, 64, 128]}
      method: {choice: [{name: none}, {name: prune, options: {sparsity: {uniform: [0.2, 0.8]}}}]}
    num_samples: 32             configurations sampled (the infeasible ones included: recorded, never trained)
    algorithm: random           random (Tune's BasicVariantGenerator) | tpe | nsga2 (Optuna's sampler in
                                Tune's OptunaSearch, on every objective) | optuna (TPE for one objective,
                                NSGA-II for several)
    seed: 0                     the same seed samples the same sequence of configurations
    objectives: {val_acc: max, macs: min}     selection on validation only; test is only reported
    scheduler: {name: asha, grace_period: 2, reduction_factor: 3}   none | asha | mo_asha | median | hyperband
    constraints: {macs: {max: 2.0e7}, params: {max: 1.0e6}}         counted before a sample is trained
    reference_point: {val_acc: 0.0, macs: 2.0e7}   the hypervolume's reference, one value per objective
                                (default: reference_point() below)

Distributions are Tune's: ``uniform [lo, hi]``, ``quniform [lo, hi, step]`` (integers when all three
are), ``loguniform [lo, hi]`` (lo > 0), ``randint [lo, hi)`` (hi excluded, as Tune's), ``choice [...]``
of scalars or of whole sub-configs, which may hold distributions themselves (a conditional space).
A sampled value replaces the key's value in the sweep's base config; a sub-config replaces the whole
mapping (``method: {name: prune, ...}`` drops the base's method options). Grid ``axes`` beside a
search run every sampled configuration once per axis point (seeds, say); the searcher is told the
mean of each objective over the points.

Every sampled configuration is resolved, checked (``harness.checks.checked``, which builds the model on
the meta device for layer-dependent options) and, with constraints, counted on the meta device in
the driver before it gets a worker. One that fails is infeasible: recorded as an MLflow run with tag
``infeasible=true``, its reason and counts, and no epochs, and told to the searcher as failed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Optional

from .config import RunConfig, apply_overrides, deep_merge
from .errors import ConfigError, nearest
from .runner import COUNT_KEYS

DISTRIBUTIONS = ("uniform", "quniform", "loguniform", "randint", "choice")
ALGORITHMS = ("random", "optuna", "tpe", "nsga2")
SCHEDULERS = ("none", "asha", "mo_asha", "median", "hyperband")
COUNTS = COUNT_KEYS  # measure.profile's, per model as built: what a constraint or an objective may name
# What every trial reports to Tune each epoch (harness.train's metrics and the counts): what an
# objective or a scheduler may use. test_acc is reported too but never selected on.
EPOCH_METRICS = ("val_acc", "train_loss", "train_acc", "train_time_s", "epoch_time_s", "images_per_s",
                 "samples_seen", "data_time_s", "compute_time_s", "eval_time_s", "batch_size", "lr")
TEST_METRICS = ("test_acc", "test_acc5")
SEARCH_KEYS = ("space", "num_samples", "algorithm", "seed", "objectives", "scheduler", "constraints",
               "reference_point")


@dataclass(frozen=True)
class Dist:
    kind: str  # one of DISTRIBUTIONS
    args: tuple  # bounds (and the step), or the choice's options (scalars or sub-config mappings)


@dataclass(frozen=True)
class SearchSpec:
    space: dict  # dotted key -> Dist, in the order written
    num_samples: int
    algorithm: str
    seed: Optional[int]
    objectives: dict  # metric -> "max" | "min", in the order written (the first one drives a scheduler)
    scheduler: dict  # {"name": ..., **Tune options}
    constraints: dict  # count -> {"max": x} and/or {"min": y}
    raw: dict  # the block as written (after profile overrides): logged as the parent run's params

    @property
    def scheduler_name(self) -> str:
        return self.scheduler.get("name", "none")

    def reference_point(self) -> tuple[dict, dict]:
        """The hypervolume's reference point: ({objective: value or None}, {objective: where it came from}).

        Declared (``reference_point``) wins; else the constraint bounding the objective on its bad side
        (a ``max`` on a minimized count: no feasible sample is worse); else 0 for a maximized objective
        (every metric trials report is >= 0); else none: a minimized objective without a ``max`` has
        no worst value, so the search logs no hypervolume until one is declared."""
        declared = self.raw.get("reference_point") or {}
        values, sources = {}, {}
        for name, mode in self.objectives.items():
            bound = (self.constraints.get(name) or {}).get("max" if mode == "min" else "min")
            if name in declared:
                values[name], sources[name] = declared[name], "declared (search.reference_point)"
            elif bound is not None:
                values[name], sources[name] = bound, f"the constraint {name} {'<=' if mode == 'min' else '>='} {bound:g}"
            elif mode == "max":
                values[name], sources[name] = 0.0, "0 (a maximized metric is >= 0)"
            else:
                values[name], sources[name] = None, f"none: declare search.reference_point.{name}"
        return values, sources

    def scheduler_objective(self) -> tuple[str, str]:
        """The first objective that changes per epoch: what an early-stopping scheduler compares."""
        for metric, mode in self.objectives.items():
            if metric in EPOCH_METRICS:
                return metric, mode
        raise ConfigError("search.scheduler", self.scheduler_name,
                          "none, or an objective that trials report every epoch (" + ", ".join(EPOCH_METRICS) + ")")


def _is_dist(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS


def _number(key: str, value, integer: bool = False):
    # the search block is raw YAML with no annotation for the typed option check (harness.errors) to
    # read, and its numbers keep their written type (an int bound stays an int): so checked here.
    # Text is refused: the sweep-file reader (harness.yamlio) reads 2.0e7 and 1e-3 as numbers, so
    # text here was quoted, or overflows a float (1e400 is kept as written for this message)
    if isinstance(value, str):
        try:
            infinite = not math.isfinite(float(value))
        except ValueError:
            infinite = False
        raise ConfigError(key, value, "a finite number" if infinite else "a number, not text")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (integer and not float(value).is_integer()):
        raise ConfigError(key, value, "an integer" if integer else "a finite number")
    return int(value) if integer else value


def parse_dist(key: str, raw) -> Dist:
    """One distribution, checked: ConfigError naming ``key`` for a bad name, arity or bounds."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ConfigError(key, raw, "one distribution: {" + " | ".join(f"{d}: [...]" for d in DISTRIBUTIONS) + "}")
    (kind, args), = raw.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(key, kind, "a distribution among " + ", ".join(DISTRIBUTIONS) + nearest(kind, DISTRIBUTIONS))
    where = f"{key}.{kind}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(where, args, "a non-empty list of values or sub-configs")
        return Dist(kind, tuple(_parse_option(f"{where}[{i}]", o) for i, o in enumerate(args)))
    arity = 3 if kind == "quniform" else 2
    if not isinstance(args, list) or len(args) != arity:
        raise ConfigError(where, args, "[low, high, step]" if arity == 3 else "[low, high]")
    lo, hi = (_number(where, v, integer=kind == "randint") for v in args[:2])
    if not lo < hi:
        raise ConfigError(where, args, "low < high")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(where, args, "low > 0 (a log scale)")
    if kind == "quniform":
        step = _number(where, args[2])
        if step <= 0:
            raise ConfigError(where, args, "a step > 0")
        return Dist(kind, (lo, hi, step))
    return Dist(kind, (lo, hi))


def _parse_option(key: str, option):
    """A choice's option: a scalar, or a sub-config (or list) whose entries may be distributions."""
    if _is_dist(option):
        raise ConfigError(key, option, "a value or a sub-config, not a distribution (nest it inside a key)")
    return _parse_entry(key, option)


def _parse_entry(key: str, entry):
    if _is_dist(entry):
        return parse_dist(key, entry)
    if isinstance(entry, dict):
        return {k: _parse_entry(f"{key}.{k}", v) for k, v in entry.items()}
    if isinstance(entry, list):
        return [_parse_entry(f"{key}[{i}]", v) for i, v in enumerate(entry)]
    return entry


def parse_search(raw, where: str = "search") -> SearchSpec:
    """The ``search:`` block, checked key by key (before any work starts)."""
    if not isinstance(raw, dict):
        raise ConfigError(where, raw, "a mapping with " + ", ".join(SEARCH_KEYS))
    for key in raw:
        if key not in SEARCH_KEYS:
            raise ConfigError(f"{where}.{key}", raw[key], "a key among " + ", ".join(f"{where}.{k}" for k in SEARCH_KEYS)
                              + nearest(key, SEARCH_KEYS))
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise ConfigError(f"{where}.space", space_raw, "a non-empty mapping of dotted config keys to distributions")
    space = {k: parse_dist(f"{where}.space.{k}", v) for k, v in space_raw.items()}
    num_samples = raw.get("num_samples", 10)  # raw YAML, typed here (see _number)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"{where}.num_samples", num_samples, "an integer >= 1")
    algorithm = raw.get("algorithm", "random")
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"{where}.algorithm", algorithm, "one of " + ", ".join(ALGORITHMS))
    if algorithm != "random":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise ConfigError(f"{where}.algorithm", algorithm,
                              "an installed searcher: optuna is missing (pip install optuna)") from None
    seed = raw.get("seed")
    if seed is not None:
        seed = _number(f"{where}.seed", seed, integer=True)
        if not 0 <= seed < 2**32:  # numpy's RandomState, which Tune's searchers seed, takes no other
            raise ConfigError(f"{where}.seed", seed, "an integer in [0, 2**32)")
    objectives = raw.get("objectives")
    if not isinstance(objectives, dict) or not objectives:
        raise ConfigError(f"{where}.objectives", objectives, "a mapping of metric: max|min, e.g. {val_acc: max}")
    for metric, mode in objectives.items():
        if metric in TEST_METRICS:
            raise ConfigError(f"{where}.objectives.{metric}", mode,
                              "a validation or cost metric: selection happens on validation, test is only reported")
        if metric not in EPOCH_METRICS + COUNTS:
            raise ConfigError(f"{where}.objectives", metric, "a metric trials report: " + ", ".join(EPOCH_METRICS + COUNTS)
                              + nearest(metric, EPOCH_METRICS + COUNTS))
        if mode not in ("max", "min"):
            raise ConfigError(f"{where}.objectives.{metric}", mode, "max or min")
    scheduler = raw.get("scheduler") or {"name": "none"}
    if isinstance(scheduler, str):
        scheduler = {"name": scheduler}
    if not isinstance(scheduler, dict) or scheduler.get("name", "none") not in SCHEDULERS:
        name = scheduler.get("name") if isinstance(scheduler, dict) else scheduler
        raise ConfigError(f"{where}.scheduler", scheduler, "{name: " + " | ".join(SCHEDULERS) + ", ...its options}"
                          + nearest(name, SCHEDULERS))
    if not isinstance(raw.get("constraints") or {}, dict):
        raise ConfigError(f"{where}.constraints", raw.get("constraints"), "a mapping of count: {max: x} / {min: y}")
    constraints = dict(raw.get("constraints") or {})
    for count, bounds in constraints.items():
        if count not in COUNTS:
            raise ConfigError(f"{where}.constraints", count, "a count among " + ", ".join(COUNTS) + nearest(count, COUNTS))
        if not isinstance(bounds, dict) or not bounds or any(b not in ("max", "min") for b in bounds):
            odd = next((b for b in bounds if b not in ("max", "min")), None) if isinstance(bounds, dict) else None
            raise ConfigError(f"{where}.constraints.{count}", bounds, "{max: number} and/or {min: number}"
                              + nearest(odd, ("max", "min")))
        constraints[count] = {b: _number(f"{where}.constraints.{count}.{b}", v) for b, v in bounds.items()}
        _meetable(f"{where}.constraints.{count}", count, constraints[count])
    reference = raw.get("reference_point")
    if reference is not None:
        if not isinstance(reference, dict):
            raise ConfigError(f"{where}.reference_point", reference, "a mapping of objective: number, e.g. "
                              "{" + ", ".join(f"{o}: ..." for o in objectives) + "}")
        for name, value in reference.items():
            if name not in objectives:
                raise ConfigError(f"{where}.reference_point", name, "one of the objectives: " + ", ".join(objectives)
                                  + nearest(name, list(objectives)))
            _number(f"{where}.reference_point.{name}", value)
    spec = SearchSpec(space=space, num_samples=num_samples, algorithm=algorithm, seed=seed,
                      objectives=dict(objectives), scheduler=dict(scheduler), constraints=dict(constraints), raw=raw)
    if spec.scheduler_name != "none":
        spec.scheduler_objective()
    return spec


def _meetable(where: str, count: str, bounds: dict) -> None:
    """A constraint some model could meet: else every sample is infeasible, each one recorded and
    none trained, and the search ends having done nothing."""
    low, high = bounds.get("min"), bounds.get("max")
    if high is not None and high < 0:
        raise ConfigError(f"{where}.max", high, f"a number >= 0 ({count} is a count: no model has fewer than 0)")
    if low is not None and high is not None and low > high:
        raise ConfigError(where, bounds, f"min <= max (no model has {count} >= {low} and <= {high})")


def check_key(where: str, key: str) -> None:
    """``key`` names a RunConfig field, a whole section (``method``), or an entry below a free-form
    ``options`` mapping (checked by the model's or method's builder when a sample is resolved)."""
    import dataclasses
    import typing

    node = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = [f.name for f in dataclasses.fields(node)]
        if part not in fields:
            prefix = ".".join(parts[:i])
            keys = [f"{prefix}.{f}" if prefix else f for f in fields]
            raise ConfigError(where, key, "a config key: " + ", ".join(keys) + nearest(".".join(parts[:i + 1]), keys))
        hint = typing.get_type_hints(node)[part]
        if hint is dict:
            return
        if not dataclasses.is_dataclass(hint):
            if i != len(parts) - 1:
                raise ConfigError(where, key, f"a config key ({'.'.join(parts[:i + 1])} is a value, not a mapping)")
            return
        node = hint


def overlay(base: Optional[dict], override: Optional[dict]) -> Optional[dict]:
    """A profile's ``search:`` over the sweep's (``space`` keys replaced one by one)."""
    if override is None:
        return base
    if base is None:
        return override
    return deep_merge(base, override)


# ---- the space as Tune domains, and back ----

def _nested(option, path: str = ""):
    """(path, Dist) of every distribution inside a choice's option."""
    if isinstance(option, Dist):
        yield path, option
    elif isinstance(option, dict):
        for k, v in option.items():
            yield from _nested(v, f"{path}.{k}" if path else k)
    elif isinstance(option, list):
        for i, v in enumerate(option):
            yield from _nested(v, f"{path}[{i}]")


def _names(name: str, dist: Dist):
    yield name, dist
    if dist.kind == "choice":
        for i, option in enumerate(dist.args):
            for path, inner in _nested(option):
                yield from _names(f"{name}[{i}].{path}", inner)


def domains(spec: SearchSpec) -> dict:
    """Tune's domain for every sampled name. A choice samples its option's index (Optuna takes only
    scalars as categories, and an index serves options that are whole sub-configs); a distribution
    inside an option gets a name of its own, ``key[i].path``, sampled every time and used when
    option i is chosen."""
    from ray import tune

    out = {}
    for key, dist in spec.space.items():
        for name, d in _names(key, dist):
            if d.kind == "choice":
                out[name] = tune.choice(list(range(len(d.args))))
            else:
                out[name] = getattr(tune, d.kind)(*d.args)  # tune.uniform(lo, hi), tune.quniform(lo, hi, q), ...
    return out


def _value(name: str, dist: Dist, sampled: dict):
    v = sampled[name]
    if dist.kind == "choice":
        i = int(v)
        return _fill(dist.args[i], f"{name}[{i}]", "", sampled)
    if dist.kind == "randint" or (dist.kind == "quniform" and all(float(a).is_integer() for a in dist.args)
                                  and all(isinstance(a, int) for a in dist.args)):
        return int(round(v))
    return float(v)


def _fill(option, prefix: str, path: str, sampled: dict):
    if isinstance(option, Dist):
        return _value(f"{prefix}.{path}", option, sampled)
    if isinstance(option, dict):
        return {k: _fill(v, prefix, f"{path}.{k}" if path else k, sampled) for k, v in option.items()}
    if isinstance(option, list):
        return [_fill(v, prefix, f"{path}[{i}]", sampled) for i, v in enumerate(option)]
    return option


def decode(spec: SearchSpec, sampled: dict) -> dict:
    """Tune's sampled names -> {dotted key: value} (sub-configs filled in)."""
    return {key: _value(key, dist, sampled) for key, dist in spec.space.items()}


def apply_values(base: dict, values: dict) -> dict:
    """``base`` with the sampled values; whole sub-configs first, so a deeper key lands inside them
    (copies: a deeper key must not write into the caller's sub-config)."""
    ordered = sorted(json.loads(json.dumps(values)).items(), key=lambda kv: kv[0].count("."))
    return apply_overrides(base, dict(ordered))


def corners(spec: SearchSpec):
    """Every key's extreme values (both bounds; every choice, its nested distributions at their low
    bounds): each must be a valid config on its own, or the space has a typo."""
    for key, dist in spec.space.items():
        if dist.kind == "choice":
            for option in dist.args:
                yield key, _materialize(option)
        else:
            lo, hi = dist.args[:2]
            yield key, lo
            yield key, (hi - 1 if dist.kind == "randint" else hi)


def _materialize(option):
    if isinstance(option, Dist):
        return _materialize(option.args[0])  # a bound, or a nested choice's first option
    if isinstance(option, dict):
        return {k: _materialize(v) for k, v in option.items()}
    if isinstance(option, list):
        return [_materialize(v) for v in option]
    return option
