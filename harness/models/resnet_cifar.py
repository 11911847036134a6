"""CIFAR ResNets (He et al. 2016, Sec. 4.2): resnet20, resnet32, resnet56.

Three stages of n basic blocks on 16/32/64 channels (6n+2 weighted layers), global average
pooling and one linear layer. Shortcuts are option A, as in the paper's CIFAR experiments: the
identity, subsampled by stride 2 and zero-padded in channels where a stage starts, so the
shortcuts add no parameters. With 10 classes resnet20/32/56 have 269,722 / 464,154 / 853,018
parameters; ``tests/test_models.py`` derives these by hand. ``width`` multiplies 16/32/64, each
rounded to the nearest channel (halves up, never to 0: harness.models.common.round_channels).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .common import init_weights, make_stages, round_channels

STAGE_CHANNELS = (16, 32, 64)  # at width 1.0, as in the paper


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a parameter-free (option A) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.pad_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1:
            # x[::2] keeps ceil(H/2) rows, the same size a stride-2 conv with padding 1 gives.
            shortcut = shortcut[:, :, :: self.stride, :: self.stride]
        if self.pad_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad_channels))
        return F.relu(out + shortcut)


class ResNetCifar(nn.Module):
    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int, width: float):
        super().__init__()
        channels = [round_channels(c, width) for c in STAGE_CHANNELS]
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.layer1, self.layer2, self.layer3 = make_stages(BasicBlock, channels[0], channels, blocks_per_stage)
        self.fc = nn.Linear(channels[-1], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _resnet(blocks_per_stage: int, num_classes: int, in_channels: int, width: float) -> ResNetCifar:
    if not width > 0:
        raise ConfigError("model.width", width, "a number > 0 (channel multiplier on 16/32/64)")
    return ResNetCifar(blocks_per_stage, num_classes, in_channels, float(width))


@MODELS.register("resnet20", family="resnet_cifar")
def resnet20(num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
             width: float = 1.0) -> ResNetCifar:
    """ResNet-20 for CIFAR (3 stages x 3 basic blocks, option A shortcuts)."""
    return _resnet(3, num_classes, in_channels, width)


@MODELS.register("resnet32", family="resnet_cifar")
def resnet32(num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
             width: float = 1.0) -> ResNetCifar:
    """ResNet-32 for CIFAR (3 stages x 5 basic blocks, option A shortcuts)."""
    return _resnet(5, num_classes, in_channels, width)


@MODELS.register("resnet56", family="resnet_cifar")
def resnet56(num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
             width: float = 1.0) -> ResNetCifar:
    """ResNet-56 for CIFAR (3 stages x 9 basic blocks, option A shortcuts)."""
    return _resnet(9, num_classes, in_channels, width)
