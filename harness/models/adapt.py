"""Shared adaptations of torchvision's ImageNet models: input channels, small inputs, a width multiplier.

``scale_channels`` multiplies every conv, BN and hidden linear width by ``width`` (the stem keeps
the image's channels, the classifier its classes). By default (``rounding="exact"``) it requires
every scaled width to be whole, so that concatenated branches (Inception) still add up: 0.5, 0.25
and 0.125 work for all five of Jin's models. ``rounding="nearest"`` instead rounds each width to
the nearest whole channel (halves up; a width that leaves a layer none is refused, naming the
narrowest): Pöllot et al.'s α = √0.5 gives no whole widths
(64 x 0.7071 = 45.25 -> 45); use it only for plain chains, where each layer's input is the previous
layer's output (VGG, MobileNetV2), since rounded concatenated branches need not add up to the
rounded width of what follows. A depthwise conv (groups = in = out channels) stays depthwise.
The families say what "small input" changes for each.
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .common import keep_channels, round_channels

SMALL_INPUT_MAX_SIZE = 64  # images up to this side count as small (MNIST, CIFAR), as for mobilenetv2


def check_width(width: float) -> float:
    """The range of a builder's ``width`` option; its type is the builder's annotation (float)."""
    if not width > 0:
        raise ConfigError("model.width", width, "a number > 0 (channel multiplier, e.g. 1, 0.5, 0.25, 0.125)")
    return float(width)


def small_input_for(small_input: bool | None, image_size: int) -> bool:
    """A builder's ``small_input`` option (typed bool | None by its annotation), None: automatic."""
    return image_size <= SMALL_INPUT_MAX_SIZE if small_input is None else small_input


def check_image_size(image_size: int, minimum: int, why: str) -> None:
    if image_size < minimum:
        raise ConfigError("model.image_size", image_size, f"an integer >= {minimum} ({why})")


ROUNDINGS = ("exact", "nearest")  # scale_channels' rounding choices, see the module docstring


def check_rounding(rounding, key: str = "model.width_rounding") -> str:
    if rounding not in ROUNDINGS:
        raise ConfigError(key, rounding, "exact (every scaled width must be whole) or nearest "
                                         "(round half up, >= 1 channel each)")
    return rounding


def _scaled(channels: int, width: float, model: str, rounding: str = "exact") -> int:
    if rounding == "nearest":
        return round_channels(channels, width)
    value = channels * width
    if value < 1 or abs(value - round(value)) > 1e-9:
        raise ConfigError("model.width", width, f"a multiplier that keeps each of {model}'s channel counts whole "
                                                f"and >= 1 ({channels} x {width:g} is not), e.g. 0.5, 0.25, 0.125")
    return int(round(value))


def _scaled_counts(fqn: str, module: nn.Module, stem: str, head: str) -> list[int]:
    """The channel counts of ``module`` that ``scale_channels`` scales."""
    if isinstance(module, nn.Conv2d):
        return [module.out_channels] + ([] if fqn == stem else [module.in_channels])
    if isinstance(module, nn.BatchNorm2d):
        return [module.num_features]
    if isinstance(module, nn.Linear):
        return [module.in_features] + ([] if fqn == head else [module.out_features])
    return []


def scale_channels(model: nn.Module, width: float, stem: str, head: str, name: str,
                   rounding: str = "exact") -> nn.Module:
    """Replace every Conv2d, BatchNorm2d and Linear by one ``width`` times as wide, in place.

    ``stem`` (the first conv's qualified name) keeps its input channels and ``head`` (the last
    linear) its outputs. ``rounding`` is "exact" or "nearest" (module docstring). The new layers
    have torch's default initialization: re-initialize after.
    """
    if width == 1.0:
        return model
    check_rounding(rounding)
    if rounding == "nearest":  # refused before any layer is replaced, naming the narrowest layer, not the first
        keep_channels(width, [n for fqn, m in model.named_modules() for n in _scaled_counts(fqn, m, stem, head)])
    replacements = {}
    for fqn, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            in_channels = module.in_channels if fqn == stem else _scaled(module.in_channels, width, name, rounding)
            out_channels = _scaled(module.out_channels, width, name, rounding)
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            replacements[fqn] = nn.Conv2d(in_channels, out_channels, module.kernel_size,
                                          stride=module.stride, padding=module.padding, dilation=module.dilation,
                                          groups=out_channels if depthwise else module.groups,
                                          bias=module.bias is not None)
        elif isinstance(module, nn.BatchNorm2d):
            replacements[fqn] = nn.BatchNorm2d(_scaled(module.num_features, width, name, rounding), eps=module.eps,
                                               momentum=module.momentum)
        elif isinstance(module, nn.Linear):
            out_features = module.out_features if fqn == head else _scaled(module.out_features, width, name, rounding)
            replacements[fqn] = nn.Linear(_scaled(module.in_features, width, name, rounding), out_features,
                                          bias=module.bias is not None)
    for fqn, replacement in replacements.items():
        parent_name, _, child = fqn.rpartition(".")
        setattr(model.get_submodule(parent_name), child, replacement)
    return model
