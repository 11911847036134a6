"""Several training methods in one run (``method: {name: chain, options: {prune: {...}, dbs: {...}}}``).

A RunConfig names one method; Zheng et al.'s SWR-CNN + DBS prunes and scales the batch size in the
same run. ``chain`` builds each named method with its options (each checked as if it stood alone)
and calls every hook on them in the mapping's order, merging the dicts they return; state is kept
per method name. Methods in a chain should touch different things (pruning masks here, learning
rate / momentum / batch size there); where two set the same, the later one wins.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..registry import METHODS
from .base import TrainMethod, build_method, train_methods


@METHODS.register("chain", kind="train")
class Chain(TrainMethod):
    """Run several training methods together, in order: ``{method name: its options, ...}``."""

    def __init__(self, **methods):
        if not methods:
            raise ConfigError("method.options", methods, "a mapping of at least one method name to its options")
        self.methods = {}
        for name, options in methods.items():
            if name == "chain" or name not in train_methods():
                raise ConfigError(f"method.options.{name}", options,
                                  "a training method's options, keyed by one of " +
                                  ", ".join(n for n in train_methods() if n != "chain"))
            try:
                self.methods[name] = build_method(name, options if options is not None else {})
            except ConfigError as err:  # name the key inside the chain
                key = err.key.replace("method.options", f"method.options.{name}", 1)
                raise ConfigError(key, err.value, err.valid) from None

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
