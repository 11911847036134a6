"""The Trainer's built-in parts: what a model, a schedule or a precision adds to the training step,
each written once on the events of harness.methods.base, so the batch loop itself is generic.

  forward_step(model)   (logits, loss) of a batch: cross-entropy on ``model(x)``, or a model's own
                        training loss (OwnLoss, harness.models.base: an ensemble's members' losses)
  IterationLR           before_batch: a per-iteration schedule (``cosine_iter``: ``seek``) sets
                        this batch's lr at its fractional epoch; it owns the lr (harness.owners)
  Unscale               after_backward, under fp16 only: the GradScaler unscales the gradients,
                        so the method's after_backward (clipping) sees true ones; its step then
                        does not unscale again
  ValidationFit         before_eval: a stack fits its member weights on the validation split
                        (FitsOnValidation), so its val_acc is measured on the data it was fitted on

``builtin_parts`` picks the ones a trial needs, once, at setup; the Trainer runs their events before
the training method's. None is a registered method: a config cannot name one.
"""
from __future__ import annotations

from typing import Callable

import torch.nn.functional as F

from ..models.base import FitsOnValidation, OwnLoss
from .base import TrainMethod


def forward_step(model) -> Callable:
    """``step(x, y) -> (logits, loss)``: the model's own training loss, or cross-entropy on its logits."""
    if isinstance(model, OwnLoss):
        return model.forward_train

    def cross_entropy(x, y):
        logits = model(x)
        return logits, F.cross_entropy(logits, y)

    return cross_entropy


class IterationLR(TrainMethod):
    """A per-iteration schedule's lr for each batch: position epoch - 1 + i / n for batch i of n (a
    reduced-sampling epoch of fewer batches spans a whole epoch of the curve)."""

    owns = frozenset({"lr"})

    def __init__(self, seek: Callable[[float], None]):
        self.seek = seek

    def before_batch(self, ctx, x, y):
        self.seek(ctx.epoch - 1 + ctx.batch_index / ctx.num_batches)
        return x, y


class Unscale(TrainMethod):
    """fp16: divide the gradients by the loss scale before anything reads them."""

    def __init__(self, scaler, optimizer):
        self.scaler, self.optimizer = scaler, optimizer

    def after_backward(self, ctx) -> None:
        self.scaler.unscale_(self.optimizer)


class ValidationFit(TrainMethod):
    def __init__(self, model, val_loader):
        self.model, self.val_loader = model, val_loader

    def before_eval(self, ctx, epoch: int) -> dict:
        return self.model.fit_on_validation(self.val_loader) or {}


def builtin_parts(model, scheduler, scaler, optimizer, val_loader, method: TrainMethod) -> list[TrainMethod]:
    """The parts this trial needs, in the order their events run (before ``method``'s). fp16's
    unscaling is added only when ``method`` reads gradients (after_backward): the scaler's step
    unscales by itself otherwise, so a trial without that event runs exactly what it ran before."""
    parts: list[TrainMethod] = []
    seek = getattr(scheduler, "seek", None)  # harness.schedules: a per-iteration schedule has seek(position)
    if seek is not None:
        parts.append(IterationLR(seek))
    if scaler.is_enabled() and method.handlers("after_backward"):
        parts.append(Unscale(scaler, optimizer))
    if isinstance(model, FitsOnValidation):
        parts.append(ValidationFit(model, val_loader))
    return parts
