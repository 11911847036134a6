"""VGG-16 and VGG-19 (Simonyan & Zisserman 2014) as torchvision builds them, adapted to the dataset's input.

At 224x224 with 1,000 classes this is ``torchvision.models.vgg19_bn`` (``batch_norm: false``:
``vgg19``): 143,678,248 (143,667,240) parameters and 19.6 G MACs, Jin's 143.7M / 19.6B (Table
2.1); BN adds 11,008 parameters and no counted MACs, so both match. BN is on by default because
the thesis trains VGG-19 from scratch with He initialization and reaches 93.91 % on CIFAR-10,
which plain VGG-19 rarely does; set ``batch_norm: false`` for the original.

Small inputs (by default when image_size <= 64; our adaptation, the thesis does not give one):
the five 2x2 max-pools use ceil mode, so 28x28 MNIST passes them (28 -> 14 -> 7 -> 4 -> 2 -> 1)
where floor mode would reach 0, and the 7x7 adaptive average pool becomes 1x1, so the first
linear layer sees the 512 channels instead of 25,088 replicated values (the common CIFAR VGG).
All sixteen 3x3 convolutions and the three 4096-wide linear layers stay. Initialization is
torchvision's (He fan-out normal for convs, N(0, 0.01) for linear layers).
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..registry import MODELS
from .adapt import check_image_size, check_rounding, check_width, scale_channels, small_input_for
from .common import init_weights


def _vgg(depth: int, num_classes: int, in_channels: int, image_size: int, width: float,
         small_input: bool | None, batch_norm: bool, dropout: float, width_rounding: str = "exact") -> nn.Module:
    import torchvision  # here, not at the top: the driver's option checks import this module, not torchvision (2 s)

    name = f"vgg{depth}"
    width = check_width(width)
    check_rounding(width_rounding)
    small = small_input_for(small_input, image_size)
    if not 0 <= dropout < 1:
        raise ConfigError("model.dropout", dropout, "a probability in [0, 1) (torchvision's default 0.5)")
    if not small:
        check_image_size(image_size, 32, "five 2x2 max-pools; set small_input for smaller images")
    build = getattr(torchvision.models, f"{name}_bn" if batch_norm else name)
    model = build(num_classes=num_classes, dropout=float(dropout))
    stem = model.features[0]
    if in_channels != stem.in_channels:
        model.features[0] = nn.Conv2d(in_channels, stem.out_channels, 3, padding=1)
    if small:
        for index, layer in enumerate(model.features):
            if isinstance(layer, nn.MaxPool2d):
                model.features[index] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        model.classifier[0] = nn.Linear(512, 4096)
    scale_channels(model, width, stem="features.0", head="classifier.6", name=name, rounding=width_rounding)
    # the first linear layer reads the flattened (last conv channels) x pool area: with rounded widths
    # round(512 a) x 49 need not equal round(25,088 a), so its input follows the convs it reads
    last_conv = [m for m in model.features if isinstance(m, nn.Conv2d)][-1]
    pool = model.avgpool.output_size
    area = pool * pool if isinstance(pool, int) else pool[0] * pool[1]
    first = model.classifier[0]
    if first.in_features != last_conv.out_channels * area:
        model.classifier[0] = nn.Linear(last_conv.out_channels * area, first.out_features, bias=first.bias is not None)
    init_weights(model, zero_conv_bias=True, linear_std=0.01, zero_linear_bias=True)  # torchvision's VGG init
    return model


@MODELS.register("vgg19", family="vgg")
def vgg19(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
          small_input: bool | None = None, batch_norm: bool = True, dropout: float = 0.5) -> nn.Module:
    """VGG-19 (with BN by default) from torchvision; ceil-mode pools and 1x1 average pool for small inputs."""
    return _vgg(19, num_classes, in_channels, image_size, width, small_input, batch_norm, dropout)


@MODELS.register("vgg16", family="vgg")
def vgg16(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
          small_input: bool | None = None, batch_norm: bool = True, dropout: float = 0.5,
          width_rounding: str = "exact") -> nn.Module:
    """VGG-16 (13 convs + 3 linear; with BN by default) from torchvision, adapted as vgg19 is.

    At 224x224 / 1,000 classes: 138,357,544 parameters (vgg16) and 15.47 G MACs, torchvision's figures.
    ``width`` scales every conv and both hidden linear layers (4096 x width); ``width_rounding:
    nearest`` rounds non-whole widths (Pöllot et al.'s α = √0.5) to the nearest channel
    (harness.models.adapt), the default ``exact`` rejects them.
    """
    return _vgg(16, num_classes, in_channels, image_size, width, small_input, batch_norm, dropout, width_rounding)
