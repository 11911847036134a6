"""Learning-rate schedules, looked up by ``train.schedule`` in the SCHEDULES registry.

Each builder takes the optimizer and the TrainConfig and returns a torch LR scheduler stepped once
per epoch. Importing this module imports no torch (each builder imports it when called), so the
driver's config checks can list the valid names without paying for torch.
"""
from __future__ import annotations

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


def build_scheduler(optimizer, cfg):
    """The epoch-stepped learning-rate schedule, with torch's LinearLR in front for warm-up."""
    import torch

    main = SCHEDULES.get(cfg.schedule)(optimizer, cfg)
    if cfg.warmup_epochs == 0:
        return main
    warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start, end_factor=1.0,
                                             total_iters=cfg.warmup_epochs)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[cfg.warmup_epochs])
