"""Max-Min sparse and binary kernels (Jin 2018), as `conv` options of every model.

Each kernel is a ``torch.nn.utils.parametrize`` parametrization of a convolution's dense weight,
re-derived at every forward; the dense weight stays the trained parameter:

  KernelMaxMin       Algorithm 1: each group (a k x k kernel, or for a 1x1 layer an output
                     channel's input channels, Sec. 3.5) keeps its maximum and minimum and zeros
                     the rest. The forward and backward passes see only those two elements and the
                     gradient reaches exactly them in the dense weight; after the step another
                     element may become extremal.
  KernelBinaryHeuristic  Algorithm 2: ±(max - min) at the two extremal positions (+ at the max).
  KernelBinaryApprox     Algorithm 3: sign(W̃) α* with α* = ½‖W̃‖₁ = ½(|max| + |min|) (eq. 3.5).

and the conv option values they provide (``models.build(name, conv=..., conv_options=...)``):

  maxmin                     every conv with more than two kernel elements kernel-wise 2-sparse;
                             1x1 convs dense as in the thesis (Sec. 2.5) or, with
                             ``pointwise: channel``, channel-wise 2-sparse
  binary_heuristic,          every conv with at least two kernel elements binary 2-sparse;
  binary_approx              1x1 convs dense
  local_binary_heuristic,    every ungrouped conv with at least two kernel elements becomes a
  local_binary_approx        binary 2-sparse conv into ``width`` internal channels (256 as in
                             LBCNN and the thesis), a ReLU, and a full-precision 1x1 conv to the
                             original outputs (Sec. 3.4), channel-wise 2-sparse with
                             ``channel_sparse: true`` (Sec. 3.5)

Options common to all: ``init: scaled`` (default) draws the dense weight from He's normal
initialization scaled by ``harness.methods.maxmin.variance_factor`` (eqs. 2.8, 3.4, 3.9; fan-in
as in He's forward derivation, eq. 2.1); ``init: model`` keeps the model's own initialization
(the thesis does so for AlexNet, Sec. 2.5).

Each parametrization declares what its layer really costs (``op_counts``, read by
``harness.measure.profile``): nonzero parameters (two per group when sparse; one full-precision
α per group when binary), full-precision multiplications as ``macs`` (two per group and output
position when sparse; one, the α, when binary) and ``binary_adds`` (two signed additions per
group and output position). A dense-hardware convolution still runs the whole zero-filled kernel:
see ``harness.latency``.

Reading of the update (Algorithm 1 is plain SGD): the gradient reaches only the extremal
elements; an optimizer's momentum and weight decay act on the whole stored tensor as they do for
any parameter, so with them a non-extremal element still decays and a formerly extremal one
coasts on its momentum. ``train.momentum=0 train.weight_decay=0`` gives the literal update.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from ..methods.maxmin import he_std, variance_factor_for
from ..registry import CONVS

INITS = ("scaled", "model")
POINTWISE = ("dense", "channel")
DEFAULT_WIDTH = 256  # LBCNN's internal width for AlexNet, used by the thesis (Sec. 3.4)


def _groups(weight: torch.Tensor, group: str) -> torch.Tensor:
    """(groups, elements): one row per k x k kernel, or per output channel (channel-wise)."""
    return weight.reshape(weight.shape[0] * weight.shape[1], -1) if group == "kernel" \
        else weight.reshape(weight.shape[0], -1)


def _extremes(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return flat.argmax(dim=1, keepdim=True), flat.argmin(dim=1, keepdim=True)


class _MaxMinBase(nn.Module):
    """A weight parametrization over groups of a conv weight; ``group`` is "kernel" or "channel"."""

    mode = ""  # harness.methods.maxmin mode, for the initialization factor
    binary = False

    def __init__(self, group: str = "kernel"):
        super().__init__()
        if group not in ("kernel", "channel"):
            raise ValueError(f"group must be kernel or channel, not {group!r}")
        self.group = group

    def extra_repr(self) -> str:
        return f"group={self.group}"

    def group_shape(self, weight: torch.Tensor) -> tuple[int, int]:
        groups, elements = _groups(weight, self.group).shape
        return groups, elements

    def op_counts(self, module: nn.Module, output: torch.Tensor) -> dict:
        """Costs of ``module`` (whose weight this parametrizes) for one image producing ``output``."""
        original = module.parametrizations.weight.original
        groups, elements = self.group_shape(original)
        positions = output.shape[-1] * output.shape[-2]
        kept = min(2, elements)
        if self.binary:
            return {"macs": groups * positions, "binary_adds": groups * kept * positions, "nonzero_params": groups}
        return {"macs": groups * kept * positions, "binary_adds": 0, "nonzero_params": groups * kept}


class KernelMaxMin(_MaxMinBase):
    """Algorithm 1: keep each group's maximum and minimum, zero the rest."""

    mode = "sparse"

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = _groups(weight, self.group)
        hi, lo = _extremes(flat)
        keep = torch.zeros_like(flat).scatter_(1, hi, 1.0).scatter_(1, lo, 1.0)
        # a constant mask: d(flat * keep)/d(flat) = keep, so only the two extremes get a gradient
        return (flat * keep).reshape(weight.shape)


class KernelBinaryHeuristic(_MaxMinBase):
    """Algorithm 2: Δ = max - min at the maximum's position, -Δ at the minimum's, zero elsewhere."""

    mode = "binary_heuristic"
    binary = True

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = _groups(weight, self.group)
        hi, lo = _extremes(flat)
        delta = flat.gather(1, hi) - flat.gather(1, lo)
        signs = torch.zeros_like(flat).scatter_(1, hi, 1.0).scatter_(1, lo, -1.0)
        # dL/dw = (dL/dΔ) * binarysparse(w): +dL/dΔ at the max, -dL/dΔ at the min (Algorithm 2, step 3)
        return (delta * signs).reshape(weight.shape)


class KernelBinaryApprox(_MaxMinBase):
    """Algorithm 3: α* sign(W̃) on the two extremal positions, α* = ½(|max| + |min|) (eq. 3.5b)."""

    mode = "binary_approx"
    binary = True

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = _groups(weight, self.group)
        hi, lo = _extremes(flat)
        w_hi, w_lo = flat.gather(1, hi), flat.gather(1, lo)
        l1 = w_hi.abs() + w_lo.abs()
        # Value ½‖W̃‖₁ (eq. 3.5b), but the gradient of ‖W̃‖₁: Algorithm 3 updates
        # w <- w - η (dL/dα) binarysparse(w), i.e. dα/dw = sign(w) at each extreme (its caption
        # calls α "the sum of the absolute value of maximum and minimum"); sign() itself passes no
        # gradient, which the thesis names as a likely cause of this method's weaker results.
        alpha = l1 - (0.5 * l1).detach()
        signs = torch.zeros_like(flat).scatter_(1, hi, torch.sign(w_hi.detach()))
        signs = signs.scatter_(1, lo, torch.sign(w_lo.detach()))
        return (alpha * signs).reshape(weight.shape)


PARAMETRIZATIONS = {"sparse": KernelMaxMin, "binary_heuristic": KernelBinaryHeuristic,
                    "binary_approx": KernelBinaryApprox}


def _check_choices(init: str, pointwise: str = "dense", width: int = DEFAULT_WIDTH) -> None:
    """The values a variant's options may take; unknown and ill-typed options are refused before this
    runs, by the variant's signature (harness.layers.convert_convs checks them against it)."""
    if init not in INITS:
        raise ConfigError("model.conv_options.init", init, "one of " + ", ".join(INITS))
    if pointwise not in POINTWISE:
        raise ConfigError("model.conv_options.pointwise", pointwise, "one of " + ", ".join(POINTWISE))
    if width < 1:
        raise ConfigError("model.conv_options.width", width,
                          "an integer >= 1 (channels of the internal binary layer, e.g. 256 ... 2048)")


def kernel_elements(conv: nn.Conv2d) -> int:
    return conv.kernel_size[0] * conv.kernel_size[1]


def attach(conv: nn.Conv2d, mode: str, group: str = "kernel", init: str = "scaled") -> nn.Conv2d:
    """Parametrize ``conv.weight`` in place by ``mode`` (sparse | binary_heuristic | binary_approx)."""
    if parametrize.is_parametrized(conv, "weight"):
        raise ConfigError("model.conv", mode, "one conv variant per convolution (this weight is already re-derived)")
    parametrization = PARAMETRIZATIONS[mode](group)
    if init == "scaled":
        groups, elements = parametrization.group_shape(conv.weight)
        fan_in = conv.weight[0].numel()  # (C_in / groups) x kh x kw
        with torch.no_grad():
            conv.weight.normal_(0.0, he_std(fan_in, variance_factor_for(mode, elements)))
    parametrize.register_parametrization(conv, "weight", parametrization)
    return conv


def _new_conv(template: nn.Conv2d, in_channels: int, out_channels: int, kernel_size, stride, padding,
              dilation, bias: bool, init: str) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                     bias=bias, padding_mode=template.padding_mode)
    if init == "scaled":
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")  # re-drawn by attach if re-derived
    return conv.to(device=template.weight.device, dtype=template.weight.dtype)


class LocalBinary(nn.Sequential):
    """Local binary sparse convolution (Sec. 3.4): binary 2-sparse k x k into ``width`` channels,
    ReLU, full-precision 1x1 to the original outputs (channel-wise 2-sparse if ``channel_sparse``).

    LBCNN [18] puts a nonlinearity between its binary and 1x1 layers; the thesis does not say, so
    we follow LBCNN. The original conv's stride, padding and dilation go to the binary conv, its
    bias to the 1x1.
    """

    def __init__(self, conv: nn.Conv2d, mode: str, width: int, channel_sparse: bool, init: str):
        binary = _new_conv(conv, conv.in_channels, width, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, False, init)
        pointwise = _new_conv(conv, width, conv.out_channels, 1, 1, 0, 1, conv.bias is not None, init)
        if conv.bias is not None:
            with torch.no_grad():
                pointwise.bias.copy_(conv.bias)
        attach(binary, mode, "kernel", init)
        if channel_sparse and width >= 2:
            attach(pointwise, "sparse", "channel", init)
        super().__init__(OrderedDict(binary=binary, relu=nn.ReLU(), pointwise=pointwise))
        self.width, self.channel_sparse = width, channel_sparse

    def extra_repr(self) -> str:
        return f"width={self.width}, channel_sparse={self.channel_sparse}"


@CONVS.register("maxmin")
def maxmin(conv: nn.Conv2d, init: str = "scaled", pointwise: str = "dense"):
    """Kernel-wise Max-Min 2-sparse (Algorithm 1). Options: init (scaled | model), pointwise (dense | channel)."""
    _check_choices(init, pointwise)
    if kernel_elements(conv) > 2:
        return attach(conv, "sparse", "kernel", init)
    if kernel_elements(conv) == 1 and pointwise == "channel" and conv.weight.shape[1] >= 2:
        return attach(conv, "sparse", "channel", init)
    return None  # a 1x1 kernel has nothing to choose (Sec. 2.5); a 2-element one keeps both anyway


def _binary(mode: str):
    def convert(conv: nn.Conv2d, init: str = "scaled"):
        _check_choices(init)
        return attach(conv, mode, "kernel", init) if kernel_elements(conv) >= 2 else None

    convert.__doc__ = f"Binary 2-sparse kernels ({mode}, Algorithm {2 if mode.endswith('heuristic') else 3}). " \
                      "Options: init (scaled | model)."
    return convert


def _local_binary(mode: str):
    def convert(conv: nn.Conv2d, width: int = DEFAULT_WIDTH, channel_sparse: bool = False, init: str = "scaled"):
        _check_choices(init, width=width)
        if kernel_elements(conv) < 2 or conv.groups != 1:
            return None  # 1x1 convs stay full precision; grouped (depthwise) convs are left as they are
        return LocalBinary(conv, mode, width, channel_sparse, init)

    convert.__doc__ = (f"Local binary sparse ({mode}, Sec. 3.4). Options: width (internal channels, default "
                       f"{DEFAULT_WIDTH}), channel_sparse (bool, Sec. 3.5), init (scaled | model).")
    return convert


CONVS.register("binary_heuristic")(_binary("binary_heuristic"))
CONVS.register("binary_approx")(_binary("binary_approx"))
CONVS.register("local_binary_heuristic")(_local_binary("binary_heuristic"))
CONVS.register("local_binary_approx")(_local_binary("binary_approx"))

VARIANTS = ("maxmin", "binary_heuristic", "binary_approx", "local_binary_heuristic", "local_binary_approx")
