"""The training-method hook: what a method may change between epochs, and when.

``method: {name: ..., options: {...}}`` in a RunConfig names one class registered as
``@METHODS.register(name, kind="train")``. The Trainer builds it once (``Method(**options)``; a bad
option raises ConfigError there, and ``config.validate`` builds it too, so the error comes before Ray
starts) and calls, per trial:

  setup(trainer)                       once, after model, optimizer and loaders exist
  before_epoch(trainer, epoch) -> dict  may set the learning rate, momentum, batch size, masks ...
  after_epoch(trainer, epoch, metrics) -> dict   sees val_acc; may prune, or plan the next epoch
  finish(trainer) -> dict              final metrics of the method (achieved sparsity, ...)
  state_dict() / load_state_dict(sd)   whatever it must carry across a checkpoint and a retry

Returned dicts are merged into the epoch's (or final) metrics, so a method's own quantities are
logged like every other metric. Hooks get the whole Trainer because methods differ in what they
touch (``trainer.optimizer``, ``trainer.train_loader.batch_size``, ``trainer.model``); the per-epoch
``lr``, ``momentum`` and ``batch_size`` metrics are read after ``before_epoch``, so they show what the
epoch really used. After fvcore's ParamScheduler and ShrinkBench's strategies, a method stays small:
the defaults below do nothing.
"""
from __future__ import annotations

from ..registry import METHODS


class TrainMethod:
    def setup(self, trainer) -> None:
        pass

    def before_epoch(self, trainer, epoch: int) -> dict:
        return {}

    def after_epoch(self, trainer, epoch: int, metrics: dict) -> dict:
        return {}

    def finish(self, trainer) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass


@METHODS.register("none", kind="train")
class NoMethod(TrainMethod):
    """Plain training: the optimizer and schedule of ``train`` alone."""


class Experiment(TrainMethod):
    """A study that is not classification training, registered ``kind="experiment"`` (Çallı's pruning
    cycles on a regression net and an autoencoder). ``harness.train.build_trainer`` asks it for its
    own runner in place of the Trainer; the runner offers what a Tune trial uses of a Trainer:
    ``run(on_epoch) -> results``, ``state_dict()``, ``load_state_dict(sd)``, ``counts_summary()`` and
    ``saved_model()``, with ``on_epoch(step, metrics, runner)`` once per step (a pruning cycle, say).
    """

    uses_dataset = True  # False: it makes its own data, so no dataset need be on disk (data.dataset is unread)

    def runner(self, cfg, threads=None):
        raise NotImplementedError

    def setup(self, trainer) -> None:
        from ..errors import ConfigError

        raise ConfigError("method.name", type(self).__name__, "a training method: an experiment runs through "
                          "harness.train.build_trainer, not the classification Trainer")


def train_methods() -> list[str]:
    return [n for n in METHODS.names() if METHODS.meta(n).get("kind") == "train"]


def experiments() -> list[str]:
    return [n for n in METHODS.names() if METHODS.meta(n).get("kind") == "experiment"]


def build_method(name: str, options: dict) -> TrainMethod:
    """The method object for ``method.name`` with ``method.options``; ConfigError on a bad name or option."""
    from ..errors import ConfigError, call_with_options

    if name not in train_methods() + experiments():
        raise ConfigError("method.name", name, "one of " + ", ".join(train_methods() + experiments()))
    if not isinstance(options, dict):
        raise ConfigError("method.options", options, "a mapping of the method's options")
    return call_with_options(METHODS.get(name), options, "method.options", name)
