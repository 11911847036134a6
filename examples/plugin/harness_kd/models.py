"""tiny_cnn: the student of the example, a two-conv CNN that trains on 8x8 digits in seconds.

conv3x3(channels)-BN-ReLU, conv3x3(2 x channels)-BN-ReLU, global average pool, linear. At the
default 8 channels it has 1,442 parameters (digits_cnn at width 0.5, the example's teacher: 24,058).
"""
from __future__ import annotations

from torch import nn

from harness.errors import ConfigError
from harness.registry import MODELS


@MODELS.register("tiny_cnn", family="harness_kd")
def tiny_cnn(num_classes: int = 10, in_channels: int = 1, image_size: int = 8, channels: int = 8) -> nn.Module:
    """Two-conv CNN for 8x8 digits (``channels``: the first conv's output channels, the second's twice that)."""
    if channels < 1:  # the annotation types it; its range is the builder's to check (before Ray starts)
        raise ConfigError("model.channels", channels, "an int >= 1 (the first conv's output channels)")
    wide = 2 * channels
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        nn.Conv2d(channels, wide, 3, padding=1, bias=False), nn.BatchNorm2d(wide), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(wide, num_classes))
