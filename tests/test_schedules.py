"""harness.schedules' cosine_iter: the lr of every iteration is the cosine at its fractional epoch."""
import math

import pytest
import torch

from harness.config import RunConfig
from harness.schedules import build_scheduler, cosine_factor
from harness.train import Trainer

LR = 0.1


def _cosine(where: float) -> float:
    """CosineAnnealingLR's curve (eta_min 0) at the share ``where`` of training done."""
    return LR * (1 + math.cos(math.pi * where)) / 2


def _recorded_lrs(trainer: Trainer, epochs: int) -> list[float]:
    """The lr each optimizer step used, in order."""
    lrs = []
    trainer.optimizer.register_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    for epoch in range(1, epochs + 1):
        trainer.train_epoch(epoch)
    return lrs


def _cfg(sampler=None):
    return RunConfig.from_dict({"data": {"dataset": "digits", "train_subset": 200, "test_subset": 50, "val_size": 50},
                                "model": {"name": "digits_cnn"}, "sampler": sampler or {"name": "full"},
                                "train": {"epochs": 3, "batch_size": 32, "lr": LR, "schedule": "cosine_iter",
                                          "threads": 1}})


def test_the_lr_after_k_iterations_is_the_cosine_at_k_over_all_iterations():
    # 200 images at batch 32: ceil(200 / 32) = 7 steps an epoch, 21 in 3 epochs
    lrs = _recorded_lrs(Trainer(_cfg()), 3)
    assert len(lrs) == 21
    assert lrs == pytest.approx([_cosine(k / 21) for k in range(21)], rel=1e-12)
    assert lrs[0] == LR and lrs[7] == pytest.approx(_cosine(1 / 3)) and lrs[-1] == pytest.approx(_cosine(20 / 21))


def test_a_reduced_epoch_spans_a_whole_epoch_of_the_curve():
    # flat 0.618: floor(0.618 * 7) = 4 steps an epoch; step i of epoch e sits at (e - 1 + i / 4) / 3
    lrs = _recorded_lrs(Trainer(_cfg({"name": "flat", "alpha": [0.618]})), 3)
    assert len(lrs) == 12
    assert lrs == pytest.approx([_cosine((e + i / 4) / 3) for e in range(3) for i in range(4)], rel=1e-12)


def test_the_epoch_boundaries_equal_the_epoch_stepped_cosine():
    """step() alone (no seek) walks the per-epoch curve: the same lrs as CosineAnnealingLR."""
    for warmup in (0, 2):
        cfg_iter = RunConfig.from_dict({"train": {"epochs": 6, "schedule": "cosine_iter", "warmup_epochs": warmup,
                                                  "warmup_start": 0.5}}).train
        cfg_epoch = RunConfig.from_dict({"train": {"epochs": 6, "schedule": "cosine", "warmup_epochs": warmup,
                                                   "warmup_start": 0.5}}).train
        lrs = {}
        for cfg in (cfg_iter, cfg_epoch):
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
            sched = build_scheduler(opt, cfg)
            lrs[cfg.schedule] = []
            for _ in range(6):
                lrs[cfg.schedule].append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
        assert lrs["cosine_iter"] == pytest.approx(lrs["cosine"], rel=1e-12)
    # warm-up 2 epochs from 0.5: 0.05, 0.075, then the cosine over the 4 remaining epochs
    assert lrs["cosine_iter"][:3] == pytest.approx([0.05, 0.075, 0.1])


def test_warm_up_is_linear_per_iteration_and_the_curve_ends_at_zero():
    assert cosine_factor(0.5, epochs=10, warmup_epochs=2, warmup_start=0.2) == pytest.approx(0.2 + 0.8 * 0.25)
    assert cosine_factor(6, epochs=10, warmup_epochs=2) == pytest.approx(0.5)  # halfway through the 8 cosine epochs
    assert cosine_factor(10, epochs=10) == pytest.approx(0.0, abs=1e-15)


def test_a_resumed_run_continues_the_same_lrs():
    full = _recorded_lrs(Trainer(_cfg()), 3)
    first = Trainer(_cfg())
    first.train_epoch(1)
    resumed = Trainer(_cfg())
    resumed.load_state_dict(first.state_dict())
    lrs = []
    resumed.optimizer.register_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    resumed.train_epoch(2)
    resumed.train_epoch(3)
    assert lrs == pytest.approx(full[7:], rel=1e-12)
