"""The training-method hook: what a method may change between epochs, and when, through what.

``method: {name: ..., options: {...}}`` in a RunConfig names one class registered as
``@METHODS.register(name)`` (harness.registry.METHODS, the training methods). ``harness.train.build_runner``
builds it once per trial (``Method(**options)``; a bad option raises ConfigError there, and config
validation builds its own copy for the check, so the error comes before Ray starts), hands it to the
Trainer, which calls:

  check(cfg)                        before any work (config validation): ConfigError for a config it cannot train
  setup(ctx)                        once, after model, optimizer and loaders exist
  before_epoch(ctx, epoch) -> dict  may set the learning rate, momentum, batch size, masks ...
  before_batch(ctx, x, y) -> (x, y) each batch, before the forward pass: a batch transform (mixup)
  loss(ctx, x, y, logits, loss) -> loss   after the forward pass, inside its autocast: a loss
                                    term (distillation, a regularizer); the returned loss is the
                                    one back-propagated and logged as train_loss
  after_backward(ctx)               gradients present (unscaled under fp16), before the optimizer
                                    step: clipping, straight-through estimators, gradient surgery
  after_step(ctx)                   after the optimizer step (and fp16's scaler update)
  before_eval(ctx, epoch) -> dict   after the epoch's training, before val/test evaluation (a
                                    stack fits its member weights on validation here)
  after_epoch(ctx, epoch, metrics) -> dict   sees val_acc and samples_seen; may prune, or plan ahead
  finish(ctx) -> dict               final metrics of the method (achieved sparsity, ...)
  state_dict() / load_state_dict(sd)   whatever it must carry across a checkpoint and a retry

After Composer's ``State`` and ``Event``, the hooks see a ``MethodContext``, not the Trainer: the
config, the model, the optimizer, the train loader's batch-size control, the model's counts, the
device and the evaluation loaders, and, kept current by the Trainer, ``epoch``, ``batch_index``
(0-based, in this epoch) and ``num_batches`` (this epoch's); a method keeps its own state on itself.
The Trainer decides at setup which events each method overrides (``handlers``) and calls only those,
in order: its built-in parts first (harness.methods.parts: the per-iteration lr, fp16's unscaling,
the stack's validation fit), then the method; a trial whose method overrides no batch event runs
the loop it ran before events existed. Returned dicts are merged into the epoch's (or final)
metrics, so a method's own quantities are logged like every other metric. The per-epoch ``lr`` and
``momentum`` metrics are the optimizer's at the epoch's last step (after a per-iteration schedule
has set it), ``batch_size`` the loader's, so they show what the steps really used.

A method declares what it sets (``owns``, a subset of RESOURCES: lr, momentum, batch_size, masks);
a per-iteration schedule (``train.schedule: cosine_iter``) owns the lr. Two owners of one resource,
in a chain or a method beside such a schedule, are a ConfigError naming both (harness.owners).
After fvcore's ParamScheduler and ShrinkBench's strategies, a method stays small: the defaults below
do nothing.

An experiment (``@EXPERIMENTS.register(name)``, harness.registry.EXPERIMENTS) is not classification
training: it brings its own runner (``Experiment.runner``), and ``method.name`` names it as it names a
training method. Its registration declares what it does not need: ``uses_dataset=False`` (it makes its
own data: no dataset need be on disk), ``builds_model=False`` (it builds a network of its own, not
``model.name``); the driver reads them with ``harness.registry.method_flag``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

from ..registry import METHODS, method_registry


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

    def epoch(self, epoch: int):
        """The (images, labels) training batches of ``epoch``, ordered and augmented as the Trainer's are:
        for a method that trains a model of its own on the run's data (a distillation teacher)."""
        return self._loader.epoch(epoch)

    def first_images(self, n: int) -> list:
        """The first ``n`` training batches' images of epoch 0, augmented as in training (calibration data)."""
        images = []
        for x, _ in self.epoch(0):
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
    scaler: Any = None  # torch.amp.GradScaler (enabled under train.precision fp16 only)
    # kept current by the Trainer for the batch events:
    epoch: int = 0  # 1-based epoch being trained
    batch_index: int = 0  # 0-based index of the batch in this epoch
    num_batches: int = 0  # batches this epoch trains (the sampler's share of the split)


RESOURCES = ("lr", "momentum", "batch_size", "masks")  # what a method may own (TrainMethod.owns)
BATCH_EVENTS = ("before_batch", "loss", "after_backward", "after_step")
EVENTS = BATCH_EVENTS + ("before_eval",)  # the events the Trainer dispatches through handlers()


class TrainMethod:
    owns: frozenset = frozenset()  # the RESOURCES this method sets; one owner each per run

    def check(self, cfg) -> None:
        """ConfigError for a config this method cannot train (a model it cannot work on, say), raised by
        harness.checks.check_config before any work; the default accepts every config."""

    def setup(self, ctx: MethodContext) -> None:
        pass

    def before_epoch(self, ctx: MethodContext, epoch: int) -> dict:
        return {}

    def before_batch(self, ctx: MethodContext, x, y) -> tuple:
        return x, y

    def loss(self, ctx: MethodContext, x, y, logits, loss):
        return loss

    def after_backward(self, ctx: MethodContext) -> None:
        pass

    def after_step(self, ctx: MethodContext) -> None:
        pass

    def before_eval(self, ctx: MethodContext, epoch: int) -> dict:
        return {}

    def after_epoch(self, ctx: MethodContext, epoch: int, metrics: dict) -> dict:
        return {}

    def finish(self, ctx: MethodContext) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass

    def handlers(self, event: str) -> list[Callable]:
        """The callables the Trainer runs on ``event`` (one of EVENTS), in order: this method's own
        when it overrides the default, else none, so an event nobody uses costs nothing per batch."""
        return [getattr(self, event)] if getattr(type(self), event) is not getattr(TrainMethod, event) else []

    def owners(self, label: str) -> list[tuple[str, frozenset]]:
        """(who, what it owns) for this method and the methods it is made of; ``label`` names it."""
        return [(label, frozenset(self.owns))] if self.owns else []


@METHODS.register("none")
class NoMethod(TrainMethod):
    """Plain training: the optimizer and schedule of ``train`` alone."""


class Experiment(TrainMethod, ABC):
    """A study that is not classification training, registered in EXPERIMENTS (Çallı's pruning
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


def build_method(name: str, options: dict) -> TrainMethod:
    """The training method or experiment ``method.name`` names, built with ``method.options``; ConfigError
    on an unknown name (listing both registries' names) or a bad option."""
    from ..errors import ConfigError, call_with_options

    registry = method_registry(name)
    if not isinstance(options, dict):
        raise ConfigError("method.options", options, "a mapping of the method's options")
    return call_with_options(registry.get(name), options, "method.options", name)
