"""Learning-rate schedules, looked up by ``train.schedule`` in the SCHEDULES registry.

Each builder takes the optimizer and the TrainConfig and returns a torch LR scheduler that the
Trainer steps once per epoch. ``cosine_iter`` also moves within an epoch: it has a ``seek(position)``
method (position in epochs, fractional), which the Trainer calls before every optimizer step
(harness.methods.parts.IterationLR), so it owns the lr (registered ``owns=("lr",)``): a training
method that also sets the lr is refused with it (harness.owners).
Importing this module imports no torch (each builder imports it when called), so the driver's
config checks can list the valid names without paying for torch.
"""
from __future__ import annotations

import math
from functools import lru_cache

from .registry import SCHEDULES


@SCHEDULES.register("multistep")
def _multistep(optimizer, cfg):
    import torch

    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.lr_decay)


@SCHEDULES.register("cosine")
def _cosine(optimizer, cfg):
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs - cfg.warmup_epochs)


@SCHEDULES.register("constant")
def _constant(optimizer, cfg):
    import torch

    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def cosine_factor(position: float, epochs: int, warmup_epochs: int = 0, warmup_start: float = 0.1) -> float:
    """lr / base lr at ``position`` epochs into training (fractional: epoch e, batch i of n is
    e - 1 + i / n): linear from warmup_start to 1 over the warm-up epochs, then (1 + cos(π t)) / 2
    with t the share of the remaining epochs done (CosineAnnealingLR's curve with eta_min 0)."""
    if position < warmup_epochs:
        return warmup_start + (1.0 - warmup_start) * position / warmup_epochs
    done = min(1.0, (position - warmup_epochs) / (epochs - warmup_epochs))
    return (1.0 + math.cos(math.pi * done)) / 2.0


@lru_cache(maxsize=None)
def _cosine_per_iteration():
    """The class behind ``cosine_iter``, made on first use so that importing this module needs no torch."""
    import torch

    class CosinePerIteration(torch.optim.lr_scheduler.LRScheduler):
        """Cosine decay by iteration (Jiang Sec. 2.2: "based on the iteration number and epoch
        number"). ``step()`` is the epoch boundary (position = epochs done); ``seek`` sets any
        fractional position. The position counts epochs, not batches, so a reduced-sampling epoch
        of fewer batches covers the same stretch of the curve as a full one and every run ends at 0."""

        def __init__(self, optimizer, epochs: int, warmup_epochs: int, warmup_start: float):
            self.epochs, self.warmup_epochs, self.warmup_start = epochs, warmup_epochs, warmup_start
            self.position = 0.0
            super().__init__(optimizer)

        def get_lr(self) -> list[float]:
            factor = cosine_factor(self.position, self.epochs, self.warmup_epochs, self.warmup_start)
            return [base * factor for base in self.base_lrs]

        def seek(self, position: float) -> None:
            self.position = float(position)
            for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
                group["lr"] = lr
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

        def step(self, epoch=None) -> None:  # noqa: ARG002 - torch's signature; the position is counted here
            self.last_epoch += 1
            self.seek(self.last_epoch)

    return CosinePerIteration


@SCHEDULES.register("cosine_iter", owns=("lr",))  # sets the lr every iteration (harness.owners)
def _cosine_iter(optimizer, cfg):
    # warm-up is part of the curve (per iteration too), so build_scheduler adds no LinearLR in front
    return _cosine_per_iteration()(optimizer, cfg.epochs, cfg.warmup_epochs, cfg.warmup_start)


def build_scheduler(optimizer, cfg):
    """The learning-rate schedule, with torch's LinearLR in front for an epoch-stepped warm-up."""
    import torch

    main = SCHEDULES.get(cfg.schedule)(optimizer, cfg)
    if cfg.warmup_epochs == 0 or hasattr(main, "seek"):
        return main
    warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start, end_factor=1.0,
                                             total_iters=cfg.warmup_epochs)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[cfg.warmup_epochs])
