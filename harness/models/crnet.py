"""Jiang's Conditional Reduction networks (dissertation Sec. 3.1.3): crnet_cb and crnet_cib.

``crnet_cb``  Table 3-1: a ResNet-50-style stack of 16 Conditional Bottlenecks on CIFAR-sized
              input (stem 3x3 to 16, stages conv2-x .. conv5-x with inner 16/32/32/64 channels and
              output inner x exp, stride 2 in conv3-1 and conv5-1), global average, fc.
``crnet_cib`` Table 3-2: a GhostNet-style stack of 16 Conditional Inverted Bottlenecks (outputs
              16/32/64, inner output x exp, squeeze-and-excite and depthwise kernels as listed),
              then a 1x1 to 64 x exp, global average, a 1x1 to 64 (bias), fc.
Options: ``exp`` (expansion ratio), ``g`` (groups of gc), ``alpha`` (c1dw's α; default 1/g, the
paper's pairing g = 2 / α = 0.5, g = 4 / α = 0.25), ``strategy`` (what the first and the second
1x1 of every block use: c1dw-c1dw is the Ghost-module baseline, gc-gc plain group convolution;
``cr``, the default, lets the CR module choose per layer, which is gc-c1dw for crnet_cb and
c1dw-gc for crnet_cib; the other mixed strategy is the tables' "Inverse CR"); crnet_cib only:
``depthwise`` (``strided``, the default: the DW-kernel depthwise only in the two strided blocks, as
GhostNet's code, which Tables 4-5 ... 4-8 need; ``every``: in all 16 blocks, as Sec. 3.1.2 says,
+7.11 M MACs and +0.024 M parameters at exp 4, g 2, off every row of Table 4-5; docs/fidelity.md).

With num_classes=10 at 3x32x32 these reproduce the Parameter and FLOPs columns of Tables 4-1 and
4-5 (FLOPs there are multiply-adds, our ``macs``); ``analysis/jiang_crnet.py`` holds the
published values and ``tests/test_crnet.py`` compares all 24. Where the text leaves a detail
open, the reading that reproduces the tables is taken and named in the blocks' docstrings
(``harness/layers/crnet.py``) and below.

Bad options raise ConfigError naming the option, the layer that rejects it and the valid values,
from ``check_cb`` / ``check_cib`` (registered as the models' ``check``, so they run before Ray
starts and again at build).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..layers.crnet import CBneck, CIBneck, choose
from ..registry import MODELS
from .common import init_weights

STRATEGIES = ("cr", "c1dw-c1dw", "gc-c1dw", "gc-gc", "c1dw-gc")
DEPTHWISE = ("strided", "every")  # crnet_cib: which C-IBnecks have the intermediate depthwise
STEM_CHANNELS = 16
BASE_CHANNELS = 16  # the smallest channel count exp multiplies (conv2-x inner, first CIB output)

# Table 3-1: (layer, inner channels, blocks, stride of the first block). Out = inner x exp.
CB_STAGES = (("conv2", 16, 3, 1), ("conv3", 32, 4, 2), ("conv4", 32, 6, 1), ("conv5", 64, 3, 2))

# Table 3-2, one row per C-IBneck: (output channels, stride, SE ratio, depthwise kernel). Inner = out x exp.
CIB_BLOCKS = ((16, 1, 0, 3), (16, 1, 0, 3), (16, 1, 0, 3), (16, 1, 0.25, 5), (16, 1, 0.25, 5),
              (32, 2, 0, 3), (32, 1, 0, 3), (32, 1, 0, 3), (32, 1, 0, 3), (32, 1, 0.25, 3), (32, 1, 0.25, 3),
              (64, 2, 0.25, 5), (64, 1, 0, 3), (64, 1, 0.25, 3), (64, 1, 0, 3), (64, 1, 0.25, 3))
CIB_HEAD_HIDDEN = 64  # Table 3-2's conv2d 1x1 after the pooling
CIB_LAST_BASE = 64  # the last 1x1 has 64 x exp outputs: Table 3-2 prints 256 = 64 x 4 (see CRNetCIB)


@dataclass(frozen=True)
class OneByOne:
    """One compressible 1x1 of a network, as the option checks see it."""

    layer: str  # the paper's name, e.g. "conv3-1 first 1x1"
    module: str  # the module path in the built model
    channels_in: int
    channels_out: int
    kind: str  # gc or c1dw after resolving the strategy


def resolve(strategy: str, position: int, channels_in: int, channels_out: int) -> str:
    """The compression of the ``position``-th (0 or 1) 1x1 of a block under ``strategy``."""
    if strategy == "cr":
        return choose(channels_in, channels_out)
    return strategy.split("-")[position]


# ---- option checks: everything a bad value can break, before any module is built ----

def _channels(exp, base: int) -> int:
    return round(exp * base)


def _check_common(exp, g, alpha, strategy):
    """Ranges only: each option's type is the builder's annotation, checked before this runs."""
    if strategy not in STRATEGIES:
        raise ConfigError("model.strategy", strategy,
                          "one of " + ", ".join(STRATEGIES) + " (first-second 1x1; cr: by each layer's pattern)")
    if exp <= 0 or abs(exp * BASE_CHANNELS - round(exp * BASE_CHANNELS)) > 1e-9:
        raise ConfigError("model.exp", exp, f"a number > 0 with exp x {BASE_CHANNELS} a whole channel count "
                                            "(e.g. 2, 4, 6, 8)")
    if g < 1:
        raise ConfigError("model.g", g, "a positive integer (groups of the gc 1x1s)")
    if alpha is None:
        alpha = 1.0 / g
    elif not 0 < alpha < 1:
        raise ConfigError("model.alpha", alpha, "a number in (0, 1): c1dw's share of the 1x1's outputs, eq. 5")
    return g, float(alpha)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_layers(layers: list[OneByOne], g: int, alpha: float, alpha_given: bool) -> None:
    gc_layers = [l for l in layers if l.kind == "gc"]
    for l in gc_layers:
        if l.channels_in % g or l.channels_out % g:
            common = reduce(math.gcd, [c for x in gc_layers for c in (x.channels_in, x.channels_out)])
            raise ConfigError("model.g", g, f"a group count dividing both channel counts of every gc 1x1, but "
                                            f"{l.layer} ({l.module}) is {l.channels_in} -> {l.channels_out}; "
                                            f"valid here: {', '.join(map(str, _divisors(common)))}")
    c1dw_layers = [l for l in layers if l.kind == "c1dw"]
    if c1dw_layers and not alpha_given and g == 1:
        raise ConfigError("model.g", g, "with alpha unset (alpha = 1/g must lie in (0, 1)) a group count >= 2, "
                                        "or set alpha")
    for l in c1dw_layers:
        primary = alpha * l.channels_out
        if abs(primary - round(primary)) > 1e-6:
            common = reduce(math.gcd, [x.channels_out for x in c1dw_layers])
            where = (f"{l.layer} ({l.module}) has C_out = {l.channels_out}: alpha x {l.channels_out} = {primary:g}")
            if not alpha_given:  # alpha defaults to 1/g: the group count is what was set
                raise ConfigError("model.g", g, f"with alpha unset (1/g = {alpha:g}), a g whose 1/g times every c1dw "
                                                f"1x1's C_out is whole, but {where}; valid here: "
                                                f"{', '.join(map(str, _divisors(common)[1:]))}, or set alpha")
            raise ConfigError("model.alpha", alpha,
                              f"a number in (0, 1) with alpha x C_out whole for every c1dw 1x1, but {where}; "
                              f"valid here: multiples of 1/{common} ({1 / common:g}, {2 / common:g}, ..., "
                              f"{(common - 1) / common:g})")


def cb_layers(exp=4, strategy="cr") -> list[OneByOne]:
    """The 32 compressible 1x1s of crnet_cb (two per C-Bneck), with the kind each gets."""
    layers, channels_in = [], STEM_CHANNELS
    for stage, inner, blocks, _ in CB_STAGES:
        out = _channels(exp, inner)
        for i in range(blocks):
            for position, (cin, cout, name) in enumerate(((channels_in, inner, "reduce"), (inner, out, "expand"))):
                layers.append(OneByOne(f"{stage}-{i + 1} {('first', 'second')[position]} 1x1",
                                       f"{stage}_x.{i}.{name}", cin, cout, resolve(strategy, position, cin, cout)))
            channels_in = out
    return layers


def cib_layers(exp=4, strategy="cr") -> list[OneByOne]:
    """The 32 compressible 1x1s of crnet_cib (two per C-IBneck), with the kind each gets."""
    layers, channels_in = [], STEM_CHANNELS
    for i, (out, _, _, _) in enumerate(CIB_BLOCKS):
        inner = _channels(exp, out)
        for position, (cin, cout, name) in enumerate(((channels_in, inner, "expand"), (inner, out, "reduce"))):
            layers.append(OneByOne(f"C-IBneck {i + 1} {('first', 'second')[position]} 1x1",
                                   f"blocks.{i}.{name}", cin, cout, resolve(strategy, position, cin, cout)))
        channels_in = out
    return layers


def check_cb(exp=4, g=2, alpha=None, strategy="cr", **_dataset_options) -> tuple[int, float]:
    """Raise ConfigError for options crnet_cb cannot build; return (g, alpha) resolved."""
    g_resolved, a = _check_common(exp, g, alpha, strategy)
    _check_layers(cb_layers(exp, strategy), g_resolved, a, alpha is not None)
    return g_resolved, a


def check_cib(exp=4, g=2, alpha=None, strategy="cr", depthwise="strided", **_dataset_options) -> tuple[int, float]:
    """Raise ConfigError for options crnet_cib cannot build; return (g, alpha) resolved."""
    if depthwise not in DEPTHWISE:
        raise ConfigError("model.depthwise", depthwise, "strided (the depthwise only where a C-IBneck strides, "
                                                        "GhostNet's code) or every (in every C-IBneck, Sec. 3.1.2)")
    g_resolved, a = _check_common(exp, g, alpha, strategy)
    _check_layers(cib_layers(exp, strategy), g_resolved, a, alpha is not None)
    return g_resolved, a


# ---- the networks ----

def _stem(in_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, STEM_CHANNELS, 3, padding=1, bias=False),
                         nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True))


class CRNetCB(nn.Module):
    """Table 3-1. The fc reads the last stage's inner x exp channels (256 at exp 4): the
    CIFAR-100 rows of Table 4-3 exceed Table 4-1's by that fc's 90 extra outputs (0.02-0.03 M
    parameters and MACs at exp 4 and 6)."""

    def __init__(self, num_classes: int, in_channels: int, exp, g: int, alpha: float, strategy: str):
        super().__init__()
        self.exp, self.g, self.alpha, self.strategy = exp, g, alpha, strategy
        self.conv1 = _stem(in_channels)
        channels_in = STEM_CHANNELS
        for stage, inner, blocks, stride in CB_STAGES:
            out = _channels(exp, inner)
            stack = []
            for i in range(blocks):
                first = resolve(strategy, 0, channels_in, inner)
                second = resolve(strategy, 1, inner, out)
                stack.append(CBneck(channels_in, inner, out, stride if i == 0 else 1, first, second, g, alpha))
                channels_in = out
            setattr(self, f"{stage}_x", nn.Sequential(*stack))
        self.fc = nn.Linear(channels_in, num_classes)
        init_weights(self, zero_conv_bias=True)

    def stages(self) -> list[tuple[str, nn.Sequential]]:
        return [(f"{stage}-x", getattr(self, f"{stage}_x")) for stage, *_ in CB_STAGES]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for _, stage in self.stages():
            x = stage(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class CRNetCIB(nn.Module):
    """Table 3-2. The last 1x1 widens to 64 x exp (Table 3-2 prints 256 for exp 4): with a fixed
    256 the exp = 6 rows of Table 4-5 come out 0.53 M MACs and 16.6 k parameters short. The 1x1
    after the pooling has a bias, as GhostNet's conv_head."""

    def __init__(self, num_classes: int, in_channels: int, exp, g: int, alpha: float, strategy: str,
                 depthwise: str = "strided"):
        super().__init__()
        self.exp, self.g, self.alpha, self.strategy = exp, g, alpha, strategy
        self.conv1 = _stem(in_channels)
        blocks, channels_in = [], STEM_CHANNELS
        for out, stride, se, dw_kernel in CIB_BLOCKS:
            inner = _channels(exp, out)
            first = resolve(strategy, 0, channels_in, inner)
            second = resolve(strategy, 1, inner, out)
            blocks.append(CIBneck(channels_in, inner, out, stride, se, dw_kernel, first, second, g, alpha,
                                  every_depthwise=depthwise == "every"))
            channels_in = out
        self.blocks = nn.Sequential(*blocks)
        last = _channels(exp, CIB_LAST_BASE)
        self.conv_last = nn.Sequential(nn.Conv2d(channels_in, last, 1, bias=False), nn.BatchNorm2d(last),
                                       nn.ReLU(inplace=True))
        self.conv_head = nn.Conv2d(last, CIB_HEAD_HIDDEN, 1, bias=True)
        self.fc = nn.Linear(CIB_HEAD_HIDDEN, num_classes)
        init_weights(self, zero_conv_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_last(self.blocks(self.conv1(x)))
        x = F.relu(self.conv_head(F.adaptive_avg_pool2d(x, 1)))
        return self.fc(x.flatten(1))


@MODELS.register("crnet_cb", family="crnet", check=check_cb)
def crnet_cb(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, exp: float = 4, g: int = 2,
             alpha: float | None = None, strategy: str = "cr") -> CRNetCB:
    """CRnet-CB (Jiang Table 3-1): ResNet-50-style Conditional Bottlenecks; strategy cr = gc-c1dw."""
    g, alpha = check_cb(exp, g, alpha, strategy)
    return CRNetCB(num_classes, in_channels, exp, g, alpha, strategy)


@MODELS.register("crnet_cib", family="crnet", check=check_cib)
def crnet_cib(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, exp: float = 4, g: int = 2,
              alpha: float | None = None, strategy: str = "cr", depthwise: str = "strided") -> CRNetCIB:
    """CRnet-CIB (Jiang Table 3-2): GhostNet-style Conditional Inverted Bottlenecks; strategy cr = c1dw-gc."""
    g, alpha = check_cib(exp, g, alpha, strategy, depthwise)
    return CRNetCIB(num_classes, in_channels, exp, g, alpha, strategy, depthwise)
