"""Model zoo: ``build(name, **options)`` returns an ``nn.Module`` from the MODELS registry.

Every builder takes ``num_classes``, ``in_channels`` and ``image_size`` (so a dataset can adapt
any model to its images) plus its own options, all with defaults and annotated with their types:
``check_options`` checks an option's type against its annotation (harness.errors.coerce) and the
builder, or the family's registered ``check``, its range. ``describe(name)`` lists them.
Importing this package imports every family module, which registers its models.
"""
from __future__ import annotations

import inspect
from typing import Optional

import torch

from torch import nn

from .. import layers
from ..errors import ConfigError, coerce, option_types
from ..registry import CONVS, MODELS
from . import mobilenet, resnet_cifar, small_cnn  # noqa: F401  (importing registers the models)
from . import alexnet, inception, resnet, vgg  # noqa: F401  (Jin's five ImageNet architectures)
from . import crnet  # noqa: F401  (Jiang's CRnet-CB and CRnet-CIB)
from . import ensemble, wrn  # noqa: F401  (Pöllot et al.: WRN-28-10 and ensembles of slim networks)

DATASET_OPTIONS = ("num_classes", "in_channels", "image_size")
COMMON_OPTIONS = {"conv": "dense", "conv_options": None}  # every model: see harness.layers
COMMON_TYPES = {"conv": str, "conv_options": Optional[dict]}


def names() -> list[str]:
    return MODELS.names()


def _signature(name: str) -> inspect.Signature:
    return inspect.signature(MODELS.get(name))


def describe(name: str) -> dict:
    """{"name", "family", "summary": first docstring line, "options": {option: default}, "origin":
    built-in, or the plugin that registered it}."""
    builder = MODELS.get(name)
    doc = inspect.getdoc(builder) or ""
    return {
        "name": name,
        "family": MODELS.meta(name).get("family"),
        "summary": doc.splitlines()[0] if doc else "",
        "options": {**{key: param.default for key, param in _signature(name).parameters.items()},
                    **COMMON_OPTIONS},
        "origin": MODELS.origin(name),
    }


def check_options(name: str, options: dict, _deep: bool = True) -> None:
    """Raise ConfigError for an unknown model or option (building, if at all, on the meta device only)."""
    types = {**option_types(MODELS.get(name))[0], **COMMON_TYPES}
    for option, value in options.items():
        if option not in types:
            raise ConfigError(f"model.{option}", value, "one of " + ", ".join(types))
        coerce(f"model.{option}", value, types[option], strict=True)
    if "conv" in options:
        CONVS.get(options["conv"])
    layers.probe(options.get("conv", "dense"), options.get("conv_options"))  # a variant's options: ConfigError now
    check = MODELS.meta(name).get("check")  # a family's value checks, e.g. channels a group count must divide
    if check is not None:
        check(**{k: v for k, v in options.items() if k not in COMMON_OPTIONS})
    if _deep and options.get("conv", "dense") != "dense" and options.get("conv_options"):
        # options that depend on the layers themselves (winograd's strict: every conv 3x3 stride 1)
        # are checked against the whole model, built on the meta device: shapes only, no RNG drawn
        with torch.device("meta"):
            build(name, _checked=True, **options)


def build(name: str, _checked: bool = False, **options) -> nn.Module:
    """Build a registered model; unknown names and options raise ConfigError."""
    if not _checked:
        check_options(name, options, _deep=False)
    for option in DATASET_OPTIONS:  # typed by every builder's annotations; checked above unless _checked
        if option in options and not options[option] > 0:
            raise ConfigError(f"model.{option}", options[option], "a positive integer")
    conv = options.pop("conv", "dense")
    conv_options = options.pop("conv_options", None)
    model = MODELS.get(name)(**options)
    return model if conv == "dense" else layers.convert_convs(model, conv, conv_options)
from . import calli, calli_resnet  # noqa: F401  (Çallı's conv baseline, separable residual CIFAR-10 and ImageNet models)
from . import zheng  # noqa: F401  (Zheng et al.: AlexNet for 28x28, ConvPool-CNN-C, All-CNN-C, the SC-CNN stack)
