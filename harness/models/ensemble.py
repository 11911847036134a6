"""Ensembles of slim networks (Pöllot, Zhang, Kaup, ICASSP 2020): soft voting, stacking, ComboNet.

``ensemble`` builds ``members`` (N) copies of a registered ``base`` model, each ``width`` (α)
times as wide (one number for all, or a list with one α per member: the slides' ComboNet mixes
α values), and combines them in one module, trained as one trial:

``soft_voting``  the equal-weight mean of the members' softmax outputs. The slides train each
    member separately; here the members are trained independently inside one model: the training
    loss is the SUM of the members' own cross-entropies (``forward_train``: an OwnLoss, harness.models.base),
    so each member's gradient is exactly the one it would get alone (same batches and augmentation, its own
    initialization, BN statistics and weight decay); the logged ``train_loss`` is that sum. The
    output (training and evaluation) is log(mean_i softmax(z_i)): its argmax and top-k are the
    ensemble's vote, and its softmax is the mean probability.
``stacking``     a meta-classifier of two dense layers (N·C -> ``meta_hidden`` -> C, ReLU between;
    ``meta_hidden`` defaults to N·C) on the members' concatenated softmax outputs. The members
    train as in soft voting; the meta-classifier trains at the same time with its own
    cross-entropy on the members' outputs, detached, so it never changes the members: the
    one-model form of stacking's second stage (classical stacking fits it afterwards, on held-out
    predictions; here it sees the current training batch). The output is the meta-classifier's logits.
``combonet``     the members' penultimate features concatenated into one shared output layer,
    initialized from the members' own output layers as W = 1/N [W1; ...; WN], B = 1/N Σ Bi, so
    that at initialization the output equals the mean of the members' logits; the whole
    network then trains jointly through that one layer with plain cross-entropy.

``members: 1`` with ``soft_voting`` trains exactly as the base model does (cross-entropy is
invariant to log_softmax), which is how the sweeps express the full-size network (α = 1, N = 1).

Supported bases are those whose output layer is one ``nn.Linear`` at a known place (``HEADS``),
which ComboNet detaches: digits_cnn, the CIFAR and ImageNet ResNets, VGG-16/19, MobileNetV2,
WRN-28-10, AlexNet and Inception-v3; any other base is a ConfigError. ``base_options`` go to every
member (e.g. ``{width_rounding: nearest}`` for α = √0.5 on vgg16 or mobilenetv2).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .base import OwnLoss

HEADS = {  # base model -> qualified name of its output nn.Linear
    "digits_cnn": "fc", "resnet20": "fc", "resnet32": "fc", "resnet56": "fc", "resnet18": "fc", "resnet50": "fc",
    "vgg16": "classifier.6", "vgg19": "classifier.6", "mobilenetv2": "classifier.1", "wrn28_10": "fc",
    "alexnet": "classifier.6", "inception_v3": "fc",
}
COMBINES = ("soft_voting", "stacking", "combonet")
RESERVED = ("width", "num_classes", "in_channels", "image_size")  # set by the ensemble, not by base_options


def combine_heads(heads: Sequence[nn.Linear]) -> nn.Linear:
    """ComboNet's shared output layer: W = 1/N [W1; ...; WN] (over the inputs), B = 1/N Σ Bi.

    Applied to the members' concatenated features it gives the mean of their logits (torch keeps
    a Linear's weight as (out, in), so the slides' row-stacking of x·W weights is a concatenation
    over dim 1 here).
    """
    n = len(heads)
    outputs = {h.out_features for h in heads}
    if len(outputs) != 1:
        raise ValueError(f"heads differ in outputs: {sorted(outputs)}")
    with_bias = all(h.bias is not None for h in heads)
    shared = nn.Linear(sum(h.in_features for h in heads), outputs.pop(), bias=with_bias)
    with torch.no_grad():
        shared.weight.copy_(torch.cat([h.weight for h in heads], dim=1) / n)
        if with_bias:
            shared.bias.copy_(torch.stack([h.bias for h in heads]).sum(0) / n)
    return shared


def _widths(width: float | list[float], members: int) -> list[float]:  # typed by ensemble's annotations
    if isinstance(width, (list, tuple)):
        if len(width) != members or not all(w > 0 for w in width):
            raise ConfigError("model.width", width, f"a number > 0 or a list of {members} numbers > 0 (one per member)")
        return [float(w) for w in width]
    if not width > 0:
        raise ConfigError("model.width", width, "a number > 0 (α for every member) or a list of one α per member")
    return [float(width)] * members


def _check(base: str = "resnet20", width=0.5, members: int = 2, combine: str = "combonet",
           base_options: dict | None = None, meta_hidden: int | None = None, **_dataset) -> list[float]:
    """Every option's value (ConfigError naming it); returns the members' widths."""
    if base not in HEADS or base not in MODELS:
        raise ConfigError("model.base", base, "a base whose output layer ComboNet can detach: "
                          + ", ".join(sorted(b for b in HEADS if b in MODELS)))
    if members < 1:
        raise ConfigError("model.members", members, "an integer >= 1 (N, the number of member networks)")
    if combine not in COMBINES:
        raise ConfigError("model.combine", combine, "one of " + ", ".join(COMBINES))
    for key in base_options or {}:
        if key in RESERVED:
            raise ConfigError(f"model.base_options.{key}", base_options[key],
                              "unset: width is the ensemble's option, the dataset sets the others")
    if meta_hidden is not None and meta_hidden < 1:
        raise ConfigError("model.meta_hidden", meta_hidden, "a positive integer or null (N x classes)")
    widths = _widths(width, members)
    from . import check_options

    for w in sorted(set(widths)):
        check_options(base, {**(base_options or {}), "width": w})
    return widths


_BUILT: set = set()  # (base, width, base_options as JSON) already built on the meta device by _check_built


def _check_built(**options) -> None:
    """Build the members on the meta device (no memory, no RNG): a width that leaves a layer with no
    whole channel fails here, before any work. A sweep checks hundreds of cells with a few distinct
    members, so each distinct member is built once per process."""
    import json

    widths = _check(**options)
    from . import build

    base, base_options = options.get("base", "resnet20"), options.get("base_options") or {}
    for w in sorted(set(widths)):
        key = (base, w, json.dumps(base_options, sort_keys=True, default=str))
        if key in _BUILT:
            continue
        with torch.device("meta"):
            build(base, **{**base_options, "width": w})
        _BUILT.add(key)


class Ensemble(OwnLoss, nn.Module):
    def __init__(self, members: list[nn.Module], combine: str, num_classes: int, head: str,
                 meta_hidden: int | None):
        super().__init__()
        self.combine = combine
        self.members = nn.ModuleList(members)
        self.head = None
        self.meta = None
        if combine == "combonet":
            heads = [m.get_submodule(head) for m in members]
            for member in members:  # each member now ends at its penultimate features
                parent, _, child = head.rpartition(".")
                setattr(member.get_submodule(parent), child, nn.Identity())
            self.head = combine_heads(heads)
        elif combine == "stacking":
            inputs = len(members) * num_classes
            hidden = meta_hidden or inputs
            self.meta = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def _vote(self, logits: list[torch.Tensor]) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(z.float(), dim=1) for z in logits])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))

    def _stack(self, logits: list[torch.Tensor]) -> torch.Tensor:
        probs = torch.cat([F.softmax(z.float(), dim=1) for z in logits], dim=1).detach()
        return self.meta(probs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [member(x) for member in self.members]
        if self.combine == "combonet":
            return self.head(torch.cat(outputs, dim=1))
        return self._vote(outputs) if self.combine == "soft_voting" else self._stack(outputs)

    def forward_train(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, training loss), used by harness.train.Trainer instead of cross_entropy(model(x), y)."""
        if self.combine == "combonet":
            output = self(x)
            return output, F.cross_entropy(output, y)
        logits = [member(x) for member in self.members]
        loss = sum(F.cross_entropy(z, y) for z in logits)
        if self.combine == "soft_voting":
            return self._vote(logits), loss
        output = self._stack(logits)
        return output, loss + F.cross_entropy(output, y)


@MODELS.register("ensemble", family="ensemble", check=_check_built)
def ensemble(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, base: str = "resnet20",
             width: float | list[float] = 0.5, members: int = 2, combine: str = "combonet",
             base_options: dict | None = None, meta_hidden: int | None = None) -> Ensemble:
    """N slim copies of a base model (width α each) combined by soft voting, stacking or ComboNet."""
    widths = _check(base, width, members, combine, base_options, meta_hidden)
    from . import build

    nets = [build(base, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                  **{**(base_options or {}), "width": w}) for w in widths]
    return Ensemble(nets, combine, num_classes, HEADS[base], meta_hidden)
