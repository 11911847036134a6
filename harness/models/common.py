"""Scaffolding the model families share: the channel-rounding rule, stages of blocks, weight init.

``round_channels`` is the one rounding rule for a width multiplier: ``channels x width`` to the
nearest whole channel, halves up (resnet_cifar, wrn, digits_cnn, Zheng's models and
``scale_channels(rounding="nearest")``). A width that rounds a layer to no channel is refused
(``keep_channels``): clamped to 1, every width below it would build the same 1-channel net,
recorded under a width it does not have. Halves up, not Python's round (half to even, which
resnet_cifar, digits_cnn and Zheng's models used before): no width a sweep uses lands on a half
channel, and where one does, as resnet20's 16 x 5/32 = 2.5, it gives 3 channels, not 2.

``make_stages`` builds the loop of He et al.'s CIFAR ResNets that WRN and Çallı's separable
residual model share: stages of blocks, the first block of every stage but the first strides 2
and changes the width. ``init_weights`` is the He-normal initialization the families apply after
building, with each family's choices for biases and linear layers as arguments (Inception-v3
keeps torchvision's own: fan-in convs and a truncated-normal linear layer).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional, Sequence

from torch import nn

from ..errors import ConfigError


def round_channels(channels: int, width: float) -> int:
    """``channels x width`` rounded to the nearest whole channel, halves up; ConfigError where that is
    no channel. The error names this count's smallest width: the families round their narrowest
    count first, and ``scale_channels`` calls ``keep_channels`` on all of its layers before any."""
    keep_channels(width, [channels])
    return math.floor(channels * width + 0.5)


def keep_channels(width: float, channels: Iterable[int]) -> None:
    """ConfigError (``model.width``) unless every one of these channel counts keeps >= 1 channel at
    ``width``, naming the smallest width at which the narrowest does."""
    narrowest = min(channels)
    if math.floor(narrowest * width + 0.5) >= 1:
        return
    raise ConfigError("model.width", width, f"a width at which the narrowest layer ({narrowest} channels at "
                                            f"width 1) keeps >= 1 channel: >= {_smallest_width(narrowest)}")


def _smallest_width(channels: int) -> str:
    """The shortest decimal at or just above 0.5 / channels that keeps a channel once rounded: a
    value printed rounded down (0.0714 for 7 channels) would be refused when copied back."""
    exact = 0.5 / channels
    for digits in range(3, 18):
        text = f"{exact:.{digits}g}"
        if math.floor(channels * float(text) + 0.5) >= 1:
            return text
    return repr(exact)


def make_stages(block: Callable[..., nn.Module], in_channels: int, widths: Sequence[int],
                blocks_per_stage: int | Sequence[int], **block_options) -> list[nn.Sequential]:
    """One ``nn.Sequential`` of ``blocks_per_stage`` blocks per entry of ``widths``.

    Each block is ``block(in_channels, out_channels, stride, **block_options)``; the first block of
    every stage but the first has stride 2 (it halves the feature map where the width changes), the
    others stride 1. Blocks are built in order, so a seeded build draws its default weights in the
    order of the hand-written loop it replaces. The last stage's output width is ``widths[-1]``.
    ``blocks_per_stage`` is one count for every stage or one per stage (Çallı's 1 / 2 / 3).
    """
    counts = [blocks_per_stage] * len(widths) if isinstance(blocks_per_stage, int) else list(blocks_per_stage)
    stages, previous = [], in_channels
    for index, (channels, count) in enumerate(zip(widths, counts, strict=True)):
        blocks = []
        for block_index in range(count):
            stride = 2 if index > 0 and block_index == 0 else 1
            blocks.append(block(previous, channels, stride, **block_options))
            previous = channels
        stages.append(nn.Sequential(*blocks))
    return stages


def init_weights(model: nn.Module, *, mode: str = "fan_out", zero_conv_bias: bool = False,
                 linear_std: Optional[float] = None, zero_linear_bias: bool = False) -> nn.Module:
    """He-normal conv weights (``mode`` fan_out or fan_in, ReLU gain) and BN weight 1, bias 0, in place.

    ``zero_conv_bias`` zeroes conv biases (otherwise they keep torch's default); ``linear_std``
    draws linear weights from N(0, std) (torchvision's VGG and MobileNetV2: 0.01) and
    ``zero_linear_bias`` zeroes linear biases; otherwise linear layers keep torch's default. Modules
    are visited in ``model.modules()`` order, so a seeded build draws the same numbers every time.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if zero_conv_bias and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0, linear_std)
            if zero_linear_bias and m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
