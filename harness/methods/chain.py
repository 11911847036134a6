"""Several training methods in one run (``method: {name: chain, options: {prune: {...}, dbs: {...}}}``).

A RunConfig names one method; Zheng et al.'s SWR-CNN + DBS prunes and scales the batch size in the
same run. ``chain`` builds each named method with its options (each checked as if it stood alone)
and calls every hook on them in the mapping's order, merging the dicts they return; state is kept
per method name. Methods in a chain touch different things (pruning masks here, learning rate /
momentum / batch size there): two members that own one resource (``TrainMethod.owns``) are a
ConfigError naming both (harness.owners). The batch events go to the members that override them, in
order (``handlers``): each ``before_batch`` gets the batch the one before returned, each ``loss``
the loss the one before returned.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..owners import check_claims
from ..registry import METHODS
from .base import TrainMethod, build_method


@METHODS.register("chain")
class Chain(TrainMethod):
    """Run several training methods together, in order: ``{method name: its options, ...}``."""

    def __init__(self, **methods):
        if not methods:
            raise ConfigError("method.options", methods, "a mapping of at least one method name to its options")
        self.methods = {}
        for name, options in methods.items():
            if name == "chain" or name not in METHODS:
                raise ConfigError(f"method.options.{name}", options,
                                  "a training method's options, keyed by one of " +
                                  ", ".join(n for n in METHODS.names() if n != "chain"))
            try:
                self.methods[name] = build_method(name, options if options is not None else {})
            except ConfigError as err:  # name the key inside the chain
                key = err.key.replace("method.options", f"method.options.{name}", 1)
                raise ConfigError(key, err.value, err.valid) from None
        check_claims(self.owners("method chain"))

    def handlers(self, event: str) -> list:
        return [handler for method in self.methods.values() for handler in method.handlers(event)]

    def owners(self, label: str) -> list[tuple[str, frozenset]]:
        return [claim for name, method in self.methods.items() for claim in method.owners(f"method {name}")]

    def before_batch(self, ctx, x, y) -> tuple:
        for handler in self.handlers("before_batch"):
            x, y = handler(ctx, x, y)
        return x, y

    def loss(self, ctx, x, y, logits, loss):
        for handler in self.handlers("loss"):
            loss = handler(ctx, x, y, logits, loss)
        return loss

    def after_backward(self, ctx) -> None:
        for handler in self.handlers("after_backward"):
            handler(ctx)

    def after_step(self, ctx) -> None:
        for handler in self.handlers("after_step"):
            handler(ctx)

    def before_eval(self, ctx, epoch: int) -> dict:
        out: dict = {}
        for handler in self.handlers("before_eval"):
            out.update(handler(ctx, epoch) or {})
        return out

    def check(self, cfg) -> None:
        for method in self.methods.values():
            method.check(cfg)

    def setup(self, ctx) -> None:
        for method in self.methods.values():
            method.setup(ctx)

    def before_epoch(self, ctx, epoch: int) -> dict:
        out: dict = {}
        for method in self.methods.values():
            out.update(method.before_epoch(ctx, epoch) or {})
        return out

    def after_epoch(self, ctx, epoch: int, metrics: dict) -> dict:
        out: dict = {}
        for method in self.methods.values():  # a later method sees what an earlier one added
            out.update(method.after_epoch(ctx, epoch, {**metrics, **out}) or {})
        return out

    def finish(self, ctx) -> dict:
        out: dict = {}
        for method in self.methods.values():
            out.update(method.finish(ctx) or {})
        return out

    def state_dict(self) -> dict:
        return {name: method.state_dict() for name, method in self.methods.items()}

    def load_state_dict(self, sd: dict) -> None:
        for name, method in self.methods.items():
            method.load_state_dict(sd.get(name, {}))
