"""Çallı's node-pruning rules for the separable residual ``calli_cifar`` (thesis Sec. 2.4.2).

``separable_residual_keep`` chooses the channels to keep from one pass over a batch: the residual
stream's per group of directly connected blocks (one group per stage), as the union over the
group's tensors, and each block's inner channels on their own, by the node-pruning criteria of
harness.methods.node_pruning. ``prune_separable_residual`` removes the rest with the surgery of
harness.layers.surgery, depthwise convolutions following their input. They are functions, tested
for keeping the function on the kept nodes; the training cycles of Sec. 3.3.2 run them as the
experiment ``node_pruning_residual`` (harness.methods.residual_pruning, sweep calli_section_3_3_2).
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from ..layers.surgery import rebuild, rebuild_bn
from ..methods.node_pruning import select


def _take_conv(conv: nn.Conv2d, keep_in: Optional[torch.Tensor], keep_out: Optional[torch.Tensor],
               depthwise: bool = False) -> nn.Conv2d:
    """``conv`` without the dropped channels; a depthwise conv's channels follow its input (keep_out ignored)."""
    if depthwise:  # groups == channels: input channel i is output channel i (a pruned one-channel one has groups 1)
        assert conv.groups == conv.in_channels == conv.out_channels, "only depthwise grouped convs are pruned"
        new = rebuild(conv, None, keep_in)
        new.in_channels = new.out_channels = new.groups = len(keep_in)
        return new
    return rebuild(conv, keep_in, keep_out)


def _take_separable(sep: nn.Sequential, keep_in: torch.Tensor, keep_out: torch.Tensor) -> nn.Sequential:
    modules = []
    for index, module in enumerate(sep):
        if isinstance(module, nn.Conv2d):  # a separable conv's first conv is its depthwise one
            module = _take_conv(module, keep_in, keep_in if index == 0 else keep_out, depthwise=index == 0)
        elif isinstance(module, nn.BatchNorm2d):
            module = rebuild_bn(module, keep_in)  # between depthwise and pointwise: the input's channels
        else:
            module = copy.deepcopy(module)
        modules.append(module)
    return nn.Sequential(*modules)


def prune_separable_residual(model: nn.Module, stream: list[torch.Tensor], inner: list[torch.Tensor]) -> nn.Module:
    """A pruned copy of a ``calli_cifar`` model (harness.models.calli.CalliCifar).

    ``stream[g]``: the residual-stream channels kept in group g, one group per stage: the blocks a
    residual addition connects at the same width are "directly connected" and share their channels
    (Sec. 2.4.2), the stem conv feeding the first. ``inner[b]``: the channels kept between block b's
    two separable convolutions (its first pointwise outputs), pruned per block. Depthwise
    convolutions and the BNs beside them keep the channels of their input. A stage's first block
    maps its input group's channels onto its output group's through the identity (average pooling,
    zero padding): an output channel keeps the input channel of the same index if that one is kept,
    and a zero otherwise.
    """
    pruned = copy.deepcopy(model)
    pruned.conv1 = _take_conv(model.conv1, None, stream[0])
    blocks = [block for stage in pruned.stages for block in stage]
    groups = [g for g, stage in enumerate(pruned.stages) for _ in stage]
    for b, block in enumerate(blocks):
        g_out = groups[b]
        g_in = groups[b - 1] if b else 0
        keep_in, keep_out, keep_inner = stream[g_in], stream[g_out], inner[b]
        block.bn1 = rebuild_bn(block.bn1, keep_in)
        block.sep1 = _take_separable(block.sep1, keep_in, keep_inner)
        block.bn2 = rebuild_bn(block.bn2, keep_inner)
        block.sep2 = _take_separable(block.sep2, keep_inner, keep_out)
        position = {int(c): i for i, c in enumerate(keep_in)}
        index = [position.get(int(c), len(keep_in)) for c in keep_out]
        block.shortcut_index = torch.tensor(index, dtype=torch.long, device=keep_out.device)
        block.pad_channels = 0
    pruned.bn = rebuild_bn(model.bn, stream[-1])
    pruned.fc = rebuild(model.fc, stream[-1], None)
    return pruned


@torch.no_grad()
def separable_residual_keep(model: nn.Module, images: torch.Tensor, criterion: str = "variance", bound: str = "zero",
                            keep: str = "inside") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(stream, inner) keep sets for ``prune_separable_residual`` from one pass over ``images``.

    A group's stream channels are the union of the channels the criterion keeps at each of its
    tensors (the stem's output and every block's output in it, Sec. 2.4.2: "we union the nodes to be
    kept"); inner channels are chosen at each block's first pointwise output.
    """
    records: dict[str, torch.Tensor] = {}
    hooks = []

    def grab(name):
        def hook(module, inputs, output):
            records[name] = output
        return hook

    hooks.append(model.conv1.register_forward_hook(grab("stem")))
    blocks = [block for stage in model.stages for block in stage]
    for b, block in enumerate(blocks):
        hooks.append(block.register_forward_hook(grab(f"out{b}")))
        hooks.append(block.sep1.register_forward_hook(grab(f"inner{b}")))
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        model.train(was_training)
        for handle in hooks:
            handle.remove()

    def chosen(tensor: torch.Tensor) -> torch.Tensor:
        values = tensor.transpose(0, 1).reshape(tensor.shape[1], -1).double()
        stat = (values > 0).double().mean(1) if criterion == "count" else values.var(1, unbiased=False)
        return select(stat.cpu(), bound, keep)

    groups = [g for g, stage in enumerate(model.stages) for _ in stage]
    stream_sets: list[set] = [set() for _ in model.stages]
    stream_sets[0].update(chosen(records["stem"]).tolist())
    for b in range(len(blocks)):
        stream_sets[groups[b]].update(chosen(records[f"out{b}"]).tolist())
    stream = [torch.tensor(sorted(s), dtype=torch.long) for s in stream_sets]
    inner = [chosen(records[f"inner{b}"]) for b in range(len(blocks))]
    return stream, inner
