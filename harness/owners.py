"""Who sets what: one owner per resource (the learning rate, momentum, batch size, pruning masks).

A training method declares what it sets (``TrainMethod.owns``, harness.methods.base.RESOURCES); a
per-iteration schedule (registered with ``owns=("lr",)`` in harness.schedules: ``cosine_iter``)
owns the lr, since it sets it before every step and would silently overwrite a method's. Two
owners of one resource are a ConfigError naming both: inside a chain when it is built
(harness.methods.chain), and a method beside a schedule in ``check_owners``, which the driver's
config check runs before Ray starts and the Trainer runs again when a trial builds it.
This module imports no torch.
"""
from __future__ import annotations

from .errors import ConfigError
from .registry import SCHEDULES


def conflict(claims: list[tuple[str, frozenset]]) -> tuple[str, str, str] | None:
    """The first resource two of ``claims`` ((who, resources it owns), in config order) own, as
    (resource, first owner, second owner); None when each has one owner at most."""
    seen: dict[str, str] = {}
    for who, resources in claims:
        for resource in sorted(resources):
            if resource in seen:
                return resource, seen[resource], who
            seen[resource] = who
    return None


def check_claims(claims: list[tuple[str, frozenset]]) -> None:
    """ConfigError naming both members of a chain that own one resource."""
    found = conflict(claims)
    if found:
        resource, first, second = found
        raise ConfigError("method.options", f"{first} and {second}",
                          f"methods that own different things, but both set {resource} (one owner each of "
                          "lr, momentum, batch_size, masks: harness.methods.base.TrainMethod.owns)")


def schedule_owns(name: str) -> frozenset:
    """What ``train.schedule=name`` owns: the lr when it moves it every iteration, else nothing."""
    return frozenset(SCHEDULES.meta(name).get("owns", ()))


def check_owners(cfg, method) -> None:
    """ConfigError when the trial's schedule and its method (``method``, built from ``cfg.method``)
    own one resource, naming both: ``dbs`` (which sets the lr per epoch) with ``train.schedule:
    cosine_iter`` (which sets it every iteration)."""
    name = cfg.train.schedule
    found = conflict([(name, schedule_owns(name))] + method.owners(f"method {cfg.method.name}"))
    if found:
        resource, _, who = found
        others = ", ".join(n for n in SCHEDULES.names() if resource not in schedule_owns(n))
        raise ConfigError("train.schedule", name, f"a schedule that leaves the {resource} to {who}, which sets it "
                          f"({name} sets it every iteration): one of {others}")
