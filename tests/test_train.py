"""train(): metrics, counts, determinism, samplers' batch counts and schedules on real digits data."""
import math

import pytest
import torch

from harness.config import RunConfig
from harness.train import Trainer, TrainingDiverged, build_scheduler, train

BASE = {"data": {"dataset": "digits", "train_subset": 200, "test_subset": 100, "val_size": 50},
        "model": {"name": "digits_cnn"}, "train": {"epochs": 3, "batch_size": 32, "milestones": [2], "threads": 1}}


def _cfg(**over):
    d = {k: dict(v) for k, v in BASE.items()}
    for section, values in over.items():
        d.setdefault(section, {}).update(values)
    return RunConfig.from_dict(d)


def test_epoch_metrics_and_counts():
    seen = []
    results = train(_cfg(), on_epoch=lambda e, m: seen.append((e, m)))
    assert [e for e, _ in seen] == [1, 2, 3]
    keys = {"train_loss", "train_acc", "val_acc", "test_acc", "test_acc5", "epoch_time_s", "images_per_s",
            "samples_seen", "lr", "batch_size", "train_time_s", "sampling_ratio", "batches"}
    assert keys <= set(seen[0][1])
    # 200 training images, batch 32: 7 batches (the last of 8), every image once per epoch
    assert [m["samples_seen"] for _, m in seen] == [200, 400, 600]
    assert [m["batches"] for _, m in seen] == [7, 7, 7]
    # multistep: 0.1 for epochs 1-2, x0.1 after epoch 2
    assert [m["lr"] for _, m in seen] == pytest.approx([0.1, 0.1, 0.01])
    assert results["flops"] == 2 * results["macs"] > 0
    assert results["params"] == sum(p.numel() for p in Trainer(_cfg()).model.parameters())
    for _, m in seen:
        assert 0 <= m["test_acc"] <= m["test_acc5"] <= 100
        assert m["train_time_s"] >= m["epoch_time_s"] > 0
        assert m["data_time_s"] > 0 and m["compute_time_s"] > 0
        assert m["data_time_s"] + m["compute_time_s"] == pytest.approx(m["epoch_time_s"])


def test_same_seed_same_result_other_seed_differs():
    a = train(_cfg())
    b = train(_cfg())
    c = train(_cfg(train={"seed": 1}))
    assert a["train_loss"] == b["train_loss"] and a["test_acc"] == b["test_acc"]
    assert a["train_loss"] != c["train_loss"]


def test_flat_sampler_trains_floor_alpha_m_batches():
    seen = []
    train(_cfg(sampler={"name": "flat", "alpha": [0.618]}), on_epoch=lambda e, m: seen.append(m))
    # M = ceil(200/32) = 7; floor(0.618 * 7) = 4 full batches of 32 each epoch
    assert [m["batches"] for m in seen] == [4, 4, 4]
    assert seen[-1]["samples_seen"] == 3 * 4 * 32
    assert seen[-1]["sampling_ratio"] == 0.618


def test_three_stage_ratios_reach_the_loop():
    seen = []
    cfg = _cfg(train={"epochs": 7, "milestones": []},
               sampler={"name": "three_stage", "alpha": [1.0, 1.0, 0.5], "gamma": ["1/7", "5/7", "1/7"], "se": 0.5})
    res = train(cfg, on_epoch=lambda e, m: seen.append(m))
    assert [m["sampling_ratio"] for m in seen] == [1.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5]
    assert [m["batches"] for m in seen] == [7, 3, 3, 3, 3, 7, 3]
    assert res["predicted_time_ratio"] == pytest.approx(sum([1.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5]) / 7)


def test_divergence_is_an_error():
    with pytest.raises(TrainingDiverged, match="train_loss"):
        train(_cfg(train={"lr": 1e30, "momentum": 0.0}))


@pytest.mark.parametrize("schedule,extra,expected", [
    ("cosine", {}, [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2]),
    ("constant", {}, [0.1] * 4),
    ("multistep", {"milestones": [1, 3], "lr_decay": 0.5}, [0.1, 0.05, 0.05, 0.025]),
    # linear warm-up over 2 epochs from 0.5 x lr: 0.05, 0.075, then the full lr
    ("constant", {"warmup_epochs": 2, "warmup_start": 0.5}, [0.05, 0.075, 0.1, 0.1]),
])
def test_schedules_by_hand(schedule, extra, expected):
    cfg = RunConfig.from_dict({"train": {"epochs": 4, "schedule": schedule, **extra}}).train
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx(expected)


def test_checkpoint_state_resumes_identically():
    full = train(_cfg())
    t = Trainer(_cfg())
    t.train_epoch(1)
    state = t.state_dict()
    resumed = Trainer(_cfg())
    resumed.load_state_dict(state)
    assert resumed.state.epoch == 1
    res = resumed.run()
    assert res.metrics["train_loss"] == pytest.approx(full["train_loss"], rel=1e-5)
    assert res.metrics["samples_seen"] == full["samples_seen"]


# -- the training-method hook (harness.methods.base) --------------------------------------------
from harness.errors import ConfigError  # noqa: E402
from harness.methods.base import TrainMethod  # noqa: E402
from harness.registry import METHODS  # noqa: E402


@METHODS.register("test_double_batch")
class _DoubleBatch(TrainMethod):
    """Doubles the batch size before every epoch after the first and sets momentum to 0.5."""

    def __init__(self, factor: int = 2):
        if factor < 1:
            raise ConfigError("method.options.factor", factor, "an integer >= 1")
        self.factor, self.calls = factor, 0

    def before_epoch(self, ctx, epoch):
        if epoch > 1:
            ctx.batches.batch_size *= self.factor
        for group in ctx.optimizer.param_groups:
            group["momentum"] = 0.5
        return {"hook_epoch": epoch}

    def after_epoch(self, ctx, epoch, metrics):
        self.calls += 1
        return {"hook_saw_val": metrics["val_acc"]}

    def finish(self, ctx):
        return {"hook_calls": self.calls}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, sd):
        self.calls = sd["calls"]


def test_a_training_method_sets_batch_size_and_momentum_and_its_metrics_are_logged():
    seen = []
    results = train(_cfg(method={"name": "test_double_batch"}), on_epoch=lambda e, m: seen.append(m))
    # batch 32, 64, 128 over 200 images: ceil gives 7, 4 and 2 batches
    assert [m["batch_size"] for m in seen] == [32, 64, 128]
    assert [m["batches"] for m in seen] == [7, 4, 2]
    assert [m["momentum"] for m in seen] == [0.5, 0.5, 0.5]
    assert [m["hook_epoch"] for m in seen] == [1, 2, 3]
    assert [m["hook_saw_val"] for m in seen] == [m["val_acc"] for m in seen]
    assert results["hook_calls"] == 3


def test_a_training_method_resumes_from_a_checkpoint_with_its_state_and_batch_size():
    cfg = _cfg(method={"name": "test_double_batch"})
    straight = train(cfg)
    first = Trainer(cfg)
    seen = []

    def stop_after_two(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt  # a trial killed after its epoch-2 checkpoint

    with pytest.raises(KeyboardInterrupt):
        first.run(on_epoch=stop_after_two)
    resumed = Trainer(cfg)
    resumed.load_state_dict(first.state_dict())
    results = resumed.run(on_epoch=lambda e, m: seen.append(m)).merged()
    assert [m["batch_size"] for m in seen] == [128]
    assert results["hook_calls"] == 3
    assert results["train_loss"] == straight["train_loss"]


def test_bad_method_name_and_option_fail_before_training():
    from harness.checks import check_config

    with pytest.raises(ConfigError, match="method.name.*one of.*none"):
        check_config(_cfg(method={"name": "no_such_method"}))
    with pytest.raises(ConfigError, match="method.options.speed.*factor"):
        check_config(_cfg(method={"name": "test_double_batch", "options": {"speed": 3}}))
    with pytest.raises(ConfigError, match="method.options.factor"):
        check_config(_cfg(method={"name": "test_double_batch", "options": {"factor": 0}}))
