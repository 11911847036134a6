"""Wide ResNet WRN-28-10 (Zagoruyko & Komodakis 2016) for 32x32 images, with Pöllot et al.'s width α.

WRN-d-k: a 3x3 conv to 16 channels, three groups of n = (d - 4) / 6 pre-activation basic blocks
(BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3) on 16k / 32k / 64k channels, strides 1 / 2 / 2, a 1x1
conv shortcut where a block changes width or stride, then BN-ReLU, global average pooling and a
linear layer. WRN-28-10: n = 4, widths 160 / 320 / 640, 36,479,194 parameters with 10 classes (the
paper's 36.5M; ``tests/test_poellot.py`` derives the count by hand) and 5.25 G MACs at 32x32.
Convolutions have no bias (BN follows), as in the authors' code; dropout is off by default
(the paper's WRN-28-10 results without dropout; set ``dropout: 0.3`` for theirs with it).

``width`` (α) multiplies every layer's channels, the stem's 16 included, rounded to the nearest
channel (halves up, never to 0: harness.models.common.round_channels), so α = √0.5 gives 11 / 113 /
226 / 453 channels. Large inputs (``small_input`` false; by default when image_size > 64, e.g. the
224x224 of Pöllot et al.'s protocol) are our adaptation, the papers give none: the stem conv takes
stride 2 and a 3x3 stride-2 max-pool follows, as ResNet's ImageNet stem does, so a 224x224 image
reaches the first group at 56x56 (32x32 images reach it unreduced); parameters are unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .adapt import check_width, small_input_for
from .common import init_weights, make_stages, round_channels


class WideBlock(nn.Module):
    """Pre-activation basic block; the 1x1 shortcut conv sees the block's pre-activated input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv1(activated)
        out = F.relu(self.bn2(out))
        if self.dropout:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int, width: float,
                 dropout: float, small_input: bool):
        super().__init__()
        blocks_per_group = (depth - 4) // 6
        stem, *groups = (round_channels(c, width) for c in (16, 16 * widen, 32 * widen, 64 * widen))
        self.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1 if small_input else 2, padding=1, bias=False)
        self.pool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.group1, self.group2, self.group3 = make_stages(WideBlock, stem, groups, blocks_per_group, dropout=dropout)
        self.bn = nn.BatchNorm2d(groups[-1])
        self.fc = nn.Linear(groups[-1], num_classes)
        init_weights(self, zero_linear_bias=True)  # the authors': He fan-out for convs, zero linear bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv1(x))
        x = self.group3(self.group2(self.group1(x)))
        x = F.relu(self.bn(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("wrn28_10", family="wrn")
def wrn28_10(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
             dropout: float = 0.0, small_input: bool | None = None, width_rounding: str = "nearest") -> WideResNet:
    """WRN-28-10 (Zagoruyko & Komodakis): 36.5M parameters; width (α) scales every layer, rounded to nearest."""
    width = check_width(width)
    if width_rounding != "nearest":  # accepted for the same interface as vgg16 and mobilenetv2
        raise ConfigError("model.width_rounding", width_rounding, "nearest (WRN always rounds to the nearest channel)")
    if not 0 <= dropout < 1:
        raise ConfigError("model.dropout", dropout, "a probability in [0, 1) (0.3 in the WRN paper's dropout runs)")
    return WideResNet(28, 10, num_classes, in_channels, width, float(dropout),
                      small_input_for(small_input, image_size))
