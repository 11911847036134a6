"""Pöllot et al.'s protocol bookkeeping: a training FLOP budget per network, and per-batch timing.

The slides give "each network ... a budget of FLOPs for training which does not need to be
exhausted". Our reading: the budget is what the full-size network (the base at α = 1, N = 1) costs
to train for ``budget_epochs`` (the slides' 100) epochs on the run's training split; a slim
network or an ensemble trains for the run's epochs and uses part of it. The method, registered as
``flop_budget`` (kind ``train``), logs

per epoch   train_macs         3 x macs x samples_seen: the usual estimate of training work
                               (backward ≈ 2 x forward; not counted, an estimate)
            train_macs_budget  3 x reference_macs x training images x budget_epochs
            budget_used        train_macs / train_macs_budget (a fraction; < 1 means not exhausted)
at the end  reference_macs, reference_params   the full-size network at the run's input size
            macs_ratio, params_ratio           the run's model / the full-size network

A run whose planned training (its epochs and sampling ratios) would exceed the budget is a
ConfigError at setup, before the first epoch. The full-size network is ``reference`` ({name,
options}) or, by default, an ensemble's ``base`` at width 1 with its ``base_options``, or the run's
own model at width 1; it is built on the meta device (no memory, no RNG drawn) and counted with
``harness.measure.profile``.

With ``timing_batch: B`` > 0 it also times, after training, one batch of B images at the run's
input size (the slides' table: milliseconds per batch at 224x224; the batch size is not given)
on the run's device, in float32 (the slides' GTX 1080 Ti has no bf16; cuDNN may use TF32 on
newer GPUs, torch's default):
  train_batch_ms, train_batch_ms_std  one training step (forward with the model's training loss,
                                      backward, SGD step) of a copy of the trained model, so the
                                      run's weights are untouched; median and std over
                                      ``timing_repeats`` after ``timing_warmup`` untimed steps, each
                                      step between two device synchronizations
  infer_batch_ms, infer_batch_ms_std  one forward pass in eval mode (harness.latency: CUDA events
                                      on a GPU), median and std
The ensemble's members run one after another, as a plain PyTorch ensemble does.
"""
from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import METHODS
from .base import TrainMethod

TRAIN_MACS_PER_FORWARD_MAC = 3  # forward + backward (about twice the forward's work): the common estimate


def _positive_int(key: str, value: int, minimum: int = 1) -> int:  # typed by FlopBudget's annotations
    if value < minimum:
        raise ConfigError(f"method.options.{key}", value, f"an integer >= {minimum}")
    return value


@METHODS.register("flop_budget")
class FlopBudget(TrainMethod):
    """Log training MACs against the full-size network's budget; optionally time a batch (module doc)."""

    def __init__(self, budget_epochs: int = 100, reference: dict | None = None, timing_batch: int = 0,
                 timing_repeats: int = 20, timing_warmup: int = 5):
        self.budget_epochs = _positive_int("budget_epochs", budget_epochs)
        if reference is not None and not (isinstance(reference.get("name"), str)
                                          and set(reference) <= {"name", "options"}):
            raise ConfigError("method.options.reference", reference,
                              "null (the base at width 1) or {name: <model>, options: {...}}")
        if reference is not None:
            from .. import models

            models.check_options(reference["name"], reference.get("options") or {})
        self.reference = reference
        self.timing_batch = _positive_int("timing_batch", timing_batch, 0)
        self.timing_repeats = _positive_int("timing_repeats", timing_repeats)
        self.timing_warmup = _positive_int("timing_warmup", timing_warmup, 0)
        self.counts: dict = {}

    def _reference(self, cfg) -> tuple[str, dict]:
        if self.reference is not None:
            return self.reference["name"], dict(self.reference.get("options") or {})
        options = dict(cfg.model.options)
        if cfg.model.name == "ensemble":
            from ..models.ensemble import _check

            _check(**options)
            return options.get("base", "resnet20"), {**(options.get("base_options") or {}), "width": 1.0}
        options.pop("width", None)
        return cfg.model.name, options

    def setup(self, ctx) -> None:
        from .. import measure, models

        name, options = self._reference(ctx.cfg)
        channels, side = ctx.input_shape[0], ctx.input_shape[1]
        dataset = {"num_classes": ctx.num_classes, "in_channels": channels, "image_size": side}
        with torch.device("meta"):
            reference = models.build(name, **{**options, **dataset})
        counts = measure.profile(reference, ctx.input_shape)
        images = ctx.batches.num_samples
        self.counts = {"reference_macs": counts["macs"], "reference_params": counts["params"],
                       "train_macs_budget": TRAIN_MACS_PER_FORWARD_MAC * counts["macs"] * images * self.budget_epochs}
        planned = TRAIN_MACS_PER_FORWARD_MAC * ctx.counts["macs"] * images * sum(ctx.ratios)
        if planned > self.counts["train_macs_budget"] * (1 + 1e-9):
            raise ConfigError("method.options.budget_epochs", self.budget_epochs,
                              f"a budget the run fits in: {ctx.cfg.train.epochs} epochs of a model with "
                              f"{ctx.counts['macs']:,} MACs need {planned / self.counts['train_macs_budget']:.2f}"
                              f" x the full-size network's {self.budget_epochs} epochs")

    def after_epoch(self, ctx, epoch: int, metrics: dict) -> dict:
        used = TRAIN_MACS_PER_FORWARD_MAC * ctx.counts["macs"] * metrics["samples_seen"]
        return {"train_macs": used, "train_macs_budget": self.counts["train_macs_budget"],
                "budget_used": used / self.counts["train_macs_budget"]}

    def finish(self, ctx) -> dict:
        out = {"reference_macs": self.counts["reference_macs"], "reference_params": self.counts["reference_params"],
               "macs_ratio": ctx.counts["macs"] / self.counts["reference_macs"],
               "params_ratio": ctx.counts["params"] / self.counts["reference_params"]}
        if self.timing_batch:
            out.update(self._time(ctx))
        return out

    def _time(self, ctx) -> dict:
        from ..latency import measure_latency
        from ..models.base import OwnLoss

        device, shape = ctx.device, ctx.input_shape
        model = copy.deepcopy(ctx.model).float()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)  # tiny lr: a real step, no blow-up
        x = torch.randn(self.timing_batch, *shape, device=device)
        if ctx.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, ctx.num_classes, (self.timing_batch,), device=device)
        model.train()
        times = []
        for step in range(self.timing_warmup + self.timing_repeats):
            _sync(device)
            start = time.perf_counter()
            if isinstance(model, OwnLoss):
                loss = model.forward_train(x, y)[1]
            else:
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(device)
            if step >= self.timing_warmup:
                times.append(1000 * (time.perf_counter() - start))
        inference = measure_latency(model, shape, batch_size=self.timing_batch, repeats=self.timing_repeats,
                                    warmup=self.timing_warmup)
        del model, optimizer
        return {"train_batch_ms": statistics.median(times),
                "train_batch_ms_std": statistics.stdev(times) if len(times) > 1 else 0.0,
                "infer_batch_ms": 1000 * inference["latency_s"],
                "infer_batch_ms_std": 1000 * inference["latency_std_s"],
                "timing_batch": self.timing_batch}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
