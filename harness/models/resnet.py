"""ResNet-18 and ResNet-50 (He et al. 2016) as torchvision builds them, adapted to the dataset's input.

At 224x224 with 1,000 classes these are ``torchvision.models.resnet18`` / ``resnet50``:
11,689,512 / 25,557,032 parameters and 1.82 G / 4.09 G MACs. (Jin's Table 2.1 lists 11.5M / 1.8B
and 22.7M / 3.8B; the report on Table 2.1 sets the two side by side.) For the CIFAR ResNets of
the other papers see ``resnet_cifar`` (resnet20/32/56).

Small inputs (by default when image_size <= 64; the common CIFAR adaptation, the thesis does not
give its own): the 7x7/2 stem becomes a 3x3/1 conv and the stem max-pool is dropped, so a 32x32
image reaches the four stages at 32, 16, 8, 4. Initialization is torchvision's (He fan-out
normal for convs, BN weight 1 and bias 0).
"""
from __future__ import annotations

from torch import nn

from ..registry import MODELS
from .adapt import check_width, scale_channels, small_input_for
from .common import init_weights


def _resnet(build, num_classes: int, in_channels: int, image_size: int, width, small_input) -> nn.Module:
    width = check_width(width)
    small = small_input_for(small_input, image_size)
    model = build(num_classes=num_classes)
    if small:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    scale_channels(model, width, stem="conv1", head="fc", name=build.__name__)
    return init_weights(model)


@MODELS.register("resnet18", family="resnet")
def resnet18(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
             small_input: bool | None = None) -> nn.Module:
    """ResNet-18 from torchvision; 3x3 stride-1 stem without max-pool for small inputs."""
    import torchvision  # here, not at the top: the driver's option checks import this module, not torchvision (2 s)

    return _resnet(torchvision.models.resnet18, num_classes, in_channels, image_size, width, small_input)


@MODELS.register("resnet50", family="resnet")
def resnet50(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
             small_input: bool | None = None) -> nn.Module:
    """ResNet-50 from torchvision; 3x3 stride-1 stem without max-pool for small inputs."""
    import torchvision  # see resnet18

    return _resnet(torchvision.models.resnet50, num_classes, in_channels, image_size, width, small_input)
