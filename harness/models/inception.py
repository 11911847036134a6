"""Inception-v3 (Szegedy et al. 2016) as torchvision builds it, adapted to the dataset's input.

``torchvision.models.inception_v3`` without the auxiliary classifier: 23,834,568 parameters with
1,000 classes, Jin's 23.8M (Table 2.1; with the auxiliary head it would be 27.2M). The head is
left out everywhere: it needs 17x17 maps, and training returns plain logits. MACs: 2.84 G at
224x224, 5.71 G at the model's own 299x299; Jin's Table 2.1 prints 6.4B dense and 2.4B sparse "at
224x224", and only the sparse figure is met, by ours at 299 (analysis/jin_counts.py).

Small inputs (by default when image_size <= 64; our adaptation, the thesis does not give one):
the stem's stride-2 3x3 conv takes stride 1, its unpadded 3x3 convs get padding 1, and its two
3x3/2 max-pools get padding 1, so a 28x28 image reaches the Mixed_5 blocks at 7x7, Mixed_6 at 3x3
and Mixed_7 at 1x1 (at 299 px: 35, 17, 8). All blocks, including the 1x7/7x1 and 1x3/3x1
factorized convolutions, stay. The thesis names Inception-v3 among its He-initialized models
(Sec. 2.5), so convolutions are He fan-in normal here (torchvision draws N(0, 0.1) truncated);
the linear layer keeps torchvision's truncated normal.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS
from .adapt import check_image_size, check_width, scale_channels, small_input_for


@MODELS.register("inception_v3", family="inception")
def inception_v3(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, width: float = 1.0,
                 small_input: bool | None = None) -> nn.Module:
    """Inception-v3 from torchvision without the auxiliary head; stride-1, padded stem for small inputs."""
    import torchvision  # here, not at the top: the driver's option checks import this module, not torchvision (2 s)

    width = check_width(width)
    small = small_input_for(small_input, image_size)
    # Mixed_6a and Mixed_7a are unpadded 3x3/2 reductions: Mixed_5 must see at least 7x7
    check_image_size(image_size, 25 if small else 75, "Inception-v3's two stride-2 reductions need 7x7 maps "
                     "after the stem" + ("" if small else "; set small_input for smaller images"))
    model = torchvision.models.inception_v3(num_classes=num_classes, aux_logits=False, init_weights=False,
                                            transform_input=False)
    stem = model.Conv2d_1a_3x3.conv
    if in_channels != 3 or small:
        model.Conv2d_1a_3x3.conv = nn.Conv2d(in_channels, stem.out_channels, 3, stride=1 if small else 2,
                                             padding=1 if small else 0, bias=False)
    if small:
        model.Conv2d_2a_3x3.conv.padding = (1, 1)
        model.Conv2d_4a_3x3.conv.padding = (1, 1)
        model.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        model.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    scale_channels(model, width, stem="Conv2d_1a_3x3.conv", head="fc", name="inception_v3")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            torch.nn.init.trunc_normal_(m.weight, mean=0.0, std=0.1, a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return model
