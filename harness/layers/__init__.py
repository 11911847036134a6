"""Reusable layers, and the `conv` option: swap every nn.Conv2d of a built model for a variant.

A variant registers ``@CONVS.register("name")`` on a function ``(conv: nn.Conv2d, **conv_options)
-> nn.Module | None`` that returns the replacement for one convolution, or None to keep it (a
Winograd variant keeps non-3x3 convolutions, say). ``models.build(name, conv=..., conv_options=...)``
applies it to every model, so a sweep axis ``model.options.conv`` switches kernels.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import call_with_options
from ..registry import CONVS


@CONVS.register("dense")
def _dense(conv: nn.Conv2d):
    """The model as built: standard dense convolutions."""
    return None


def convert_convs(model: nn.Module, conv: str, conv_options: dict | None = None) -> nn.Module:
    """Replace, in place, each nn.Conv2d of ``model`` by what the ``conv`` variant returns for it."""
    make = CONVS.get(conv)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                replacement = call_with_options(make, conv_options or {}, "model.conv_options", f"conv {conv}", child)
                if replacement is not None:
                    setattr(parent, child_name, replacement)
    return model


def probe(conv: str, conv_options: dict | None = None) -> nn.Module:
    """One 4->4 3x3 convolution as ``conv`` converts it, on the meta device (nothing allocated, no RNG
    drawn): what a check needs to see a variant's options refused, or what kind of layer it makes."""
    with torch.device("meta"):
        return convert_convs(nn.Sequential(nn.Conv2d(4, 4, 3)), conv, conv_options)


from . import maxmin  # noqa: E402,F401  (registers the Max-Min conv variants)
from . import separable  # noqa: E402,F401  (registers Çallı's kernel-composing and separable conv variants)
from . import winograd  # noqa: E402,F401  (registers the Winograd F(2x2,3x3) conv variants of Zheng et al.)
