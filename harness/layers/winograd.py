"""Winograd F(2x2, 3x3) convolution with its kernel held in the Winograd domain (Zheng et al. eqs. 1-2).

Conv variants (the ``conv`` option of every model):

  winograd        Y = Aᵀ[U ⊙ (Bᵀ d B)]A               (eq. 1, Lavin & Gray): with U = G g Gᵀ unpruned
                  it equals the layer's conv2d (tests/test_winograd.py checks 1e-4)
  winograd_relu   Y = Aᵀ[U ⊙ ReLU(Bᵀ d B)]A           (eq. 2, Liu et al. 2018): ReLU on the
                  transformed input tile

``U`` (out x in x 4 x 4) is the trained parameter, named ``weight``, initialized from the dense
kernel g as G g Gᵀ; ``torch.nn.utils.prune`` (harness.methods.pruning) masks it in place, so
Prune(G g Gᵀ) of eq. 2 is pruning in the Winograd domain (16 weights per 3x3 kernel).

Only 3x3 convolutions with stride 1, dilation 1 and one group are converted; every other conv
(AlexNet's 5x5 stem, ResNet's stride-2 convs, 1x1 convs) stays a dense nn.Conv2d, or, with
``conv_options: {strict: true}``, is a ConfigError naming its shape.

Reading of eq. 2 in our models: Liu et al. move the ReLU that precedes a conv into its Winograd
domain. Our models put BN between a conv and its ReLU and pool between some blocks, so the spatial
ReLU stays where the model has it and ``winograd_relu`` adds the Winograd-domain ReLU on the
transformed tiles of the conv's input (for the first conv, the normalized image).

Cost: the element-wise products are one batched matmul over the 16 tile positions,
16 x tiles x C_in x C_out multiply-adds per image (counted by ``torch.utils.flop_counter``, so
``macs`` shows the Winograd saving: 4 multiplications per output and channel pair instead of 9);
the input and output transforms have only ±1 coefficients and are written as additions, which
are not counted (nor are BN's or the ReLU's operations anywhere in the harness). Written in
PyTorch, this layer is usually slower than cuDNN's or oneDNN's direct convolution: report measured
times as they are.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import CONVS

# Lavin & Gray's F(2x2, 3x3) matrices: kernel transform G (4x3); Bᵀ and Aᵀ are applied below as
# additions (their entries are 0 and ±1), so only G is a tensor.
G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
B_T = torch.tensor([[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]])
A_T = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]])
TILE, OUT = 4, 2  # input tile side, output tile side


def kernel_to_winograd(weight: torch.Tensor) -> torch.Tensor:
    """G g Gᵀ for every (out, in) 3x3 kernel: (K, C, 3, 3) -> (K, C, 4, 4)."""
    g = G.to(device=weight.device, dtype=weight.dtype)
    return g @ weight @ g.T


def _input_transform(d: torch.Tensor) -> torch.Tensor:
    """Bᵀ d B on the last two dims (4x4 tiles), by additions: Bᵀ rows are (d0-d2, d1+d2, d2-d1, d1-d3)."""
    def rows(t, dim):
        t0, t1, t2, t3 = t.unbind(dim)
        return torch.stack((t0 - t2, t1 + t2, t2 - t1, t1 - t3), dim)

    return rows(rows(d, -2), -1)


def _output_transform(m: torch.Tensor) -> torch.Tensor:
    """Aᵀ m A on the last two dims: 4x4 -> 2x2, Aᵀ rows are (m0+m1+m2, m1-m2-m3)."""
    def rows(t, dim):
        t0, t1, t2, t3 = t.unbind(dim)
        return torch.stack((t0 + t1 + t2, t1 - t2 - t3), dim)

    return rows(rows(m, -2), -1)


class WinogradConv2d(nn.Module):
    """A 3x3, stride-1 convolution computed by F(2x2, 3x3) tiles, its kernel a Winograd-domain parameter."""

    def __init__(self, conv: nn.Conv2d, relu: bool):
        super().__init__()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.padding = conv.padding
        self.padding_mode = conv.padding_mode
        self.relu = relu
        with torch.no_grad():
            self.weight = nn.Parameter(kernel_to_winograd(conv.weight.detach()).contiguous())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, F(2x2,3x3), padding={self.padding}, "
                f"relu={'winograd' if self.relu else 'spatial'}, bias={self.bias is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        if self.padding_mode != "zeros" and (ph or pw):
            x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
            ph = pw = 0
        n, c, h, w = x.shape
        out_h, out_w = h + 2 * ph - 2, w + 2 * pw - 2
        tiles_h, tiles_w = -(-out_h // OUT), -(-out_w // OUT)
        # pad so that the tiles (stride 2, side 4) cover every output; the extra outputs are cropped
        x = F.pad(x, (pw, pw + 2 * tiles_w + 2 - (w + 2 * pw), ph, ph + 2 * tiles_h + 2 - (h + 2 * ph)))
        d = x.unfold(2, TILE, OUT).unfold(3, TILE, OUT)  # (N, C, th, tw, 4, 4)
        v = _input_transform(d)
        if self.relu:
            v = F.relu(v)
        # (16, N*th*tw, C) @ (16, C, K): the Winograd-domain products, one matmul per tile position
        v = v.permute(4, 5, 0, 2, 3, 1).reshape(TILE * TILE, n * tiles_h * tiles_w, c)
        u = self.weight.permute(2, 3, 1, 0).reshape(TILE * TILE, c, self.out_channels)
        m = torch.bmm(v, u.to(v.dtype))  # (16, N*th*tw, K)
        m = m.reshape(TILE, TILE, n, tiles_h, tiles_w, self.out_channels).permute(2, 5, 3, 4, 0, 1)
        y = _output_transform(m)  # (N, K, th, tw, 2, 2)
        y = y.permute(0, 1, 2, 4, 3, 5).reshape(n, self.out_channels, OUT * tiles_h, OUT * tiles_w)
        y = y[:, :, :out_h, :out_w]
        if self.bias is not None:
            y = y + self.bias.to(y.dtype).view(1, -1, 1, 1)
        return y


def eligible(conv: nn.Conv2d) -> bool:
    return (tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
            and conv.groups == 1 and not isinstance(conv.padding, str))


def _convert(variant: str, relu: bool):
    def convert(conv: nn.Conv2d, strict: bool = False):
        if eligible(conv):
            return WinogradConv2d(conv, relu)
        if strict:
            raise ConfigError("model.conv", variant,
                              f"a model whose convs are all 3x3, stride 1, dilation 1, ungrouped for strict "
                              f"{variant}; this one has kernel {tuple(conv.kernel_size)}, stride "
                              f"{tuple(conv.stride)}, dilation {tuple(conv.dilation)}, groups {conv.groups} "
                              f"(set conv_options.strict: false to keep such convs dense)")
        return None

    convert.__doc__ = (f"Winograd F(2x2,3x3), ReLU {'in the Winograd domain (eq. 2)' if relu else 'spatial (eq. 1)'}; "
                       "3x3 stride-1 convs only, others stay dense. Options: strict (bool).")
    return convert


CONVS.register("winograd")(_convert("winograd", relu=False))
CONVS.register("winograd_relu")(_convert("winograd_relu", relu=True))
