"""ResNet-18 and ResNet-50 (He et al. 2016) as torchvision builds them, adapted to the dataset's input.

At 224x224 with 1,000 classes these are ``torchvision.models.resnet18`` / ``resnet50``:
11,689,512 / 25,557,032 parameters and 1.81 G / 4.09 G MACs. Two options give the variants Jin's
Table 2.1 is compared against (analysis/jin_counts.py; docs/fidelity.md):

- ``shortcut: zero_pad``: He et al.'s option A shortcut where a block changes width or stride:
  the input subsampled by the stride and zero-filled up to the block's output channels, no
  parameters, in place of torchvision's 1x1 conv + BN projection (option B). ResNet-18 then has
  11,515,688 parameters (the 1x1 projections and their BNs hold 8,448 + 33,280 + 132,096),
  Jin's 11.5M, and 1.79 G MACs.
- ``stride_at: 1x1`` (resnet50): the stride-2 of a stage's first bottleneck on its first 1x1
  conv, as in He et al.'s original (Caffe) model, instead of on the 3x3 conv (torchvision's,
  "ResNet v1.5"); 3.86 G MACs instead of 4.09 G at 224x224.

Small inputs (by default when image_size <= 64; the common CIFAR adaptation, the thesis does not
give its own): the 7x7/2 stem becomes a 3x3/1 conv and the stem max-pool is dropped, so a 32x32
image reaches the four stages at 32, 16, 8, 4. Initialization is torchvision's (He fan-out
normal for convs, BN weight 1 and bias 0).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .adapt import check_width, scale_channels, small_input_for
from .common import init_weights

SHORTCUTS = ("projection", "zero_pad")
STRIDES_AT = ("3x3", "1x1")


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A: the input subsampled by ``stride``, zero channels appended up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"

    def forward(self, x):
        # x[::2] keeps ceil(H / 2) rows, the size the block's padded stride-2 3x3 (or 1x1) conv gives
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))


def _check(shortcut: str, stride_at: str) -> None:
    if shortcut not in SHORTCUTS:
        raise ConfigError("model.shortcut", shortcut, "projection (torchvision's 1x1 conv + BN, He et al.'s "
                          "option B) or zero_pad (option A: subsample and zero-fill, no parameters)")
    if stride_at not in STRIDES_AT:
        raise ConfigError("model.stride_at", stride_at, "3x3 (torchvision, 'v1.5') or 1x1 (He et al.'s original)")


def _resnet(build, num_classes: int, in_channels: int, image_size: int, width, small_input,
            shortcut: str = "projection", stride_at: str = "3x3") -> nn.Module:
    width = check_width(width)
    _check(shortcut, stride_at)
    small = small_input_for(small_input, image_size)
    model = build(num_classes=num_classes)
    if small:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    scale_channels(model, width, stem="conv1", head="fc", name=build.__name__)
    blocks = [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]
    for block in blocks:
        if block.downsample is None:
            continue
        if stride_at == "1x1":  # only bottlenecks take it (resnet50's builder is the only one offering it)
            block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
        if shortcut == "zero_pad":
            projection = block.downsample[0]
            block.downsample = ZeroPadShortcut(projection.in_channels, projection.out_channels, projection.stride[0])
    return init_weights(model)


@MODELS.register("resnet18", family="resnet")
def resnet18(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
             small_input: bool | None = None, shortcut: str = "projection") -> nn.Module:
    """ResNet-18 from torchvision; 3x3 stride-1 stem without max-pool for small inputs."""
    import torchvision  # here, not at the top: the driver's option checks import this module, not torchvision (2 s)

    return _resnet(torchvision.models.resnet18, num_classes, in_channels, image_size, width, small_input, shortcut)


@MODELS.register("resnet50", family="resnet")
def resnet50(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
             small_input: bool | None = None, shortcut: str = "projection", stride_at: str = "3x3") -> nn.Module:
    """ResNet-50 from torchvision; 3x3 stride-1 stem without max-pool for small inputs."""
    import torchvision  # see resnet18

    return _resnet(torchvision.models.resnet50, num_classes, in_channels, image_size, width, small_input,
                   shortcut, stride_at)
