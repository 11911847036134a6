"""MobileNetV2 (Sandler et al. 2018): torchvision's module, adapted to the dataset's input.

The body is ``torchvision.models.mobilenet_v2(num_classes=..., width_mult=width)`` unchanged
except for two strides. For small inputs (``small_input``, by default when image_size <= 64) the
common CIFAR adaptation is applied: the stem conv gets stride 1 and so does the first inverted
residual of the second bottleneck group (``features[2]``, 16->24 channels), so a 32x32 image
reaches the last conv at 4x4 instead of 1x1. Downsampling is then 8x instead of 32x.
The stem conv is also replaced when ``in_channels`` is not 3.

``width_rounding`` says how ``width`` applies: ``torchvision`` (the default) is torchvision's
``width_mult``, which rounds every width to a multiple of 8 and keeps the last conv at 1,280
channels below width 1 (as the MobileNetV2 paper does); ``nearest`` scales every conv, BN and the
classifier's input by ``width`` exactly, rounded to the nearest channel (harness.models.adapt), so
parameters and MACs scale about width², as Pöllot et al.'s α does.
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .adapt import scale_channels
from .common import init_weights

SMALL_INPUT_MAX_SIZE = 64  # images up to this side count as "small" (CIFAR, SVHN, MNIST, ...)


@MODELS.register("mobilenetv2", family="mobilenet")
def mobilenetv2(num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                width: float = 1.0, small_input: bool | None = None,
                width_rounding: str = "torchvision") -> nn.Module:
    """MobileNetV2 from torchvision; stem and features[2] strides 1 for small inputs."""
    import torchvision  # here, not at the top: the driver's option checks import this module, not torchvision (2 s)

    if not width > 0:
        raise ConfigError("model.width", width, "a number > 0 (torchvision's width_mult)")
    if width_rounding not in ("torchvision", "nearest"):
        raise ConfigError("model.width_rounding", width_rounding,
                          "torchvision (width_mult: multiples of 8, last conv >= 1280) or nearest "
                          "(every layer x width)")
    if small_input is None:
        small_input = image_size <= SMALL_INPUT_MAX_SIZE

    exact = width_rounding == "nearest"
    model = torchvision.models.mobilenet_v2(num_classes=num_classes, width_mult=1.0 if exact else float(width))
    stem = model.features[0][0]
    if small_input or in_channels != stem.in_channels:
        new_stem = nn.Conv2d(in_channels, stem.out_channels, 3, stride=1 if small_input else 2,
                             padding=1, bias=False)
        # Same init torchvision gives its convs.
        nn.init.kaiming_normal_(new_stem.weight, mode="fan_out")
        model.features[0][0] = new_stem
    if small_input:
        second_group = model.features[2]
        second_group.conv[1][0].stride = (1, 1)  # the depthwise conv carries the block's stride
        second_group.stride = 1
    if exact and width != 1.0:
        scale_channels(model, float(width), stem="features.0.0", head="classifier.1", name="mobilenetv2",
                       rounding="nearest")
        # torchvision's MobileNetV2 initialization, on the new layers
        init_weights(model, zero_conv_bias=True, linear_std=0.01, zero_linear_bias=True)
    return model
