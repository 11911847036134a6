"""Çallı's models (MSc thesis 2017): the convolution-alternatives baseline and the separable
residual CIFAR-10 model.

calli_baseline (Sec. 2.3.4, Figure 2.9): three 5 x 5 convolutions, each followed by bias, batch
  normalization and ReLU; 2 x 2 max pooling (stride 2) after the first two, global average pooling
  after the third, one dense layer. The thesis's figure gives the channel counts, its text does
  not; our reading is ``widths`` = (32, 64, 128), doubling after each pooling as usual. The conv
  alternatives of Table 3.1 are ``conv: kernel_composing | separable | separable_nonlinear``
  (harness.layers.separable), which replace the second and third convolutions and keep the first
  (3 input channels) as the thesis does.

calli_cifar (Sec. 2.4.1, Figures 2.11 and 2.12): one 3 x 3 convolution followed by 6 full
  pre-activation separable residual blocks on ``widths`` = (32, 64, 128) (the Conclusions' "two
  times wider" than ResNet-20's 16/32/64, with fewer blocks, 6 against 9), BN, ReLU, global average
  pooling and a dense layer. A block is BN-ReLU-sep3x3-BN-ReLU-sep3x3 plus the identity, where
  sep3x3 is depthwise 3 x 3 (with BN-ReLU before the pointwise when ``nonlinear``, the variant the
  thesis found best, Table 3.1) then pointwise 1 x 1. The first block of a stage strides in its
  first depthwise convolution and widens in its first pointwise one; its identity mapping is 2 x 2
  average pooling (stride 2) with zero-padded channels, as the thesis says. The figure that places
  the two widening ("light green") blocks among the six is not in our copy: ``blocks`` = (1, 2, 3)
  per stage is the one placement that gives Table 3.2's 0.12 M parameters (121,802 with 10 classes;
  2 / 2 / 2 gives 88,586) and 13.9 M MACs at 32 x 32 against its "~13M" (docs/fidelity.md, Çallı,
  enumerates the readings). Weighted layers: 1 + 6 x 4 + 1 = 26 (the thesis counts 27 without saying
  how); counts derived in ``tests/test_calli_layers.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .common import init_weights, make_stages

BASELINE_WIDTHS = (32, 64, 128)
CIFAR_WIDTHS = (32, 64, 128)
CIFAR_BLOCKS = (1, 2, 3)  # separable residual blocks per stage; the reading is in the module docstring


def _widths(value: tuple[int, ...], count: int) -> tuple[int, ...]:  # typed by the builders' annotations
    if not (len(value) == count and all(v >= 1 for v in value)):
        raise ConfigError("model.widths", value, f"a list of {count} positive channel counts")
    return tuple(value)


def check_baseline(widths=BASELINE_WIDTHS, **_dataset_options) -> None:
    _widths(widths, 3)


def _blocks(value: int | tuple[int, ...]) -> int | tuple[int, ...]:  # typed by the builder's annotation
    counts = [value] if isinstance(value, int) else list(value)
    if not ((isinstance(value, int) or len(counts) == 3) and all(c >= 1 for c in counts)):
        raise ConfigError("model.blocks", value, "an integer >= 1 (separable residual blocks in every stage) or a "
                                                 "list of 3 (per stage), e.g. [1, 2, 3]")
    return value if isinstance(value, int) else tuple(value)


def check_cifar(widths=CIFAR_WIDTHS, blocks=CIFAR_BLOCKS, nonlinear=True, **_dataset_options) -> None:
    _widths(widths, 3)
    _blocks(blocks)


class CalliBaseline(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, widths: tuple[int, int, int]):
        super().__init__()
        layers, previous = [], in_channels
        for index, width in enumerate(widths):
            layers += [nn.Conv2d(previous, width, 5, padding=2, bias=True), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if index < 2:
                layers.append(nn.MaxPool2d(2, 2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.fc(x)


def separable3x3(in_channels: int, out_channels: int, stride: int, nonlinear: bool) -> nn.Sequential:
    parts = [nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False)]
    if nonlinear:
        parts += [nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True)]
    parts.append(nn.Conv2d(in_channels, out_channels, 1, bias=False))
    return nn.Sequential(*parts)


class SeparableResidualBlock(nn.Module):
    """Full pre-activation (He et al. 2016b) block of two separable 3 x 3 convolutions (Figure 2.11)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, nonlinear: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.sep1 = separable3x3(in_channels, out_channels, stride, nonlinear)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.sep2 = separable3x3(out_channels, out_channels, 1, nonlinear)
        self.stride = stride
        self.pad_channels = out_channels - in_channels
        # set by node pruning (harness.models.calli_rules.prune_separable_residual): for each output
        # channel, the input channel its identity carries, or in_channels for a zero (padded) one
        self.register_buffer("shortcut_index", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.sep1(F.relu(self.bn1(x)))
        out = self.sep2(F.relu(self.bn2(out)))
        shortcut = x
        if self.stride != 1:
            # ceil_mode keeps ceil(H/2) rows, the size the stride-2 depthwise conv (padding 1) gives
            shortcut = F.avg_pool2d(shortcut, 2, self.stride, ceil_mode=True)
        if self.shortcut_index is not None:
            shortcut = torch.cat([shortcut, torch.zeros_like(shortcut[:, :1])], 1)[:, self.shortcut_index]
        elif self.pad_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad_channels))
        return out + shortcut


class CalliCifar(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, widths: tuple[int, int, int],
                 blocks: int | tuple[int, int, int], nonlinear: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.stages = nn.Sequential(*make_stages(SeparableResidualBlock, widths[0], widths, blocks, nonlinear=nonlinear))
        self.bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stages(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("calli_baseline", family="calli", check=check_baseline)
def calli_baseline(num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                   widths: tuple[int, ...] = BASELINE_WIDTHS) -> CalliBaseline:
    """Çallı's conv-alternatives baseline: three 5x5 conv-bias-BN-ReLU, max pooling, GAP, dense (Sec. 2.3.4)."""
    return CalliBaseline(num_classes, in_channels, _widths(widths, 3))


@MODELS.register("calli_cifar", family="calli", check=check_cifar)
def calli_cifar(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, widths: tuple[int, ...] = CIFAR_WIDTHS,
                blocks: int | tuple[int, ...] = CIFAR_BLOCKS, nonlinear: bool = True) -> CalliCifar:
    """Çallı's CIFAR-10 model: a 3x3 conv and 6 full pre-activation separable residual blocks (Sec. 2.4.1)."""
    check_cifar(widths, blocks, nonlinear)
    return CalliCifar(num_classes, in_channels, tuple(widths), _blocks(blocks), nonlinear)
