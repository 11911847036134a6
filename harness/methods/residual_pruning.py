"""Çallı's pruning of the small CIFAR-10 model in training cycles (thesis Secs. 2.4.2 and 3.3.2), as an experiment.

``node_pruning_residual`` trains the separable residual ``calli_cifar`` (harness.models.calli), then,
once a cycle, chooses the nodes to keep with the autoencoder's criteria (harness.methods.node_pruning:
activation ``count`` or ``variance``, bound ``zero`` or ``outlier``) by the small models' rules
(harness.models.calli_rules: the residual stream pruned per group of directly connected blocks as
the union of what its tensors keep, each block's inner channels on their own, depthwise convolutions
following their input), removes the rest and trains again, until a cycle prunes nothing or
``train.epochs`` cycles have run. The thesis (Sec. 3.3.2): "we were unable to prune a significant
amount of nodes and recover the accuracy in the next training cycle".

A cycle trains ``epochs_per_cycle`` epochs with a fresh SGD (``train.lr``, ``momentum``,
``weight_decay``, ``nesterov``), the learning rate multiplied by ``train.lr_decay`` after the epochs
``cycle_milestones`` of the cycle (``train.milestones`` cannot say it: ``train.epochs`` counts cycles
here), so every cycle restarts at ``train.lr`` (the thesis names "high learning rates in the
beginning of every training cycle", Ch. 4). Data, augmentation and the model come from the
classification Trainer (harness.train) built for the same config. The statistics are taken on the
first ``stats_samples`` images of the validation hold-out, never on test.

Each cycle logs test_acc and val_acc (after the cycle's training, before its pruning), test_acc_pruned
(right after the pruning, before any retraining), first_test_acc (cycle 1's test_acc: the unpruned
model), pruned (nodes removed this cycle), nodes and nodes_frac (nodes kept, and as a fraction of the
initial ones; nodes are the residual stream's channels per group plus each block's inner channels),
params and macs (after the pruning), initial_params and initial_macs (the model as built), cycles and
converged (1.0 once a cycle pruned nothing).
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import EXPERIMENTS
from .base import Experiment, TrainMethod
from .node_pruning import BOUNDS, CRITERIA, KEEPS, Cycles


def _nodes(model) -> int:
    """Residual-stream channels (one count per stage: its blocks share them) plus each block's inner channels."""
    blocks = [block for stage in model.stages for block in stage]
    stream = sum(stage[-1].sep2[-1].out_channels for stage in model.stages)
    return stream + sum(block.sep1[-1].out_channels for block in blocks)


class ResidualCycles(Cycles):
    """A harness.runner.Runner: one step a training cycle of the separable residual model."""

    def __init__(self, cfg, threads, options: dict):
        from .. import measure
        from ..models.calli import CalliCifar
        from ..train import Trainer

        self.cfg, self.options, self.measure = cfg, options, measure
        self.trainer = Trainer(cfg, threads=threads, method=TrainMethod())  # data, augmentation, model, device
        if not isinstance(self.trainer.model, CalliCifar):
            raise ConfigError("model.name", cfg.model.name, "calli_cifar (the rules of Sec. 2.4.2 are that model's)")
        self.model = self.trainer.model
        self.initial_nodes = _nodes(self.model)
        self.profile = self.initial_profile = self.trainer.profile
        self.cycle, self.done, self.first_test_acc, self.epochs_done = 0, False, math.nan, 0

    def counts(self) -> dict:
        return {k: self.profile[k] for k in ("params", "macs", "flops")}

    def state_dict(self) -> dict:
        return {"model": copy.deepcopy(self.model).cpu(), "cycle": self.cycle, "done": self.done,
                "first_test_acc": self.first_test_acc, "epochs_done": self.epochs_done, "profile": self.profile,
                "initial_profile": self.initial_profile,
                "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, sd: dict) -> None:
        self.model = sd["model"].to(self.trainer.device)
        self.cycle, self.done, self.first_test_acc = sd["cycle"], sd["done"], sd["first_test_acc"]
        self.epochs_done, self.profile, self.initial_profile = sd["epochs_done"], sd["profile"], sd["initial_profile"]
        torch.set_rng_state(sd["torch_rng"])

    def saved_model(self) -> dict:
        return {"model": copy.deepcopy(self.model).cpu()}  # pruned shapes: the module itself, not a state_dict

    def accuracy(self, loader) -> float:
        from ..train import evaluate

        return evaluate(self.model, loader, self.trainer.device)[0]

    def train_cycle(self) -> float:
        t = self.cfg.train
        optimizer = torch.optim.SGD(self.model.parameters(), lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                                    weight_decay=t.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, self.options["cycle_milestones"], gamma=t.lr_decay)
        total = count = 0.0
        for _ in range(self.options["epochs_per_cycle"]):
            self.model.train()
            # the loader's epoch number seeds its order and crops: every epoch of every cycle differs
            for x, y in self.trainer.train_loader.epoch(self.epochs_done):
                loss = F.cross_entropy(self.model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(y)
                count += len(y)
            scheduler.step()
            self.epochs_done += 1
        return total / max(count, 1)

    def statistics_images(self) -> torch.Tensor:
        images, n = [], 0
        for x, _ in self.trainer.val_loader.epoch(0):
            images.append(x)
            n += len(x)
            if n >= self.options["stats_samples"]:
                break
        if not images:
            raise ConfigError("data.val_size", self.cfg.data.val_size, "a hold-out of at least one image "
                              "(the pruning statistics are taken on it)")
        return torch.cat(images)[:self.options["stats_samples"]]

    def run_cycle(self) -> dict:
        from ..models.calli_rules import prune_separable_residual, separable_residual_keep

        self.cycle += 1
        start = time.perf_counter()
        train_loss = self.train_cycle()
        if not math.isfinite(train_loss):
            raise RuntimeError(f"train loss is {train_loss} in cycle {self.cycle}")
        cycle_time_s = time.perf_counter() - start
        test_acc, val_acc = self.accuracy(self.trainer.test_loader), self.accuracy(self.trainer.val_loader)
        if self.cycle == 1:
            self.first_test_acc = test_acc
        before = _nodes(self.model)
        stream, inner = separable_residual_keep(self.model, self.statistics_images(), self.options["criterion"],
                                                self.options["bound"], self.options["keep"])
        kept = sum(len(s) for s in stream) + sum(len(i) for i in inner)
        pruned = before - kept
        if pruned:
            device = self.trainer.device
            self.model = prune_separable_residual(self.model, [s.to(device) for s in stream],
                                                  [i.to(device) for i in inner]).to(device)
            self.profile = self.measure.profile(copy.deepcopy(self.model).cpu(), self.trainer.input_shape)
        self.done = pruned == 0
        return {"train_loss": train_loss, "test_acc": test_acc, "val_acc": val_acc,
                "test_acc_pruned": self.accuracy(self.trainer.test_loader) if pruned else test_acc,
                "first_test_acc": self.first_test_acc, "pruned": pruned, "nodes": kept,
                "nodes_frac": kept / self.initial_nodes, "params": self.profile["params"],
                "macs": self.profile["macs"], "initial_params": self.initial_profile["params"],
                "initial_macs": self.initial_profile["macs"], "cycle_time_s": cycle_time_s, "cycles": self.cycle,
                "converged": float(self.done)}


@EXPERIMENTS.register("node_pruning_residual")
class ResidualPruning(Experiment):
    """Çallı Sec. 3.3.2: prune the separable residual CIFAR-10 model in training cycles (rules of Sec. 2.4.2).

    Options: criterion (variance | count), bound (outlier | zero), keep (inside | outside), epochs_per_cycle
    (training epochs before each pruning), cycle_milestones (epochs of a cycle after which the learning
    rate is multiplied by train.lr_decay), stats_samples (validation images the statistics are taken on).
    """

    def __init__(self, criterion: str = "variance", bound: str = "outlier", keep: str = "inside",
                 epochs_per_cycle: int = 1, cycle_milestones: list[int] = (), stats_samples: int = 1000):
        for key, value, valid in (("criterion", criterion, CRITERIA), ("bound", bound, BOUNDS), ("keep", keep, KEEPS)):
            if value not in valid:
                raise ConfigError(f"method.options.{key}", value, "one of " + ", ".join(valid))
        for key, value in (("epochs_per_cycle", epochs_per_cycle), ("stats_samples", stats_samples)):
            if value < 1:
                raise ConfigError(f"method.options.{key}", value, "an integer >= 1")
        milestones = list(cycle_milestones)
        if not (milestones == sorted(milestones) and all(0 < m <= epochs_per_cycle for m in milestones)):
            raise ConfigError("method.options.cycle_milestones", milestones,
                              f"increasing epochs in [1, epochs_per_cycle = {epochs_per_cycle}]")
        self.options = dict(criterion=criterion, bound=bound, keep=keep, epochs_per_cycle=epochs_per_cycle,
                            cycle_milestones=milestones, stats_samples=stats_samples)

    def runner(self, cfg, threads=None) -> ResidualCycles:
        return ResidualCycles(cfg, threads, self.options)
