"""digits_cnn: a small CNN for sklearn's 8x8 digits and MNIST-sized images.

conv3x3(32)-BN-ReLU, conv3x3(64)-BN-ReLU, maxpool 2x2, conv3x3(128)-BN-ReLU, global average
pool, linear. Global pooling makes it independent of the image size (any side >= 2).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .common import init_weights, round_channels

BASE_CHANNELS = (32, 64, 128)  # at width 1.0


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: float):
        super().__init__()
        c1, c2, c3 = (round_channels(c, width) for c in BASE_CHANNELS)
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, c1),
            conv_bn_relu(c1, c2),
            nn.MaxPool2d(2),
            conv_bn_relu(c2, c3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(c3, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@MODELS.register("digits_cnn", family="small_cnn")
def digits_cnn(num_classes: int = 10, in_channels: int = 1, image_size: int = 8,
               width: float = 1.0) -> DigitsCNN:
    """Small 3-conv CNN for 8x8 digits and MNIST-sized images."""
    if not width > 0:
        raise ConfigError("model.width", width, "a number > 0 (multiplier on 32/64/128 channels)")
    if image_size < 2:
        raise ConfigError("model.image_size", image_size, "an integer >= 2 (one 2x2 max-pool)")
    return DigitsCNN(num_classes, in_channels, float(width))
