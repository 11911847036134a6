"""Model cost: parameter count, MACs and FLOPs, in total or per layer.

Units:
- ``params``: number of parameters, trainable or not (buffers such as BN running stats excluded).
- ``macs``: multiply-accumulates of conv and linear layers for ONE image (batch of 1).
- ``flops``: 2 x macs. BN, activations, residual adds and pooling are not counted.

Counts come from ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in eval mode
under ``torch.no_grad``; it counts 2 FLOPs per multiply-add of conv/linear (bias adds excluded)
and nothing for the other ops, so ``macs = counted // 2``. Papers that report "FLOPs" usually
mean multiply-adds, i.e. ``macs`` here; a paper's "multiplications" also equal ``macs`` for
conv/linear layers.
"""
from __future__ import annotations

import re

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import ConfigError

INPUT_FORMAT = "CxHxW with positive integers, e.g. 3x32x32"
INPUT_PATTERN = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*")


def count_params(model: nn.Module) -> int:
    """Trainable + non-trainable parameters; shared parameters are counted once."""
    return sum(p.numel() for p in model.parameters())


def parse_input(text: str) -> tuple[int, int, int]:
    """Parse "3x32x32" into (3, 32, 32)."""
    match = INPUT_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None or any(int(d) == 0 for d in match.groups()):
        raise ConfigError("input", text, INPUT_FORMAT)
    channels, height, width = (int(d) for d in match.groups())
    return channels, height, width


def _format_input(input_shape: tuple[int, int, int]) -> str:
    return "x".join(str(d) for d in input_shape)


def profile(model: nn.Module, input_shape: tuple[int, int, int], by_layer: bool = False) -> dict:
    """{"params", "macs", "flops", "input": "CxHxW"[, "layers"]} for one image of input_shape.

    With ``by_layer``, "layers" lists every module that owns parameters or does counted work
    itself (conv, linear, BN with 0 macs, ...), in ``named_modules`` order, each as
    {"name", "type", "params", "macs", "flops"} with its own parameters and its own MACs (a
    module's count minus its children's), so the entries sum to the totals.
    """
    if len(input_shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in input_shape):
        raise ConfigError("input", input_shape, INPUT_FORMAT)
    first_param = next(model.parameters(), None)
    device = first_param.device if first_param is not None else torch.device("cpu")
    dtype = first_param.dtype if first_param is not None else torch.float32
    image = torch.zeros(1, *input_shape, device=device, dtype=dtype)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(image)
    finally:
        model.train(was_training)

    macs = counter.get_total_flops() // 2
    result = {"params": count_params(model), "macs": macs, "flops": 2 * macs,
              "input": _format_input(input_shape)}
    if by_layer:
        result["layers"] = _layers(model, counter.get_flop_counts())
    return result


def _layers(model: nn.Module, flop_counts: dict[str, dict]) -> list[dict]:
    # FlopCounterMode's ModuleTracker names modules "<RootClass>.<fqn>"; a module's count
    # includes the work of all modules called inside it.
    root = type(model).__name__

    def counted(fqn: str) -> int:
        return sum(flop_counts.get(f"{root}.{fqn}" if fqn else root, {}).values())

    layers = []
    for fqn, module in model.named_modules():
        own_flops = counted(fqn) - sum(
            counted(f"{fqn}.{child}" if fqn else child) for child, _ in module.named_children())
        own_params = sum(p.numel() for p in module.parameters(recurse=False))
        if own_params or own_flops:
            own_macs = own_flops // 2
            layers.append({"name": fqn or "(model)", "type": type(module).__name__,
                           "params": own_params, "macs": own_macs, "flops": 2 * own_macs})
    return layers


def profile_model(name: str, options: dict, input_shape: tuple[int, int, int] | None = None,
                  by_layer: bool = False) -> dict:
    """Build ``name`` with ``options`` and profile it.

    ``in_channels`` and ``image_size`` come from ``input_shape`` unless ``options`` sets them
    (image_size is the smaller side); without ``input_shape`` the input is
    in_channels x image_size x image_size from the options or the model's defaults.
    """
    from .models import build, describe

    options = dict(options or {})
    if input_shape is None:
        defaults = describe(name)["options"]
        channels = options.get("in_channels", defaults["in_channels"])
        size = options.get("image_size", defaults["image_size"])
        input_shape = (channels, size, size)
    else:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in input_shape):
            raise ConfigError("input", input_shape, INPUT_FORMAT)
        options.setdefault("in_channels", input_shape[0])
        options.setdefault("image_size", min(input_shape[1:]))
        if options["in_channels"] != input_shape[0]:
            raise ConfigError("model.in_channels", options["in_channels"],
                              f"{input_shape[0]}, the channels of input {_format_input(input_shape)}")
    return profile(build(name, **options), input_shape, by_layer=by_layer)
