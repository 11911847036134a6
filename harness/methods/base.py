"""The training-method hook: what a method may change between epochs, and when, through what.

``method: {name: ..., options: {...}}`` in a RunConfig names one class registered as
``@METHODS.register(name, kind="train")``. ``harness.train.build_runner`` builds it once per trial
(``Method(**options)``; a bad option raises ConfigError there, and config validation builds its
own copy for the check, so the error comes before Ray starts), hands it to the Trainer, which calls:

  setup(ctx)                        once, after model, optimizer and loaders exist
  before_epoch(ctx, epoch) -> dict  may set the learning rate, momentum, batch size, masks ...
  after_epoch(ctx, epoch, metrics) -> dict   sees val_acc and samples_seen; may prune, or plan ahead
  finish(ctx) -> dict               final metrics of the method (achieved sparsity, ...)
  state_dict() / load_state_dict(sd)   whatever it must carry across a checkpoint and a retry

After Composer's ``State``, the hooks see a ``MethodContext``, not the Trainer: the config, the
model, the optimizer, the train loader's batch-size control, the model's counts, the device and
the evaluation loaders; a method keeps its own state on itself. Returned dicts are merged into the
epoch's (or final) metrics, so a method's own quantities are logged like every other metric. The
per-epoch ``lr``, ``momentum`` and ``batch_size`` metrics are read after ``before_epoch``, so they
show what the epoch really used. After fvcore's ParamScheduler and ShrinkBench's strategies, a
method stays small: the defaults below do nothing.

An experiment (``kind="experiment"``) is not classification training: it brings its own runner
(``Experiment.runner``). ``uses_dataset=False`` in its registration says it makes its own data, so
no dataset need be on disk (``METHODS.meta(name).get("uses_dataset", True)``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ..registry import METHODS


class BatchControl:
    """The train loader's batch size, as a method may read and set it (DBS), and what it trains on."""

    def __init__(self, loader):
        self._loader = loader

    @property
    def batch_size(self) -> int:
        return self._loader.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._loader.batch_size = value  # takes effect from the next epoch's batches

    @property
    def num_samples(self) -> int:
        """Training images (the split, before a sampler's ratio)."""
        return self._loader.num_samples

    def first_images(self, n: int) -> list:
        """The first ``n`` training batches' images of epoch 0, augmented as in training (calibration data)."""
        images = []
        for x, _ in self._loader.epoch(0):
            images.append(x)
            if len(images) == n:
                break
        return images


@dataclass
class MethodContext:
    """What a training method's hooks see of a run (harness.train.Trainer builds one per trial)."""

    cfg: Any  # the trial's RunConfig (train.epochs, train.batch_size, model.options, ...)
    model: Any  # the nn.Module on the device; a method may attach masks or parametrizations to it
    optimizer: Any  # torch SGD: a method may set its param_groups' lr and momentum per epoch
    batches: BatchControl  # the train loader's batch size (get/set) and its number of samples
    counts: dict  # harness.measure.profile of the model as built: params, macs, flops, ...
    device: Any  # torch.device the model and the loaders' batches live on
    input_shape: tuple  # (channels, height, width) of one image
    num_classes: int
    ratios: list  # the sampler's per-epoch sampling ratios (1.0 = every batch)
    val_loader: Any = None  # the evaluation loaders (device-resident, unshuffled), for a method that evaluates
    test_loader: Any = None


class TrainMethod:
    def setup(self, ctx: MethodContext) -> None:
        pass

    def before_epoch(self, ctx: MethodContext, epoch: int) -> dict:
        return {}

    def after_epoch(self, ctx: MethodContext, epoch: int, metrics: dict) -> dict:
        return {}

    def finish(self, ctx: MethodContext) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass


@METHODS.register("none", kind="train")
class NoMethod(TrainMethod):
    """Plain training: the optimizer and schedule of ``train`` alone."""


class Experiment(TrainMethod, ABC):
    """A study that is not classification training, registered ``kind="experiment"`` (Çallı's pruning
    cycles on a regression net and an autoencoder). ``harness.train.build_runner`` asks it for its
    own runner in place of the Trainer: a ``harness.runner.Runner``, whose ``on_epoch(step, metrics)``
    comes once per step (a pruning cycle, say).
    """

    @abstractmethod
    def runner(self, cfg, threads=None):
        """The harness.runner.Runner that runs this experiment for ``cfg``."""

    def setup(self, ctx) -> None:
        from ..errors import ConfigError

        raise ConfigError("method.name", type(self).__name__, "a training method: an experiment runs through "
                          "harness.train.build_runner, not the classification Trainer")


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
