"""Blocks of Jiang's Conditional Reduction networks (dissertation Sec. 3.1): compressed 1x1 convolutions.

Produces
  GroupConv1x1        ``gc``: a 1x1 convolution in g groups (eqs. 1-2: R_p = R_FLOPs = 1/g)
  GhostConv1x1        ``c1dw``: the Ghost module on a 1x1 (a 1x1 giving m = α·C_out maps, a d x d
                      depthwise giving β·m more, eq. 5; eqs. 3-4: R = α + d²βα / C_in)
  compressed_1x1      builds either of them, or the Conditional Reduction (CR) module's choice
                      (``cr``: c1dw when the layer expands, gc when it does not, Figure 3.2)
  SqueezeExcite       GhostNet's squeeze-and-excite, used where Table 3-2 asks for it
  CBneck, CIBneck     the C-block as a Conditional Bottleneck (Figure 3.4) and a Conditional
                      Inverted Bottleneck (Figure 3.5)
  beta, ratio_params_gc, ratio_params_c1dw
                      equations 1-5 as functions, which the tests compare with the built layers
Every convolution here is bias-free and followed by BatchNorm, as in GhostNet's code, except
the squeeze-and-excite's two 1x1s, which carry biases (also GhostNet's choice).
Channel counts are checked before anything is built: see ``harness.models.crnet``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("gc", "c1dw")
GHOST_KERNEL = 3  # d of the c1dw depthwise: GhostNet's dw_size, which Tables 4-1 and 4-5 need


def beta(channels_out: int, alpha: float) -> int:
    """Eq. 5: how many maps the depthwise derives from each of the ⌈α·C_out⌉ primary maps (>= 1)."""
    primary = math.ceil(alpha * channels_out)
    return max(1, math.ceil((channels_out - primary) / primary))


def ratio_params_gc(g: int) -> float:
    """Eqs. 1 and 2: parameters (and FLOPs) of a g-group 1x1 over a dense 1x1's."""
    return 1.0 / g


def ratio_params_c1dw(channels_in: int, channels_out: int, alpha: float, d: int = GHOST_KERNEL) -> float:
    """Eqs. 3 and 4: parameters (and FLOPs) of c1dw over a dense 1x1's, α + d²·β·α / C_in."""
    return alpha + d * d * beta(channels_out, alpha) * alpha / channels_in


def choose(channels_in: int, channels_out: int) -> str:
    """The CR module's rule (Sec. 3.1.1): c1dw for a small input-large output 1x1, gc otherwise.

    Equal counts go to gc: Table 3-1's footnote says so for conv2-1's 16 -> 16 first 1x1.
    """
    return "c1dw" if channels_out > channels_in else "gc"


def _bn_act(channels: int, relu: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels)] + ([nn.ReLU(inplace=True)] if relu else [])


class GroupConv1x1(nn.Module):
    """gc compression: one 1x1 convolution in ``g`` groups, then BN (and ReLU).

    No channel shuffle: the paper names none, and a shuffle would change no count.
    """

    kind = "gc"

    def __init__(self, channels_in: int, channels_out: int, g: int, relu: bool):
        super().__init__()
        self.channels_in, self.channels_out, self.g = channels_in, channels_out, g
        self.conv = nn.Conv2d(channels_in, channels_out, 1, groups=g, bias=False)
        self.post = nn.Sequential(*_bn_act(channels_out, relu))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.conv(x))


class GhostConv1x1(nn.Module):
    """c1dw compression (the Ghost module on a 1x1): primary 1x1 to m = ⌈α·C_out⌉ maps, a d x d
    depthwise deriving β maps from each (eq. 5), the two concatenated and cut to C_out.

    Each half has its BN (and ReLU), as GhostNet's GhostModule. When m does not divide C_out the
    depthwise makes more maps than needed and the surplus is dropped, as in GhostNet; its
    parameters are still counted, as eq. 3 counts them.
    """

    kind = "c1dw"

    def __init__(self, channels_in: int, channels_out: int, alpha: float, relu: bool, d: int = GHOST_KERNEL):
        super().__init__()
        self.channels_in, self.channels_out, self.alpha, self.d = channels_in, channels_out, alpha, d
        self.primary_channels = math.ceil(alpha * channels_out)
        self.beta = beta(channels_out, alpha)
        self.primary = nn.Sequential(nn.Conv2d(channels_in, self.primary_channels, 1, bias=False),
                                     *_bn_act(self.primary_channels, relu))
        cheap = self.beta * self.primary_channels
        self.cheap = nn.Sequential(nn.Conv2d(self.primary_channels, cheap, d, padding=d // 2,
                                             groups=self.primary_channels, bias=False),
                                   *_bn_act(cheap, relu))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary(x)
        return torch.cat([primary, self.cheap(primary)], dim=1)[:, : self.channels_out]


def compressed_1x1(kind: str, channels_in: int, channels_out: int, g: int, alpha: float,
                   relu: bool) -> nn.Module:
    """A compressed 1x1 of ``kind`` gc, c1dw or cr (the CR module: chosen by the channel pattern)."""
    if kind == "cr":
        kind = choose(channels_in, channels_out)
    if kind == "gc":
        return GroupConv1x1(channels_in, channels_out, g, relu)
    if kind == "c1dw":
        return GhostConv1x1(channels_in, channels_out, alpha, relu)
    raise ValueError(f"unknown 1x1 compression {kind!r}: expected gc, c1dw or cr")


def depthwise(channels: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False),
                         *_bn_act(channels, relu))


def make_divisible(value: float, divisor: int = 4) -> int:
    """GhostNet's ``_make_divisible``: round to a multiple of divisor, never below 90 % of value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    """GhostNet's SE: global average, 1x1 to make_divisible(ratio·C, 4) (bias), ReLU, 1x1 back
    (bias), hard sigmoid, channel-wise scale. Its width is taken on the block's inner channels,
    which (with the biases) is what Table 4-5's parameter counts need."""

    def __init__(self, channels: int, ratio: float):
        super().__init__()
        self.reduced = make_divisible(channels * ratio, 4)
        self.reduce = nn.Conv2d(channels, self.reduced, 1, bias=True)
        self.expand = nn.Conv2d(self.reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)
        gate = self.expand(F.relu(self.reduce(gate)))
        return x * F.hardsigmoid(gate)


class GhostShortcut(nn.Module):
    """The shortcut where a block changes shape: a k x k depthwise carrying the stride, BN, a dense
    1x1 to the new width, BN (GhostNet's). Both networks need it: with a plain strided 1x1
    projection (ResNet's option B) CRnet-CB has 0.37-0.49 M MACs fewer than the rows of Table 4-1."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, kernel: int):
        super().__init__()
        self.depthwise = depthwise(channels_in, kernel, stride, relu=False)
        self.project = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.depthwise(x))


class CBneck(nn.Module):
    """Conditional Bottleneck (Figure 3.4): a reducing compressed 1x1 (C_in -> C_0) at the input
    resolution, a 3x3 depthwise carrying the stride, an expanding compressed 1x1 (C_0 -> C_out),
    added to the shortcut, ReLU (ResNet's order).

    The stride sits in the depthwise, after the first 1x1: the strategy differences of
    Table 4-1 (0.81 M MACs between gc and c1dw in the first 1x1 at g = 2, α = 0.5) need the first
    1x1 of conv3-1 and conv5-1 at the input resolution. Unlike GhostNet, every block has the
    depthwise (the C-block's intermediate layer, Sec. 3.1.2); without it every row of Table 4-1
    falls 1.3 M MACs short.
    """

    def __init__(self, channels_in: int, inner: int, channels_out: int, stride: int,
                 first: str, second: str, g: int, alpha: float):
        super().__init__()
        self.channels_in, self.inner, self.channels_out, self.stride = channels_in, inner, channels_out, stride
        self.reduce = compressed_1x1(first, channels_in, inner, g, alpha, relu=True)
        self.depthwise = depthwise(inner, 3, stride, relu=True)
        self.expand = compressed_1x1(second, inner, channels_out, g, alpha, relu=False)
        self.shortcut = (GhostShortcut(channels_in, channels_out, stride, 3)
                         if stride != 1 or channels_in != channels_out else nn.Identity())

    @property
    def compression(self) -> str:
        """What the first and the second 1x1 use, e.g. gc-c1dw."""
        return f"{self.reduce.kind}-{self.expand.kind}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.expand(self.depthwise(self.reduce(x))) + self.shortcut(x))


class CIBneck(nn.Module):
    """Conditional Inverted Bottleneck (Figure 3.5), GhostNet's GhostBottleneck with compressed
    1x1s: an expanding compressed 1x1 (C_in -> C_0) with ReLU, a ``dw_kernel`` depthwise only when
    the block strides, squeeze-and-excite on C_0 when ``se`` > 0, a reducing compressed 1x1
    (C_0 -> C_out) without activation, plus the shortcut; no activation after the sum.

    The depthwise only in strided blocks is GhostNet's code, and Table 4-5 needs it: a depthwise
    in every block (``every_depthwise``, Sec. 3.1.2's "The intermediate layer is a depthwise 3×3
    convolution") adds 7.1 M MACs (exp 4) or more to each row. Table 3-2's DW column is that
    depthwise's kernel and the kernel of the shortcut's depthwise.
    """

    def __init__(self, channels_in: int, inner: int, channels_out: int, stride: int, se: float,
                 dw_kernel: int, first: str, second: str, g: int, alpha: float, every_depthwise: bool = False):
        super().__init__()
        self.channels_in, self.inner, self.channels_out, self.stride = channels_in, inner, channels_out, stride
        self.se_ratio, self.dw_kernel = se, dw_kernel
        self.expand = compressed_1x1(first, channels_in, inner, g, alpha, relu=True)
        self.depthwise = (depthwise(inner, dw_kernel, stride, relu=False) if stride > 1 or every_depthwise
                          else nn.Identity())
        self.se = SqueezeExcite(inner, se) if se > 0 else nn.Identity()
        self.reduce = compressed_1x1(second, inner, channels_out, g, alpha, relu=False)
        self.shortcut = (GhostShortcut(channels_in, channels_out, stride, dw_kernel)
                         if stride != 1 or channels_in != channels_out else nn.Identity())

    @property
    def compression(self) -> str:
        """What the first and the second 1x1 use, e.g. c1dw-gc."""
        return f"{self.expand.kind}-{self.reduce.kind}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.se(self.depthwise(self.expand(x)))) + self.shortcut(x)
