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

The small models' rules (Sec. 2.4.2), for the separable residual ``calli_cifar``:
``separable_residual_keep`` chooses the channels (the residual stream's per group of directly
connected blocks, as the union over the group's tensors; each block's inner channels on their own)
and ``prune_separable_residual`` removes the rest, depthwise convolutions following their input.
They are functions, tested for keeping the function on the kept nodes; the training cycles of
Sec. 3.3.2 on the CIFAR-10 model are not wired as a sweep.
"""
from __future__ import annotations

import copy
import math
import random
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import METHODS
from .base import Experiment

CRITERIA = ("count", "variance")
BOUNDS = ("zero", "outlier")
KEEPS = ("inside", "outside")
REGULARIZATIONS = ("none", "l1", "l2")
WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


# ---- the network and its surgery -------------------------------------------------------------------

class Chain(nn.Module):
    """Stages applied in order; each an nn.Sequential whose first module is the weight layer."""

    def __init__(self, stages: list[nn.Sequential]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor, record: Optional[list] = None) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
            if record is not None:
                record.append(x)
        return x

    def widths(self) -> list[int]:
        """Nodes of the hidden stages (every stage but the output one)."""
        return [_out_features(stage[0]) for stage in self.stages[:-1]]


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _out_dim(layer: nn.Module) -> int:
    return 1 if isinstance(layer, nn.ConvTranspose2d) else 0  # ConvTranspose2d weights are (in, out, kh, kw)


def _rebuild(layer: nn.Module, keep_in: Optional[torch.Tensor], keep_out: Optional[torch.Tensor]) -> nn.Module:
    """A copy of ``layer`` with only the kept input and output features (None keeps all)."""
    weight = layer.weight.detach()
    out_dim = _out_dim(layer)
    if keep_out is not None:
        weight = weight.index_select(out_dim, keep_out)
    if keep_in is not None:
        weight = weight.index_select(1 - out_dim, keep_in)
    bias = layer.bias.detach() if layer.bias is not None else None
    if bias is not None and keep_out is not None:
        bias = bias[keep_out]
    new = copy.deepcopy(layer)  # keeps stride, padding, output_padding, ...; then resized below
    new.weight = nn.Parameter(weight.clone())
    if bias is not None:
        new.bias = nn.Parameter(bias.clone())
    n_out = weight.shape[out_dim]
    n_in = weight.shape[1 - out_dim]
    if isinstance(layer, nn.Linear):
        new.in_features, new.out_features = n_in, n_out
    else:
        new.in_channels, new.out_channels = n_in, n_out
    return new


def _rebuild_bn(bn: nn.BatchNorm2d | nn.BatchNorm1d, keep: torch.Tensor) -> nn.Module:
    new = copy.deepcopy(bn)
    new.num_features = len(keep)
    new.weight = nn.Parameter(bn.weight.detach()[keep].clone())
    new.bias = nn.Parameter(bn.bias.detach()[keep].clone())
    new.running_mean = bn.running_mean[keep].clone()
    new.running_var = bn.running_var[keep].clone()
    return new


def prune_nodes(chain: Chain, keep: dict[int, torch.Tensor]) -> Chain:
    """A new Chain without the nodes not in ``keep[i]`` (sorted indices) of hidden stage i."""
    stages = []
    for i, stage in enumerate(chain.stages):
        keep_out = keep.get(i)
        keep_in = keep.get(i - 1)
        modules = []
        for j, module in enumerate(stage):
            if j == 0:
                module = _rebuild(module, keep_in, keep_out)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and keep_out is not None:
                module = _rebuild_bn(module, keep_out)
            else:
                module = copy.deepcopy(module)
            modules.append(module)
        stages.append(nn.Sequential(*modules))
    return Chain(stages)


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
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 and math.isfinite(value)):
            bad(key, value, "a finite number >= 0")
    for key, value in (("epochs_per_cycle", epochs_per_cycle), ("stats_samples", stats_samples)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            bad(key, value, "an integer >= 1")


class PruningCycles:
    """Runs the training cycles of one chain on (inputs, targets); the runner a Tune trial drives."""

    def __init__(self, cfg, threads, make_chain: Callable[[list[int]], Chain], widths: list[int], data,
                 input_shape: tuple, options: dict, extra: Callable[[Chain], dict] = lambda chain: {}):
        from ..train import resolve_device

        self.cfg, self.options, self.extra = cfg, options, extra
        t = cfg.train
        self.device = resolve_device(t.device)
        if self.device.type == "cpu" and (t.threads or threads):
            torch.set_num_threads(t.threads or threads)
        random.seed(t.seed)
        np.random.seed(t.seed % 2**32)
        torch.manual_seed(t.seed)
        self.make_chain, self.input_shape = make_chain, input_shape
        self.train_x, self.train_y, self.test_x, self.test_y = (d.to(self.device) for d in data)
        self.chain = make_chain(widths).to(self.device)
        self.initial_widths = list(widths)
        self.cycle = 0
        self.done = False
        self.counts = self.measure()

    # the Trainer interface used by harness.sweep._trial
    def counts_summary(self) -> dict:
        return {"params": self.counts["params"], "macs": self.counts["macs"], "flops": 2 * self.counts["macs"]}

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
            w.add_(torch.randn_like(w) * self.options["distortion"] * w.std())

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
        self.counts = self.measure()
        self.done = pruned == 0
        return {"train_loss": train_loss, "test_rmse_before_pruning": test_rmse_before,
                "train_rmse": self.rmse(self.train_x[:self.options["stats_samples"]],
                                        self.train_y[:self.options["stats_samples"]]),
                "test_rmse": self.rmse(self.test_x, self.test_y), "pruned": pruned,
                **{f"nodes_{i + 1}": w for i, w in enumerate(self.chain.widths())},
                "params": self.counts["params"], "macs": self.counts["macs"], "cycle_time_s": cycle_time_s,
                "cycles": self.cycle, "converged": float(self.done), **self.extra(self.chain)}

    def run(self, on_epoch=None) -> dict:
        metrics: dict = {}
        while not self.done and self.cycle < self.cfg.train.epochs:
            metrics = self.run_cycle()
            if on_epoch is not None:
                on_epoch(self.cycle, metrics, self)
        return {**metrics, **self.counts_summary()}  # the last cycle's metrics hold the final state


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


@METHODS.register("node_pruning_summation", kind="experiment")
class SummationPruning(_NodePruning):
    """Çallı Sec. 2.1.3: prune 2 -> hidden -> 1 predicting x1 + x2 until a cycle prunes nothing.

    Options: criterion, bound, keep, distortion, regularization, reg_lambda, epochs_per_cycle,
    stats_samples (see the module doc), hidden (1000), samples (1,000,000 training samples),
    test_samples (10,000).
    """

    uses_dataset = False  # x1, x2 uniform in [0, 1), generated from the trial's seed

    def __init__(self, hidden: int = 1000, samples: int = 1_000_000, test_samples: int = 10_000, **options):
        super().__init__(**options)
        for key, value in (("hidden", hidden), ("samples", samples), ("test_samples", test_samples)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
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


@METHODS.register("node_pruning_autoencoder", kind="experiment")
class AutoencoderPruning(_NodePruning):
    """Çallı Sec. 2.1.3: prune the 1-32-64-32-1 convolutional autoencoder's hidden channels in cycles.

    Options: criterion, bound, keep, distortion, regularization, reg_lambda, epochs_per_cycle,
    stats_samples (see the module doc), widths ([32, 64, 32]). Data: ``data.dataset``'s training
    split (``data.train_subset``) and its test split (``data.test_subset``), scaled to [-1, 1].
    """

    def __init__(self, widths: list = (32, 64, 32), **options):
        super().__init__(**options)
        if not (isinstance(widths, (list, tuple)) and len(widths) == 3
                and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
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


# ---- the small models' rules (Sec. 2.4.2): residual groups and depthwise convolutions ----------------

def _take_conv(conv: nn.Conv2d, keep_in: Optional[torch.Tensor], keep_out: Optional[torch.Tensor]) -> nn.Conv2d:
    """``conv`` without the dropped channels; a depthwise conv's channels follow its input (keep_out ignored)."""
    if conv.groups > 1:  # depthwise (groups == channels): input channel i is output channel i
        assert conv.groups == conv.in_channels == conv.out_channels, "only depthwise grouped convs are pruned"
        new = _rebuild(conv, None, keep_in)
        new.in_channels = new.out_channels = new.groups = len(keep_in)
        return new
    return _rebuild(conv, keep_in, keep_out)


def _take_separable(sep: nn.Sequential, keep_in: torch.Tensor, keep_out: torch.Tensor) -> nn.Sequential:
    modules = []
    for module in sep:
        if isinstance(module, nn.Conv2d):
            module = _take_conv(module, keep_in, keep_in if module.groups > 1 else keep_out)
        elif isinstance(module, nn.BatchNorm2d):
            module = _rebuild_bn(module, keep_in)  # between depthwise and pointwise: the input's channels
        else:
            module = copy.deepcopy(module)
        modules.append(module)
    return nn.Sequential(*modules)


def prune_separable_residual(model: nn.Module, stream: list[torch.Tensor], inner: list[torch.Tensor]) -> nn.Module:
    """A pruned copy of a ``calli_cifar`` model (harness.models.calli.CalliCifar).

    ``stream[g]``: the residual-stream channels kept in group g, one group per stage: the blocks a
    residual addition connects at the same width are "directly connected" and share their channels
    (Sec. 2.4.2), the stem conv feeding the first. ``inner[b]``: the channels kept between block b's
    two separable convolutions (its first pointwise outputs), pruned per block. Depthwise
    convolutions and the BNs beside them keep the channels of their input. A stage's first block
    maps its input group's channels onto its output group's through the identity (average pooling,
    zero padding): an output channel keeps the input channel of the same index if that one is kept,
    and a zero otherwise.
    """
    pruned = copy.deepcopy(model)
    pruned.conv1 = _take_conv(model.conv1, None, stream[0])
    blocks = [block for stage in pruned.stages for block in stage]
    groups = [g for g, stage in enumerate(pruned.stages) for _ in stage]
    for b, block in enumerate(blocks):
        g_out = groups[b]
        g_in = groups[b - 1] if b else 0
        keep_in, keep_out, keep_inner = stream[g_in], stream[g_out], inner[b]
        block.bn1 = _rebuild_bn(block.bn1, keep_in)
        block.sep1 = _take_separable(block.sep1, keep_in, keep_inner)
        block.bn2 = _rebuild_bn(block.bn2, keep_inner)
        block.sep2 = _take_separable(block.sep2, keep_inner, keep_out)
        position = {int(c): i for i, c in enumerate(keep_in)}
        index = [position.get(int(c), len(keep_in)) for c in keep_out]
        block.shortcut_index = torch.tensor(index, dtype=torch.long, device=keep_out.device)
        block.pad_channels = 0
    pruned.bn = _rebuild_bn(model.bn, stream[-1])
    pruned.fc = _rebuild(model.fc, stream[-1], None)
    return pruned


@torch.no_grad()
def separable_residual_keep(model: nn.Module, images: torch.Tensor, criterion: str = "variance", bound: str = "zero",
                            keep: str = "inside") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(stream, inner) keep sets for ``prune_separable_residual`` from one pass over ``images``.

    A group's stream channels are the union of the channels the criterion keeps at each of its
    tensors (the stem's output and every block's output in it, Sec. 2.4.2: "we union the nodes to be
    kept"); inner channels are chosen at each block's first pointwise output.
    """
    records: dict[str, torch.Tensor] = {}
    hooks = []

    def grab(name):
        def hook(module, inputs, output):
            records[name] = output
        return hook

    hooks.append(model.conv1.register_forward_hook(grab("stem")))
    blocks = [block for stage in model.stages for block in stage]
    for b, block in enumerate(blocks):
        hooks.append(block.register_forward_hook(grab(f"out{b}")))
        hooks.append(block.sep1.register_forward_hook(grab(f"inner{b}")))
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        model.train(was_training)
        for handle in hooks:
            handle.remove()

    def chosen(tensor: torch.Tensor) -> torch.Tensor:
        values = tensor.transpose(0, 1).reshape(tensor.shape[1], -1).double()
        stat = (values > 0).double().mean(1) if criterion == "count" else values.var(1, unbiased=False)
        return select(stat.cpu(), bound, keep)

    groups = [g for g, stage in enumerate(model.stages) for _ in stage]
    stream_sets: list[set] = [set() for _ in model.stages]
    stream_sets[0].update(chosen(records["stem"]).tolist())
    for b in range(len(blocks)):
        stream_sets[groups[b]].update(chosen(records[f"out{b}"]).tolist())
    stream = [torch.tensor(sorted(s), dtype=torch.long) for s in stream_sets]
    inner = [chosen(records[f"inner{b}"]) for b in range(len(blocks))]
    return stream, inner
