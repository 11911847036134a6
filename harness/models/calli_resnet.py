"""Çallı's ImageNet model (MSc thesis 2017, Sec. 2.4.1, Figure 2.13): ResNet-34 rebuilt from full
pre-activation separable residual blocks, with the thesis's cheaper input layers.

calli_resnet34: the input layers, then 3 / 4 / 6 / 3 separable residual blocks on 64 / 128 / 256 /
  512 channels (ResNet-34's), BN, ReLU, global average pooling and a dense layer.

  Input layers ("Aggressive Dimensionality Reduction in ImageNet"): the thesis replaces ResNet's
  7 x 7 / 2 convolution and max pooling with "two 3 x 3 convolutions", then, "before applying the
  max pooling layer", a 3 x 3 depthwise convolution "that multiplies the number of channels with
  two", then a 1 x 1 pointwise convolution. Its widths and strides are in the figure we do not
  have. Our reading: 3 x 3 / 2 (3 -> ``stem_width``), 3 x 3 / 1 (``stem_width`` -> ``stem_width``),
  depthwise 3 x 3 with channel multiplier 2, 2 x 2 max pooling / 2 (as the thesis describes
  ResNet's), pointwise 1 x 1 to ``widths[0]``; BN and ReLU after each but the pointwise (the first
  block's pre-activation follows it). A 224-px image reaches the blocks at 56 x 56, as in ResNet.
  With ``stem_width`` 16 these layers take 44.4 M MACs against ResNet-34's 118.0 M (7 x 7 conv;
  its max pooling has no MACs): 2.7 times fewer, where the thesis says "about four times".

  Blocks: harness.models.calli's separable 3 x 3 (depthwise, [BN, ReLU when ``nonlinear``],
  pointwise) twice, full pre-activation; the first block of a stage strides in its first depthwise
  convolution and widens in its first pointwise one; its identity mapping is a 1 x 1 convolution
  with stride 2 on the pre-activated input ("we have used 1 x 1 convolutions with strides of two
  because [HZRS15] shows that they work better for ImageNet").

Weighted layers: 4 input layers + 16 blocks x 4 + 3 projections + 1 dense = 72. Parameters with
1,000 classes at the defaults: derived in ``tests/test_calli_studies.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .calli import separable3x3
from .common import init_weights

WIDTHS = (64, 128, 256, 512)  # ResNet-34's stage widths
BLOCKS = (3, 4, 6, 3)  # ResNet-34's blocks per stage


def check_resnet34(widths=WIDTHS, blocks=BLOCKS, stem_width=16, nonlinear=True, **_dataset_options) -> None:
    if not (len(widths) == 4 and all(w >= 1 for w in widths)):
        raise ConfigError("model.widths", widths, "a list of 4 positive channel counts (one per stage)")
    if not (len(blocks) == 4 and all(b >= 1 for b in blocks)):
        raise ConfigError("model.blocks", blocks, "a list of 4 integers >= 1 (separable residual blocks per stage)")
    if stem_width < 1:
        raise ConfigError("model.stem_width", stem_width, "a positive channel count")


class ProjectedSeparableBlock(nn.Module):
    """Full pre-activation block of two separable 3 x 3 convolutions; a strided or widening one maps
    its identity with a 1 x 1 convolution (stride 2) of the pre-activated input, as He et al. 2016b."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, nonlinear: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.sep1 = separable3x3(in_channels, out_channels, stride, nonlinear)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.sep2 = separable3x3(out_channels, out_channels, 1, nonlinear)
        self.projection = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = self.sep2(F.relu(self.bn2(self.sep1(activated))))
        return out + (x if self.projection is None else self.projection(activated))


class CalliResNet34(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, widths: tuple, blocks: tuple, stem_width: int,
                 nonlinear: bool):
        super().__init__()
        s = stem_width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, s, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(s), nn.ReLU(inplace=True),
            nn.Conv2d(s, s, 3, padding=1, bias=False), nn.BatchNorm2d(s), nn.ReLU(inplace=True),
            nn.Conv2d(s, 2 * s, 3, padding=1, groups=s, bias=False), nn.BatchNorm2d(2 * s), nn.ReLU(inplace=True),
            # ceil_mode: an odd side (a small test image) keeps its last row instead of dropping it
            nn.MaxPool2d(2, 2, ceil_mode=True),
            nn.Conv2d(2 * s, widths[0], 1, bias=False))
        stages, previous = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            stride = 1 if index == 0 else 2
            stage = [ProjectedSeparableBlock(previous if b == 0 else width, width, stride if b == 0 else 1, nonlinear)
                     for b in range(count)]
            stages.append(nn.Sequential(*stage))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stages(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("calli_resnet34", family="calli", check=check_resnet34)
def calli_resnet34(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224,
                   widths: tuple[int, ...] = WIDTHS, blocks: tuple[int, ...] = BLOCKS, stem_width: int = 16,
                   nonlinear: bool = True) -> CalliResNet34:
    """Çallı's ImageNet model: ResNet-34 of separable residual blocks with cheaper input layers (Sec. 2.4.1)."""
    check_resnet34(widths, blocks, stem_width, nonlinear)
    return CalliResNet34(num_classes, in_channels, tuple(widths), tuple(blocks), stem_width, nonlinear)
