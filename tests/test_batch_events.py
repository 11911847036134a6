"""Batch events of training methods (harness.methods.base): order and arguments, chains, a loss term,
clipping, a batch transform, owners refused, and the logged lr under a per-iteration schedule."""
import pytest
import torch

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.methods.base import EVENTS, TrainMethod, build_method
from harness.methods.chain import Chain
from harness.owners import check_owners
from harness.train import Trainer

BASE = {"data": {"dataset": "digits", "train_subset": 64, "test_subset": 32, "val_size": 32},
        "model": {"name": "digits_cnn"},
        "train": {"epochs": 2, "batch_size": 32, "milestones": [1], "threads": 1, "weight_decay": 0.0}}


def _cfg(**over):
    d = {k: dict(v) for k, v in BASE.items()}
    for section, values in over.items():
        d.setdefault(section, {}).update(values)
    return RunConfig.from_dict(d)


class Recorder(TrainMethod):
    """Every event, with what it was given."""

    def __init__(self, log=None, tag="r"):
        self.log, self.tag = ([] if log is None else log), tag

    def before_epoch(self, ctx, epoch):
        self.log.append((self.tag, "before_epoch", epoch))
        return {}

    def before_batch(self, ctx, x, y):
        self.log.append((self.tag, "before_batch", ctx.epoch, ctx.batch_index, ctx.num_batches, tuple(x.shape), len(y)))
        return x, y

    def loss(self, ctx, x, y, logits, loss):
        self.log.append((self.tag, "loss", ctx.batch_index, tuple(logits.shape), loss.dim(), loss.requires_grad))
        return loss

    def after_backward(self, ctx):
        grads = all(p.grad is not None for p in ctx.model.parameters())
        self.log.append((self.tag, "after_backward", ctx.batch_index, grads, ctx.optimizer.param_groups[0]["lr"]))

    def after_step(self, ctx):
        self.log.append((self.tag, "after_step", ctx.batch_index))

    def before_eval(self, ctx, epoch):
        self.log.append((self.tag, "before_eval", epoch))
        return {"recorded": 1.0}

    def after_epoch(self, ctx, epoch, metrics):
        self.log.append((self.tag, "after_epoch", epoch, metrics["recorded"]))
        return {}


def test_each_event_in_order_with_its_arguments():
    method = Recorder()
    Trainer(_cfg(), threads=1, method=method).run()
    names = [entry[1] for entry in method.log]
    per_batch = ["before_batch", "loss", "after_backward", "after_step"]
    # 64 training images, batch 32: 2 batches an epoch
    epoch = ["before_epoch", *per_batch, *per_batch, "before_eval", "after_epoch"]
    assert names == epoch * 2
    batches = [e for e in method.log if e[1] == "before_batch"]
    assert [e[2:] for e in batches] == [(1, 0, 2, (32, 1, 8, 8), 32), (1, 1, 2, (32, 1, 8, 8), 32),
                                        (2, 0, 2, (32, 1, 8, 8), 32), (2, 1, 2, (32, 1, 8, 8), 32)]
    assert all(e[3:] == ((32, 10), 0, True) for e in method.log if e[1] == "loss")
    assert all(e[3] for e in method.log if e[1] == "after_backward")  # gradients present before the step
    assert [e[3] for e in method.log if e[1] == "after_epoch"] == [1.0, 1.0]  # before_eval's dict is logged


def test_only_overridden_events_are_called():
    trainer = Trainer(_cfg(), threads=1)
    assert all(trainer.events[e] == [] for e in EVENTS)  # plain training: no event, no part
    trainer = Trainer(_cfg(train={"schedule": "cosine_iter"}), threads=1)
    assert [h.__self__.__class__.__name__ for h in trainer.events["before_batch"]] == ["IterationLR"]


def test_chain_calls_members_events_in_order():
    log = []
    chain = Chain(none={})
    chain.methods = {"a": Recorder(log, "a"), "b": TrainMethod(), "c": Recorder(log, "c")}
    assert [h.__self__ for h in chain.handlers("loss")] == [chain.methods["a"], chain.methods["c"]]
    Trainer(_cfg(train={"epochs": 1}), threads=1, method=chain).run()
    order = [(tag, name) for tag, name, *_ in log]
    first_batch = [(tag, name) for name in ("before_epoch", "before_batch", "loss", "after_backward", "after_step")
                   for tag in "ac"]
    assert order[:10] == first_batch
    # called directly, a chain threads each member's result into the next
    x, y = torch.ones(2), torch.zeros(2)

    class Double(TrainMethod):
        def before_batch(self, ctx, x, y):
            return 2 * x, y

        def loss(self, ctx, x, y, logits, loss):
            return loss + 1

    chain.methods = {"d1": Double(), "d2": Double()}
    assert torch.equal(chain.before_batch(None, x, y)[0], 4 * x)
    assert chain.loss(None, x, y, None, torch.tensor(0.0)) == 2


class Grads(TrainMethod):
    """The final layer's weight and gradient at the first batch; ``penalty`` adds penalty * sum(w^2) to the loss."""

    def __init__(self, penalty=0.0):
        self.penalty, self.seen = penalty, {}

    def loss(self, ctx, x, y, logits, loss):
        if self.penalty:
            return loss + self.penalty * (self.weight(ctx) ** 2).sum()
        return loss

    @staticmethod
    def weight(ctx):
        return [p for p in ctx.model.parameters() if p.dim() == 2][-1]

    def after_backward(self, ctx):
        if ctx.epoch == 1 and ctx.batch_index == 0:
            w = self.weight(ctx)
            self.seen = {"w": w.detach().clone(), "grad": w.grad.detach().clone()}


def test_a_loss_term_changes_the_gradient_as_hand_computed():
    plain, penalised = Grads(), Grads(penalty=0.5)
    logged = {}
    for method in (plain, penalised):
        Trainer(_cfg(train={"epochs": 1}), threads=1, method=method).run(
            lambda e, m, method=method: logged.setdefault(id(method), m["train_loss"]))
    assert torch.equal(plain.seen["w"], penalised.seen["w"])  # same seed: the same first batch and weights
    # d/dw (0.5 * sum(w^2)) = w
    torch.testing.assert_close(penalised.seen["grad"] - plain.seen["grad"], plain.seen["w"], rtol=1e-5, atol=1e-6)
    assert logged[id(penalised)] > logged[id(plain)]  # the logged train_loss is the one back-propagated


class Clip(TrainMethod):
    """Clip the gradient norm to ``limit`` after backward; record each step's weight change."""

    def __init__(self, limit):
        self.limit, self.before, self.moves = limit, None, []

    def after_backward(self, ctx):
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), self.limit)
        self.before = [p.detach().clone() for p in ctx.model.parameters()]
        self.lr = ctx.optimizer.param_groups[0]["lr"]

    def after_step(self, ctx):
        step = torch.cat([(b - p.detach()).flatten() for b, p in zip(self.before, ctx.model.parameters())])
        self.moves.append(float(step.norm()) / self.lr)


def test_after_backward_clipping_is_applied_before_the_step():
    method = Clip(1e-3)
    Trainer(_cfg(train={"epochs": 1, "momentum": 0.0}), threads=1, method=method).run()
    # plain SGD without momentum or weight decay: the step is lr x the clipped gradient, of norm 1e-3
    assert method.moves == pytest.approx([1e-3] * 2, rel=1e-4)


def test_before_batch_transform_reaches_the_model():
    class Blank(TrainMethod):
        def before_batch(self, ctx, x, y):
            return torch.zeros_like(x), y

    trainer = Trainer(_cfg(train={"epochs": 1}), threads=1, method=Blank())
    inputs = []
    hook = trainer.model.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone())
                                                   if m.training else None)
    trainer.run()
    hook.remove()
    assert len(inputs) == 2 and all(torch.count_nonzero(x) == 0 for x in inputs)


def test_dbs_with_cosine_iter_is_refused_naming_both():
    cfg = _cfg(train={"schedule": "cosine_iter"}, method={"name": "dbs"})
    with pytest.raises(ConfigError) as err:
        check_owners(cfg, build_method("dbs", {}))
    assert err.value.key == "train.schedule" and "cosine_iter" in str(err.value) and "dbs" in str(err.value)
    with pytest.raises(ConfigError, match="dbs"):
        Trainer(cfg, threads=1)
    check_owners(_cfg(train={"schedule": "cosine"}, method={"name": "dbs"}), build_method("dbs", {}))  # per epoch: fine
    check_owners(_cfg(train={"schedule": "cosine_iter"}, method={"name": "prune"}), build_method("prune", {}))


def test_two_lr_owners_in_a_chain_are_refused_naming_both():
    with pytest.raises(ConfigError) as err:
        build_method("chain", {"dbs": {}, "warmup_plateau": {}})
    assert err.value.key == "method.options" and "dbs" in str(err.value) and "warmup_plateau" in str(err.value)
    assert "lr" in err.value.valid
    build_method("chain", {"prune": {}, "dbs": {}})  # masks and lr/momentum/batch: one owner each
    cfg = _cfg(train={"schedule": "cosine_iter"}, method={"name": "chain", "options": {"prune": {}, "dbs": {}}})
    with pytest.raises(ConfigError, match="method dbs"):
        check_owners(cfg, build_method("chain", {"prune": {}, "dbs": {}}))


def test_logged_lr_is_the_lr_of_the_last_step_under_cosine_iter():
    class LastLR(TrainMethod):
        def __init__(self):
            self.used = {}

        def after_step(self, ctx):
            self.used.setdefault(ctx.epoch, []).append(ctx.optimizer.param_groups[0]["lr"])

    method, logged = LastLR(), {}
    Trainer(_cfg(train={"schedule": "cosine_iter"}), threads=1, method=method).run(
        lambda e, m: logged.__setitem__(e, m["lr"]))
    assert logged == {e: lrs[-1] for e, lrs in method.used.items()}
    assert all(lrs[0] > lrs[-1] for lrs in method.used.values())  # the lr moved within each epoch
