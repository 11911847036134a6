"""Çallı's convolution alternatives (thesis Sec. 2.3), as `conv` options of every model.

  kernel_composing     a K x K convolution becomes 1 x K (C_in -> n) + bias + ReLU + K x 1 (n -> C_out)
                       (DecomposeMe, Sec. 2.3.1); n = ``mid_channels``, by default C_out
  separable            depthwise K x K (C_in -> C_in, no bias) + pointwise 1 x 1 (C_in -> C_out)
                       (Sec. 2.3.2)
  separable_nonlinear  depthwise + BN + ReLU + pointwise (Sec. 2.3.3, after MobileNets)

Each returns a replacement for one ``nn.Conv2d`` and keeps (returns None for) convolutions where
the alternative saves nothing or is undefined: 1 x 1 kernels, grouped convolutions, dilation, and
convolutions with fewer than ``min_in_channels`` input channels. The thesis keeps the first
convolution (3 input channels, Sec. 2.3.4: "using an alternative operation does not reduce the
computational cost in case of 3 input channels", and RGB channels are not independent, Sec. 2.4.1),
hence the default 4. Stride and padding of the original are kept: kernel composing strides
width-wise in the 1 x K and height-wise in the K x 1 convolution, the separable variants stride in
the depthwise convolution ("we apply strides in the first depthwise convolution", Sec. 2.4.1); the
output shape equals the original's. The original's bias (if any) goes to the last convolution.

MACs per output position (H_out x W_out), the counts ``tests/test_calli_layers.py`` derives by hand:
  dense               K^2 C_in C_out
  kernel_composing    K C_in n (at the 1 x K's output size) + K n C_out      (Sec. 2.3.1: O(K n (C_in + C_out)))
  separable(_nl)      K^2 C_in + C_in C_out                                  (Sec. 2.3.2: O(C_in (C_out + K^2)))
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..errors import ConfigError
from ..registry import CONVS


def _positive_int(key: str, value: int, valid: str):  # typed by the variant's annotations
    if value < 1:
        raise ConfigError(key, value, valid)


def _replaceable(conv: nn.Conv2d, min_in_channels: int) -> bool:
    _positive_int("model.conv_options.min_in_channels", min_in_channels,
                  "an integer >= 1 (convolutions with fewer input channels stay dense)")
    kh, kw = conv.kernel_size
    return (kh * kw > 1 and conv.groups == 1 and conv.dilation == (1, 1) and isinstance(conv.padding, tuple)
            and conv.in_channels >= min_in_channels)


def _like(template: nn.Conv2d, module: nn.Module) -> nn.Module:
    return module.to(device=template.weight.device, dtype=template.weight.dtype)


class KernelComposing(nn.Sequential):
    """1 x K conv (C_in -> n, bias), ReLU, K x 1 conv (n -> C_out): a learned rank-n separable kernel."""

    def __init__(self, conv: nn.Conv2d, mid_channels: int):
        (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
        row = nn.Conv2d(conv.in_channels, mid_channels, (1, kw), stride=(1, sw), padding=(0, pw), bias=True,
                        padding_mode=conv.padding_mode)
        column = nn.Conv2d(mid_channels, conv.out_channels, (kh, 1), stride=(sh, 1), padding=(ph, 0),
                           bias=conv.bias is not None, padding_mode=conv.padding_mode)
        super().__init__(OrderedDict(row=_like(conv, row), relu=nn.ReLU(), column=_like(conv, column)))


class Separable(nn.Sequential):
    """Depthwise K x K (stride, padding of the original; no bias), [BN, ReLU], pointwise 1 x 1."""

    def __init__(self, conv: nn.Conv2d, nonlinear: bool):
        depthwise = nn.Conv2d(conv.in_channels, conv.in_channels, conv.kernel_size, stride=conv.stride,
                              padding=conv.padding, groups=conv.in_channels, bias=False,
                              padding_mode=conv.padding_mode)
        pointwise = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=conv.bias is not None)
        parts = [("depthwise", _like(conv, depthwise))]
        if nonlinear:
            parts += [("bn", _like(conv, nn.BatchNorm2d(conv.in_channels))), ("relu", nn.ReLU())]
        parts.append(("pointwise", _like(conv, pointwise)))
        super().__init__(OrderedDict(parts))
        self.nonlinear = nonlinear

    def extra_repr(self) -> str:
        return f"nonlinear={self.nonlinear}"


@CONVS.register("kernel_composing")
def kernel_composing(conv: nn.Conv2d, mid_channels: int | None = None, min_in_channels: int = 4):
    """1xK + bias + ReLU + Kx1 (Çallı Sec. 2.3.1). Options: mid_channels (n, default C_out), min_in_channels (4)."""
    if mid_channels is not None:
        _positive_int("model.conv_options.mid_channels", mid_channels, "an integer >= 1 or null (= C_out)")
    if not _replaceable(conv, min_in_channels):
        return None
    return KernelComposing(conv, mid_channels or conv.out_channels)


@CONVS.register("separable")
def separable(conv: nn.Conv2d, min_in_channels: int = 4):
    """Depthwise + pointwise (Çallı Sec. 2.3.2). Options: min_in_channels (4: 3-channel input convs stay dense)."""
    return Separable(conv, nonlinear=False) if _replaceable(conv, min_in_channels) else None


@CONVS.register("separable_nonlinear")
def separable_nonlinear(conv: nn.Conv2d, min_in_channels: int = 4):
    """Depthwise + BN + ReLU + pointwise (Çallı Sec. 2.3.3). Options: min_in_channels (4)."""
    return Separable(conv, nonlinear=True) if _replaceable(conv, min_in_channels) else None


VARIANTS = ("kernel_composing", "separable", "separable_nonlinear")
