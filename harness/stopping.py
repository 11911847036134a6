"""A search's early-stopping scheduler: Tune's own (ASHA, the median rule, HyperBand) or the harness's
MO-ASHA (harness.moasha), on ``time_attr = epoch``, built from the sweep's ``search.scheduler`` block
and checked by name before Ray starts."""
from __future__ import annotations

from .errors import ConfigError, nearest
from .search import SearchSpec

# Set by the harness on every scheduler (trials report "epoch"; max_t is the trials' epochs)
SCHEDULER_FIXED = ("time_attr", "metric", "mode", "max_t")


def scheduler_class(name: str):
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

    from .moasha import MOASHAScheduler

    return {"asha": ASHAScheduler, "mo_asha": MOASHAScheduler, "median": MedianStoppingRule,
            "hyperband": HyperBandScheduler}[name]


def build_scheduler(spec: SearchSpec, max_epochs: int):
    """Tune's own scheduler on ``time_attr = epoch``, or None. Its options are Tune's, checked by name.
    ``mo_asha`` (harness.moasha, Tune has none) ranks on every objective of ``search.objectives``:
    trials report the counts (macs, params, ...) with every epoch's metrics, so each rung sees them all."""
    if spec.scheduler_name == "none":
        return None
    if max_epochs < 2:
        raise ConfigError("search.scheduler", spec.scheduler_name,
                          f"none: trials of {max_epochs} epoch cannot be stopped early (train.epochs >= 2)")
    options = {k: v for k, v in spec.scheduler.items() if k != "name"}
    for key in SCHEDULER_FIXED + ("objectives",):
        if key in options:
            raise ConfigError(f"search.scheduler.{key}", options[key],
                              "unset: the harness sets time_attr=epoch, metric and mode (or mo_asha's objectives) "
                              "from search.objectives, max_t=epochs")
    metric, mode = spec.scheduler_objective()
    cls = scheduler_class(spec.scheduler_name)
    fixed = {"time_attr": "epoch", "metric": metric, "mode": mode}
    if spec.scheduler_name == "mo_asha":
        fixed = {"time_attr": "epoch", "objectives": dict(spec.objectives)}
    if spec.scheduler_name != "median":
        # One past the last epoch: a trial that reaches it ends by itself (its final metrics and
        # model logged by the trial), not by the scheduler stopping it at max_t inside its last report.
        fixed["max_t"] = max_epochs + 1
    return _checked_scheduler(cls, fixed, options)


def _checked_scheduler(cls, fixed: dict, options: dict):
    import inspect

    whose = "the harness's" if cls.__module__.startswith("harness.") else "Tune's"
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "objectives") + SCHEDULER_FIXED]
    for key, value in options.items():
        if key not in valid:
            raise ConfigError(f"search.scheduler.{key}", value, f"an option of {whose} {cls.__name__}: " + ", ".join(valid)
                              + nearest(key, valid))
    try:
        return cls(**fixed, **options)
    except (TypeError, ValueError, AssertionError) as e:
        raise ConfigError("search.scheduler", options, f"options {whose} {cls.__name__} accepts ({e})") from None
