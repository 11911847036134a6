"""Çallı's node pruning in training cycles (thesis Secs. 2.1.2-2.1.3, 3.1; Figure 2.3), as experiments.

A network here is a ``Chain``: stages run in order, each a weight layer (Linear, Conv2d or
ConvTranspose2d), optionally batch normalization, and an activation. The nodes of a hidden stage
are its layer's outputs (channels for convolutions). A training cycle trains the chain, collects
per-node statistics of the hidden stages' outputs on a statistics set, and physically removes
the nodes the criterion rejects: the layer's output rows, its bias, the BN entries and the next
layer's input columns go, so params and MACs drop. Cycles repeat until a cycle prunes nothing
(or ``train.epochs`` cycles have run).

Criteria (``criterion``), per node over every sample and spatial position:
  count     how often the node is active (output > 0), as a fraction
  variance  the variance of the node's output
Bounds (``bound``):
  zero      prune nodes whose statistic is 0: never active / constant. The thesis's setting for
            the summation experiment ("a fixed threshold of 0", Sec. 3.1.1).
  outlier   keep nodes inside mean(v) - 2 var(v) < v < mean(v) + 2 var(v) of the layer's
            statistics v (Sec. 3.1.2, the autoencoder's best setting). The thesis's sentence says
            "removing the nodes that are not outside these boundaries"; we follow the reading the
            project chose (keep the inside, prune the outliers) and offer ``keep: outside`` for the
            literal one.
A layer always keeps at least one node (its largest statistic). Between cycles ``distortion``
adds Gaussian noise of that fraction of each remaining weight tensor's standard deviation (the
thesis names "distortions" without defining them; this is our reading). ``regularization`` adds
``reg_lambda`` x sum |w| (l1) or sum w^2 (l2) over the layers' weights to the RMSE loss.

Experiments (``method.name``; ``train.epochs`` is the maximum number of cycles, ``train.lr``,
``momentum``, ``weight_decay``, ``batch_size`` and ``seed`` are the optimizer's and the data's, a fresh
SGD per cycle; the sweeps set weight_decay 0 and regularize through ``regularization``):
  node_pruning_summation    2 -> 1000 -> 1 with ReLU, y = x1 + x2, RMSE (Sec. 2.1.3: momentum 0.01 /
                            0.9, 1,000,000 samples, batch 1000); inputs uniform in [0, 1) (the thesis
                            does not give its generator's parameters; with non-negative inputs one
                            hidden node with weights 1 and bias 0 is exact). Generates its own data:
                            ``data.dataset`` is not read (the sweep names digits, always present).
  node_pruning_autoencoder  conv 3x3 s2 (1 -> 32) BN ReLU, conv 3x3 s2 (32 -> 64) BN ReLU, deconv 3x3 s2
                            (64 -> 32) BN ReLU, deconv 3x3 s2 (32 -> 1) BN tanh; RMSE against the input
                            scaled to [-1, 1] (Sec. 2.1.3) on ``data.dataset``: MNIST in the thesis,
                            Fashion-MNIST here where MNIST is absent.
Each cycle logs train_rmse, test_rmse, nodes_1 ... (widths after the cycle's pruning), pruned,
params, macs, cycles, converged (1.0 once a cycle pruned nothing) and, for the summation, one_node
(1.0 when the hidden layer reached a single node); the last cycle's values are the run's result.

The network and its surgery (``Chain``, ``prune_nodes``) are harness.layers.surgery's; the small
models' rules (Sec. 2.4.2) for the separable residual ``calli_cifar`` are in harness.models.calli_rules.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..layers.surgery import Chain, prune_nodes
from ..registry import EXPERIMENTS
from ..runner import Result, prepare
from .base import Experiment

CRITERIA = ("count", "variance")
BOUNDS = ("zero", "outlier")
KEEPS = ("inside", "outside")
REGULARIZATIONS = ("none", "l1", "l2")


# ---- the criteria ---------------------------------------------------------------------------------

@torch.no_grad()
def node_statistics(chain: Chain, inputs: torch.Tensor, criterion: str, batch_size: int = 1000) -> list[torch.Tensor]:
    """Per hidden stage, one value per node: active fraction (count) or output variance (variance)."""
    chain.eval()
    sums = sq = active = None
    n = 0
    for start in range(0, len(inputs), batch_size):
        record: list = []
        chain(inputs[start:start + batch_size], record)
        outs = [r.transpose(0, 1).reshape(r.shape[1], -1).double() for r in record[:-1]]  # (nodes, values)
        if sums is None:
            sums = [torch.zeros(o.shape[0], dtype=torch.float64) for o in outs]
            sq = [torch.zeros_like(s) for s in sums]
            active = [torch.zeros_like(s) for s in sums]
        for k, o in enumerate(outs):
            sums[k] += o.sum(1).cpu()
            sq[k] += (o * o).sum(1).cpu()
            active[k] += (o > 0).sum(1).double().cpu()
        n += outs[0].shape[1] if outs else 0
    if criterion == "count":
        return [a / n for a in active]
    return [(q / n - (s / n) ** 2).clamp_min(0.0) for s, q in zip(sums, sq)]


def select(values: torch.Tensor, bound: str, keep: str = "inside") -> torch.Tensor:
    """Sorted indices of the nodes to keep (at least one: the largest statistic)."""
    if bound == "zero":
        kept = values > 0
    else:
        mean, var = values.mean(), values.var(unbiased=False)
        inside = (values > mean - 2 * var) & (values < mean + 2 * var)
        kept = inside if keep == "inside" else ~inside
    if not kept.any():
        kept = torch.zeros_like(kept)
        kept[values.argmax()] = True
    return kept.nonzero().flatten()


# ---- cycles ----------------------------------------------------------------------------------------

def _check_options(criterion, bound, keep, distortion, regularization, reg_lambda, epochs_per_cycle, stats_samples):
    """Values only: each option's type is _NodePruning's annotation, checked by build_method."""
    def bad(key, value, valid):
        raise ConfigError(f"method.options.{key}", value, valid)

    if criterion not in CRITERIA:
        bad("criterion", criterion, "one of " + ", ".join(CRITERIA))
    if bound not in BOUNDS:
        bad("bound", bound, "one of " + ", ".join(BOUNDS))
    if keep not in KEEPS:
        bad("keep", keep, "one of " + ", ".join(KEEPS))
    if regularization not in REGULARIZATIONS:
        bad("regularization", regularization, "one of " + ", ".join(REGULARIZATIONS))
    for key, value in (("distortion", distortion), ("reg_lambda", reg_lambda)):
        if value < 0:
            bad(key, value, "a finite number >= 0")
    for key, value in (("epochs_per_cycle", epochs_per_cycle), ("stats_samples", stats_samples)):
        if value < 1:
            bad(key, value, "an integer >= 1")


class Cycles:
    """``run`` of a harness.runner.Runner whose epochs are training cycles: ``run_cycle`` until it converges
    (``done``) or ``train.epochs`` cycles have run, one MLflow step a cycle; the last cycle's metrics hold
    the final state. Node pruning's two chains and the separable residual model share it."""

    def run(self, on_epoch=None) -> Result:
        metrics: dict = {}
        while not self.done and self.cycle < self.cfg.train.epochs:
            metrics = self.run_cycle()
            if on_epoch is not None:
                on_epoch(self.cycle, metrics)
        return Result(metrics=metrics, final=self.counts())


class PruningCycles(Cycles):
    """Runs the training cycles of one chain on (inputs, targets): a harness.runner.Runner, one step a cycle."""

    def __init__(self, cfg, threads, make_chain: Callable[[list[int]], Chain], widths: list[int], data,
                 input_shape: tuple, options: dict, extra: Callable[[Chain], dict] = lambda chain: {}):
        self.cfg, self.options, self.extra = cfg, options, extra
        self.device = prepare(cfg, threads)  # the Trainer's set-up: device, threads, seeds
        self.make_chain, self.input_shape = make_chain, input_shape
        self.train_x, self.train_y, self.test_x, self.test_y = (d.to(self.device) for d in data)
        self.chain = make_chain(widths).to(self.device)
        self.initial_widths = list(widths)
        self.cycle = 0
        self.done = False
        self.profile = self.measure()

    def counts(self) -> dict:
        """params, macs and flops (= 2 x macs) of the chain as it is now (after the cycles' pruning)."""
        return {"params": self.profile["params"], "macs": self.profile["macs"], "flops": 2 * self.profile["macs"]}

    def measure(self) -> dict:
        from .. import measure

        if len(self.input_shape) == 3:
            return measure.profile(copy.deepcopy(self.chain).cpu(), self.input_shape)
        # a chain of linear layers on a vector: MACs = sum of in x out (measure.profile takes images)
        linears = [stage[0] for stage in self.chain.stages]
        return {"params": measure.count_params(self.chain), "macs": sum(l.in_features * l.out_features for l in linears)}

    def state_dict(self) -> dict:
        return {"widths": self.chain.widths(), "chain": self.chain.state_dict(), "cycle": self.cycle, "done": self.done,
                "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, sd: dict) -> None:
        self.chain = self.make_chain(list(sd["widths"])).to(self.device)
        self.chain.load_state_dict(sd["chain"])
        self.cycle, self.done = sd["cycle"], sd["done"]
        torch.set_rng_state(sd["torch_rng"])

    def saved_model(self) -> dict:
        return {"widths": self.chain.widths(),
                "state_dict": {k: v.detach().cpu() for k, v in self.chain.state_dict().items()}}

    # the cycles
    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rmse = torch.sqrt(F.mse_loss(pred, target))
        reg, lam = self.options["regularization"], self.options["reg_lambda"]
        if reg == "none" or lam == 0:
            return rmse
        weights = [stage[0].weight for stage in self.chain.stages]
        penalty = sum(w.abs().sum() for w in weights) if reg == "l1" else sum((w * w).sum() for w in weights)
        return rmse + lam * penalty

    @torch.no_grad()
    def rmse(self, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
        self.chain.eval()
        se = sum(float(((self.chain(x[i:i + batch]) - y[i:i + batch]) ** 2).sum()) for i in range(0, len(x), batch))
        return math.sqrt(se / y.numel())

    @torch.no_grad()
    def distort(self) -> None:
        for stage in self.chain.stages:
            w = stage[0].weight
            # a layer pruned down to one weight has no spread to scale the noise by (its sample std is
            # NaN, which would end the cycles as diverged): it is left undistorted
            spread = w.std() if w.numel() > 1 else w.new_zeros(())
            w.add_(torch.randn_like(w) * self.options["distortion"] * spread)

    def train_cycle(self) -> float:
        t = self.cfg.train
        optimizer = torch.optim.SGD(self.chain.parameters(), lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                                    weight_decay=t.weight_decay)
        generator = torch.Generator().manual_seed(t.seed * 100_003 + self.cycle)
        total = count = 0.0
        for _ in range(self.options["epochs_per_cycle"]):
            self.chain.train()
            order = torch.randperm(len(self.train_x), generator=generator).to(self.device)
            for start in range(0, len(order), t.batch_size):
                idx = order[start:start + t.batch_size]
                loss = self.loss(self.chain(self.train_x[idx]), self.train_y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
        return total / max(count, 1)

    def run_cycle(self) -> dict:
        self.cycle += 1
        if self.cycle > 1 and self.options["distortion"] > 0:
            self.distort()
        start = time.perf_counter()
        train_loss = self.train_cycle()
        if not math.isfinite(train_loss):
            raise RuntimeError(f"train loss is {train_loss} in cycle {self.cycle}")
        cycle_time_s = time.perf_counter() - start
        test_rmse_before = self.rmse(self.test_x, self.test_y)
        stats_x = self.train_x[:self.options["stats_samples"]]
        stats = node_statistics(self.chain, stats_x, self.options["criterion"])
        keep = {i: select(v, self.options["bound"], self.options["keep"]).to(self.device) for i, v in enumerate(stats)}
        before = self.chain.widths()
        pruned = sum(w - len(keep[i]) for i, w in enumerate(before))
        if pruned:
            self.chain = prune_nodes(self.chain, keep).to(self.device)
        self.profile = self.measure()
        self.done = pruned == 0
        return {"train_loss": train_loss, "test_rmse_before_pruning": test_rmse_before,
                "train_rmse": self.rmse(self.train_x[:self.options["stats_samples"]],
                                        self.train_y[:self.options["stats_samples"]]),
                "test_rmse": self.rmse(self.test_x, self.test_y), "pruned": pruned,
                **{f"nodes_{i + 1}": w for i, w in enumerate(self.chain.widths())},
                "params": self.profile["params"], "macs": self.profile["macs"], "cycle_time_s": cycle_time_s,
                "cycles": self.cycle, "converged": float(self.done), **self.extra(self.chain)}



class _NodePruning(Experiment):
    def __init__(self, criterion: str = "variance", bound: str = "zero", keep: str = "inside", distortion: float = 0.0,
                 regularization: str = "none", reg_lambda: float = 0.0, epochs_per_cycle: int = 1,
                 stats_samples: int = 10_000):
        _check_options(criterion, bound, keep, distortion, regularization, reg_lambda, epochs_per_cycle, stats_samples)
        self.options = dict(criterion=criterion, bound=bound, keep=keep, distortion=float(distortion),
                            regularization=regularization, reg_lambda=float(reg_lambda),
                            epochs_per_cycle=epochs_per_cycle, stats_samples=stats_samples)


# ---- the summation experiment -----------------------------------------------------------------------

def summation_chain(widths: list[int]) -> Chain:
    (hidden,) = widths
    return Chain([nn.Sequential(nn.Linear(2, hidden), nn.ReLU()), nn.Sequential(nn.Linear(hidden, 1))])


# x1, x2 are generated from the trial's seed (data.dataset is never read) into a network of its own
@EXPERIMENTS.register("node_pruning_summation", uses_dataset=False, builds_model=False)
class SummationPruning(_NodePruning):
    """Çallı Sec. 2.1.3: prune 2 -> hidden -> 1 predicting x1 + x2 until a cycle prunes nothing.

    Options: criterion, bound, keep, distortion, regularization, reg_lambda, epochs_per_cycle,
    stats_samples (see the module doc), hidden (1000), samples (1,000,000 training samples),
    test_samples (10,000).
    """

    def __init__(self, hidden: int = 1000, samples: int = 1_000_000, test_samples: int = 10_000, **options):
        super().__init__(**options)
        for key, value in (("hidden", hidden), ("samples", samples), ("test_samples", test_samples)):
            if value < 1:
                raise ConfigError(f"method.options.{key}", value, "an integer >= 1")
        self.hidden, self.samples, self.test_samples = hidden, samples, test_samples

    def runner(self, cfg, threads=None) -> PruningCycles:
        generator = torch.Generator().manual_seed(cfg.train.seed)
        x = torch.rand(self.samples + self.test_samples, 2, generator=generator)
        y = x.sum(1, keepdim=True)
        data = (x[:self.samples], y[:self.samples], x[self.samples:], y[self.samples:])
        return PruningCycles(cfg, threads, summation_chain, [self.hidden], data, (2,), self.options,
                             extra=lambda chain: {"one_node": float(chain.widths() == [1])})


# ---- the convolutional autoencoder ----------------------------------------------------------------

def autoencoder_chain(widths: list[int], in_channels: int = 1) -> Chain:
    c1, c2, c3 = widths

    def deconv(i, o):  # doubles the side: (H - 1) * 2 - 2 + 3 + 1 = 2H
        return nn.ConvTranspose2d(i, o, 3, stride=2, padding=1, output_padding=1)

    return Chain([
        nn.Sequential(nn.Conv2d(in_channels, c1, 3, stride=2, padding=1), nn.BatchNorm2d(c1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU()),
        nn.Sequential(deconv(c2, c3), nn.BatchNorm2d(c3), nn.ReLU()),
        nn.Sequential(deconv(c3, in_channels), nn.BatchNorm2d(in_channels), nn.Tanh()),
    ])


@EXPERIMENTS.register("node_pruning_autoencoder", builds_model=False)  # reads data.dataset, builds its own network
class AutoencoderPruning(_NodePruning):
    """Çallı Sec. 2.1.3: prune the 1-32-64-32-1 convolutional autoencoder's hidden channels in cycles.

    Options: criterion, bound, keep, distortion, regularization, reg_lambda, epochs_per_cycle,
    stats_samples (see the module doc), widths ([32, 64, 32]). Data: ``data.dataset``'s training
    split (``data.train_subset``) and its test split (``data.test_subset``), scaled to [-1, 1].
    """

    def __init__(self, widths: list[int] = (32, 64, 32), **options):
        super().__init__(**options)
        if not (len(widths) == 3 and all(w >= 1 for w in widths)):
            raise ConfigError("method.options.widths", widths, "three positive channel counts (encoder, code, decoder)")
        self.widths = list(widths)

    def runner(self, cfg, threads=None) -> PruningCycles:
        from .. import data as datasets

        d = cfg.data
        splits = datasets.load(d.dataset, data_root=d.data_root, download=d.download,
                               val_size=int(d.val_size) if d.val_size >= 1 else d.val_size, split_seed=d.split_seed,
                               image_size=d.image_size, train_subset=d.train_subset, test_subset=d.test_subset)
        side = splits.info.image_size[0]
        if side % 4:
            raise ConfigError("data.image_size", side, "a side divisible by 4 (two stride-2 encoders, two decoders)")
        scale = lambda images: images.float() / 127.5 - 1.0  # noqa: E731  (tanh output range)
        train_x, test_x = scale(splits.train.images), scale(splits.test.images)
        channels = splits.info.channels
        return PruningCycles(cfg, threads, lambda w: autoencoder_chain(w, channels), self.widths,
                             (train_x, train_x, test_x, test_x), (channels, side, side), self.options)
