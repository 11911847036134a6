"""Physical removal of nodes: a copy of a layer, or of a chain of layers, without the dropped features.

A ``Chain`` runs stages in order, each an nn.Sequential whose first module is a weight layer
(Linear, Conv2d or ConvTranspose2d), optionally batch normalization, and an activation; the nodes
of a hidden stage are its layer's outputs (channels for convolutions). ``prune_nodes`` keeps the
given nodes of each hidden stage: the layer's output rows, its bias, the BN entries and the next
layer's input columns go, so params and MACs drop and the function on the kept nodes is unchanged.
``rebuild`` and ``rebuild_bn`` do the same for one layer; the rules of a particular architecture
(harness.models.calli_rules, say) are built from them. Which nodes to keep is the caller's choice
(harness.methods.node_pruning's criteria).
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

class Chain(nn.Module):
    """Stages applied in order; each an nn.Sequential whose first module is the weight layer."""

    def __init__(self, stages: list[nn.Sequential]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor, record: Optional[list] = None) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
            if record is not None:
                record.append(x)
        return x

    def widths(self) -> list[int]:
        """Nodes of the hidden stages (every stage but the output one)."""
        return [_out_features(stage[0]) for stage in self.stages[:-1]]


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _out_dim(layer: nn.Module) -> int:
    return 1 if isinstance(layer, nn.ConvTranspose2d) else 0  # ConvTranspose2d weights are (in, out, kh, kw)


def rebuild(layer: nn.Module, keep_in: Optional[torch.Tensor], keep_out: Optional[torch.Tensor]) -> nn.Module:
    """A copy of ``layer`` with only the kept input and output features (None keeps all)."""
    weight = layer.weight.detach()
    out_dim = _out_dim(layer)
    if keep_out is not None:
        weight = weight.index_select(out_dim, keep_out)
    if keep_in is not None:
        weight = weight.index_select(1 - out_dim, keep_in)
    bias = layer.bias.detach() if layer.bias is not None else None
    if bias is not None and keep_out is not None:
        bias = bias[keep_out]
    new = copy.deepcopy(layer)  # keeps stride, padding, output_padding, ...; then resized below
    new.weight = nn.Parameter(weight.clone())
    if bias is not None:
        new.bias = nn.Parameter(bias.clone())
    n_out = weight.shape[out_dim]
    n_in = weight.shape[1 - out_dim]
    if isinstance(layer, nn.Linear):
        new.in_features, new.out_features = n_in, n_out
    else:
        new.in_channels, new.out_channels = n_in, n_out
    return new


def rebuild_bn(bn: nn.BatchNorm2d | nn.BatchNorm1d, keep: torch.Tensor) -> nn.Module:
    new = copy.deepcopy(bn)
    new.num_features = len(keep)
    new.weight = nn.Parameter(bn.weight.detach()[keep].clone())
    new.bias = nn.Parameter(bn.bias.detach()[keep].clone())
    new.running_mean = bn.running_mean[keep].clone()
    new.running_var = bn.running_var[keep].clone()
    return new


def prune_nodes(chain: Chain, keep: dict[int, torch.Tensor]) -> Chain:
    """A new Chain without the nodes not in ``keep[i]`` (sorted indices) of hidden stage i."""
    stages = []
    for i, stage in enumerate(chain.stages):
        keep_out = keep.get(i)
        keep_in = keep.get(i - 1)
        modules = []
        for j, module in enumerate(stage):
            if j == 0:
                module = rebuild(module, keep_in, keep_out)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and keep_out is not None:
                module = rebuild_bn(module, keep_out)
            else:
                module = copy.deepcopy(module)
            modules.append(module)
        stages.append(nn.Sequential(*modules))
    return Chain(stages)
