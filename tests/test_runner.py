"""harness.runner: the Trainer and an experiment are Runners; checkpoints continue a run exactly; methods see
a MethodContext; declared model hooks (OwnLoss, FitsOnValidation) are used; the method is built once per trial."""
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import RunConfig
from harness.methods import node_pruning
from harness.methods.base import MethodContext, TrainMethod
from harness.models.base import FitsOnValidation, OwnLoss
from harness.registry import METHODS, MODELS
from harness.runner import COUNT_KEYS, FINAL_METRICS, Result, Runner
from harness.train import Trainer, build_runner, train

BASE = {"data": {"dataset": "digits", "train_subset": 96, "test_subset": 48, "val_size": 32},
        "model": {"name": "digits_cnn"}, "train": {"epochs": 2, "batch_size": 32, "threads": 1, "device": "cpu"}}
SUMMATION = {"data": {"dataset": "digits"},
             "method": {"name": "node_pruning_summation",
                        "options": {"hidden": 16, "samples": 400, "test_samples": 100, "criterion": "count",
                                    "bound": "zero", "distortion": 0.05, "stats_samples": 200}},
             "train": {"epochs": 2, "batch_size": 50, "lr": 0.01, "momentum": 0.9, "threads": 1, "device": "cpu"}}


def _cfg(base=BASE, **over) -> RunConfig:
    d = {k: dict(v) for k, v in base.items()}
    for section, values in over.items():
        d[section] = {**d.get(section, {}), **values}
    return RunConfig.from_dict(d)


class _Stop(Exception):
    """Raised from on_epoch after the first epoch: a trial killed after its checkpoint."""


def _interrupted_then_resumed(cfg: RunConfig):
    """The runner of a run stopped after epoch 1 (its state saved as a trial saves it), and the
    fresh runner that loaded that state and ran the rest."""
    first = build_runner(cfg)
    saved = {}

    def stop(epoch, metrics):
        saved["state"] = first.state_dict()
        raise _Stop

    with pytest.raises(_Stop):
        first.run(stop)
    resumed = build_runner(cfg)
    resumed.load_state_dict(saved["state"])
    seen = []
    result = resumed.run(lambda epoch, metrics: seen.append(epoch))
    return resumed, result, seen


def _weights(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_the_trainer_is_a_runner_and_its_result_names_the_final_metrics():
    runner = build_runner(_cfg())
    assert isinstance(runner, Trainer) and isinstance(runner, Runner)
    seen = []
    result = runner.run(lambda epoch, metrics: seen.append((epoch, metrics)))
    assert isinstance(result, Result)
    assert [e for e, _ in seen] == [1, 2] and result.metrics is seen[-1][1]
    assert set(result.final) == set(FINAL_METRICS)  # the method `none` adds nothing of its own
    assert result.final["best_epoch"] in (1, 2)
    assert result.final["best_val_acc"] == max(m["val_acc"] for _, m in seen)
    assert runner.counts() == {k: result.final[k] for k in COUNT_KEYS}
    assert result.final["params"] == sum(p.numel() for p in runner.model.parameters())
    assert result.final["predicted_time_ratio"] == 1.0
    merged = result.merged()
    assert merged["train_loss"] == seen[-1][1]["train_loss"] and merged["macs"] == result.final["macs"]
    saved = runner.saved_model()
    assert saved["name"] == "digits_cnn" and saved["state_dict"].keys() == runner.model.state_dict().keys()


def test_an_experiment_is_a_runner_and_its_final_numbers_are_its_counts():
    runner = build_runner(_cfg(SUMMATION))
    assert isinstance(runner, node_pruning.PruningCycles) and isinstance(runner, Runner)
    # 2 -> 16 -> 1: (2 x 16 + 16) + (16 + 1) params, 2 x 16 + 16 MACs
    assert runner.counts() == {"params": 65, "macs": 48, "flops": 96}
    steps = []
    result = runner.run(lambda step, metrics: steps.append((step, metrics)))
    assert isinstance(result, Result) and result.metrics is steps[-1][1]
    assert result.final == runner.counts() and set(result.final) <= set(COUNT_KEYS)
    width = result.metrics["nodes_1"]
    assert result.final["params"] == 4 * width + 1 and result.final["macs"] == 3 * width


def test_a_trainer_checkpoint_continues_training_identically():
    straight = build_runner(_cfg())
    straight_result = straight.run()
    resumed, result, seen = _interrupted_then_resumed(_cfg())
    assert seen == [2]  # only the epoch after the checkpoint ran again
    expected = _weights(straight.model)
    got = _weights(resumed.model)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert result.metrics["train_loss"] == straight_result.metrics["train_loss"]
    assert result.final == straight_result.final


def test_an_experiment_checkpoint_continues_the_cycles_identically():
    straight = build_runner(_cfg(SUMMATION))
    straight_steps = []
    straight_result = straight.run(lambda step, metrics: straight_steps.append(step))
    assert straight_steps == [1, 2]  # cycle 1 prunes the nodes dead on x >= 0, so a second cycle runs
    resumed, result, seen = _interrupted_then_resumed(_cfg(SUMMATION))
    assert seen == [2]
    assert resumed.chain.widths() == straight.chain.widths()
    expected, got = _weights(straight.chain), _weights(resumed.chain)
    assert all(torch.equal(expected[k], got[k]) for k in expected)  # the distortion's RNG draws came back too
    assert result.metrics["test_rmse"] == straight_result.metrics["test_rmse"]
    assert result.final == straight_result.final


@METHODS.register("test_records_context")
class _RecordsContext(TrainMethod):
    """Records what every hook is given."""

    def __init__(self):
        self.calls = []

    def setup(self, ctx):
        self.calls.append(("setup", ctx))

    def before_epoch(self, ctx, epoch):
        self.calls.append(("before_epoch", ctx, epoch))
        ctx.batches.batch_size = 16 * epoch  # the batch-size control reaches the train loader
        return {}

    def after_epoch(self, ctx, epoch, metrics):
        self.calls.append(("after_epoch", ctx, epoch, dict(metrics)))
        return {"seen_samples": ctx.batches.num_samples}

    def finish(self, ctx):
        self.calls.append(("finish", ctx))
        return {"hooks_called": len(self.calls)}


def test_a_method_sees_only_the_method_context():
    runner = build_runner(_cfg(method={"name": "test_records_context"}))
    seen = []
    result = runner.run(lambda epoch, metrics: seen.append(metrics))
    calls = runner.method.calls
    assert [c[0] for c in calls] == ["setup", "before_epoch", "after_epoch", "before_epoch", "after_epoch", "finish"]
    contexts = {id(c[1]) for c in calls}
    assert len(contexts) == 1  # one context for the whole run
    ctx = calls[0][1]
    assert type(ctx) is MethodContext and not isinstance(ctx, Trainer)
    assert ctx.model is runner.model and ctx.optimizer is runner.optimizer and ctx.cfg is runner.cfg
    assert ctx.counts["macs"] == result.final["macs"] and ctx.device == torch.device("cpu")
    assert ctx.input_shape == (1, 8, 8) and ctx.num_classes == 10 and ctx.ratios == [1.0, 1.0]
    assert ctx.val_loader.num_samples == 32 and ctx.test_loader.num_samples == 48
    assert ctx.batches.num_samples == 96
    assert [m["batch_size"] for m in seen] == [16, 32]  # set in before_epoch, used by the epoch
    assert [m["batches"] for m in seen] == [6, 3]
    assert [c[2] for c in calls if c[0] == "before_epoch"] == [1, 2]
    assert [c[3]["val_acc"] for c in calls if c[0] == "after_epoch"] == [m["val_acc"] for m in seen]
    assert all(m["seen_samples"] == 96 for m in seen)
    assert result.final["hooks_called"] == 6


class _DeclaredHooks(OwnLoss, FitsOnValidation, nn.Module):
    """A linear classifier whose training loss is cross-entropy + 100 (same gradient, a visible value)
    and which counts its fits on the validation split."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int):
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)
        self.fits = []

    def forward(self, x):
        return self.fc(x.flatten(1))

    def forward_train(self, x, y):
        logits = self(x)
        return logits, F.cross_entropy(logits, y) + 100.0

    def fit_on_validation(self, val_loader):
        self.fits.append(val_loader.num_samples)
        return {"fits": len(self.fits)}


@MODELS.register("test_declared_hooks", family="test")
def _declared_hooks(num_classes: int = 10, in_channels: int = 1, image_size: int = 8) -> _DeclaredHooks:
    """A test model that declares its own loss and a fit on validation."""
    return _DeclaredHooks(num_classes, in_channels, image_size)


def test_a_model_declaring_its_own_loss_and_a_validation_fit_has_them_used():
    runner = build_runner(_cfg(model={"name": "test_declared_hooks"}))
    seen = []
    runner.run(lambda epoch, metrics: seen.append(metrics))
    assert all(100.0 < m["train_loss"] < 100.0 + 5 * 2.31 for m in seen)  # CE of 10 classes, starting at ~ln 10
    assert runner.model.fits == [32, 32] and [m["fits"] for m in seen] == [1, 2]  # before each evaluation
    plain = build_runner(_cfg(model={"name": "digits_cnn"}))
    assert not isinstance(plain.model, (OwnLoss, FitsOnValidation))
    assert all(m["train_loss"] < 100.0 for m in [plain.train_epoch(1)])


_BUILT = []


@METHODS.register("test_counts_builds")
class _CountsBuilds(TrainMethod):
    def __init__(self):
        _BUILT.append(self)


def test_build_runner_builds_the_method_once(monkeypatch):
    cfg = _cfg(method={"name": "test_counts_builds"})  # config validation may build its own copy
    _BUILT.clear()
    runner = build_runner(cfg)
    runner.run()
    assert len(_BUILT) == 1 and runner.method is _BUILT[0]

    built = []
    original = node_pruning.SummationPruning.__init__

    @functools.wraps(original)  # the option check reads the signature
    def counted(self, *args, **options):
        built.append(self)
        original(self, *args, **options)

    monkeypatch.setattr(node_pruning.SummationPruning, "__init__", counted)
    build_runner(_cfg(SUMMATION)).run()
    assert len(built) == 1


def test_train_returns_the_merged_dict():
    results = train(_cfg(), on_epoch=None)
    assert set(FINAL_METRICS) <= set(results) and {"train_loss", "val_acc", "test_acc"} <= set(results)
