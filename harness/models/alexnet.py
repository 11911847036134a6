"""AlexNet (Krizhevsky et al. 2012) as torchvision builds it, adapted to the dataset's input.

At 224x224 with 1,000 classes this is ``torchvision.models.alexnet`` unchanged: 61,100,840
parameters and 714 M MACs, the 61.1M / 715M of Jin's Table 2.1 (torchvision follows the "one
weird trick" single-GPU variant, 64-192-384-256-256 channels, no grouped convolutions).

Small inputs (``small_input``, by default when image_size <= 64; the thesis trains AlexNet on
MNIST and CIFAR-10 but does not give its adaptation, so this is ours): the 11x11 stem keeps its
kernel but takes stride 1 and padding 5, so a 32x32 image reaches the three 3x3/2 max-pools at
32 -> 15 -> 7 -> 3 instead of vanishing; the final 6x6 adaptive average pool becomes 1x1, so the
first linear layer sees the 256 channels rather than 9,216 replicated values. Kernel sizes, channel
widths and the three 4096-wide linear layers stay, so kernel-wise Max-Min keeps 2 of 121, 25 and 9
weights per kernel as at 224. Initialization is torch's default, as torchvision's (the thesis adds
no special scheme for AlexNet, Sec. 2.5). ``width`` multiplies every channel and hidden width.
"""
from __future__ import annotations

from torch import nn

from ..registry import MODELS
from .adapt import check_image_size, check_width, scale_channels, small_input_for


@MODELS.register("alexnet", family="alexnet")
def alexnet(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
            small_input: bool | None = None) -> nn.Module:
    """AlexNet from torchvision; stride-1 stem and 1x1 average pool for small inputs."""
    import torchvision  # here, not at the top: the driver's option checks import this module, not torchvision (2 s)

    width = check_width(width)
    small = small_input_for(small_input, image_size)
    # three 3x3/2 pools need 15 px after a stride-1 stem; torchvision's stride-4 stem needs 63
    check_image_size(image_size, 15 if small else 63, "AlexNet's three max-pools" +
                     (" after the stride-1 small-input stem" if small else "; set small_input for smaller images"))
    model = torchvision.models.alexnet(num_classes=num_classes)
    if small:
        model.features[0] = nn.Conv2d(in_channels, 64, kernel_size=11, stride=1, padding=5)
        model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        model.classifier[1] = nn.Linear(256, 4096)
    elif in_channels != 3:
        model.features[0] = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
    return scale_channels(model, width, stem="features.0", head="classifier.6", name="alexnet")
