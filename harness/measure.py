"""Model cost: parameter count, MACs and FLOPs, in total or per layer.

Units:
- ``params``: number of parameters, trainable or not (buffers such as BN running stats excluded).
- ``macs``: multiply-accumulates of conv and linear layers for ONE image (batch of 1); for a layer
  whose kernel is re-derived sparse or binary, its full-precision multiplications (see below).
- ``flops``: 2 x macs. BN, activations, residual adds and pooling are not counted.
- ``nonzero_params``: the parameters a model needs at inference: ``params``, except that a
  re-derived weight counts the values it keeps (two per kernel for Max-Min sparse, one
  full-precision scale per kernel for binary). A zero-initialized bias still counts.
- ``binary_adds``: signed additions done by binary kernels (one per ±1 weight and output
  position); 0 for full-precision layers, whose additions ride in ``macs``.

A module whose weight is a ``torch.nn.utils.parametrize`` parametrization with an
``op_counts(module, output) -> {"macs", "binary_adds", "nonzero_params"}`` method (the Max-Min
kernels of ``harness.layers.maxmin``) is counted by that method instead of by its dense
execution: on dense hardware the zero-filled kernel is still multiplied in full, which is what
``harness.latency`` measures.

Counts come from ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in eval mode
under ``torch.no_grad`` (``profile_model`` builds the model on the meta device, where the same
forward runs on shapes alone; tests/test_measure.py checks meta and real counts agree); it counts 2 FLOPs per multiply-add of conv/linear (bias adds excluded)
and nothing for the other ops, so ``macs = counted // 2``. Papers that report "FLOPs" usually
mean multiply-adds, i.e. ``macs`` here; a paper's "multiplications" also equal ``macs`` for
conv/linear layers.
"""
from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn.utils import parametrize

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
    """{"params", "macs", "flops", "nonzero_params", "binary_adds", "input": "CxHxW"[, "layers"]}
    for one image of input_shape.

    With ``by_layer``, "layers" lists every module that owns parameters or does counted work
    itself (conv, linear, BN with 0 macs, ...), in ``named_modules`` order, each as
    {"name", "type", "params", "nonzero_params", "macs", "flops", "binary_adds"} with its own
    parameters and its own MACs (a module's count minus its children's), so the entries sum to
    the totals. A parametrized module's entry includes its parametrizations' stored weights.
    """
    if len(input_shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in input_shape):
        raise ConfigError("input", input_shape, INPUT_FORMAT)
    first_param = next(model.parameters(), None)
    device = first_param.device if first_param is not None else torch.device("cpu")
    dtype = first_param.dtype if first_param is not None else torch.float32
    image = torch.zeros(1, *input_shape, device=device, dtype=dtype)

    declared: dict[str, dict] = {}  # fqn -> op_counts of a module with a cost-declaring parametrization

    def record(fqn, op_counts):
        def hook(module, inputs, output):
            declared[fqn] = op_counts(module, output)
        return hook

    hooks = [module.register_forward_hook(record(fqn, op_counts)) for fqn, module in model.named_modules()
             if (op_counts := _op_counts(module)) is not None]
    from torch.utils.flop_counter import FlopCounterMode  # here: it imports triton (0.1-0.2 s), which no check needs

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(image)
    finally:
        model.train(was_training)
        for handle in hooks:
            handle.remove()

    layers = _layers(model, counter.get_flop_counts(), declared)
    macs = counter.get_total_flops() // 2 + sum(layer["macs"] - layer["dense_macs"] for layer in layers)
    params = count_params(model)
    result = {"params": params, "macs": macs, "flops": 2 * macs,
              "nonzero_params": params - sum(layer["params"] - layer["nonzero_params"] for layer in layers),
              "binary_adds": sum(layer["binary_adds"] for layer in layers),
              "input": _format_input(input_shape)}
    if by_layer:
        result["layers"] = [{k: v for k, v in layer.items() if k != "dense_macs"} for layer in layers]
    return result


def _op_counts(module: nn.Module):
    """The ``op_counts`` of the first parametrization of ``module`` that declares one, else None."""
    if not parametrize.is_parametrized(module):
        return None
    for parametrizations in module.parametrizations.values():
        for parametrization in parametrizations:
            if hasattr(parametrization, "op_counts"):
                return parametrization.op_counts
    return None


def _inside_parametrization(fqn: str) -> bool:
    return fqn == "parametrizations" or fqn.startswith("parametrizations.") or ".parametrizations" in fqn


def _layers(model: nn.Module, flop_counts: dict[str, dict], declared: dict[str, dict]) -> list[dict]:
    # FlopCounterMode's ModuleTracker names modules "<RootClass>.<fqn>"; a module's count
    # includes the work of all modules called inside it.
    root = type(model).__name__

    def counted(fqn: str) -> int:
        return sum(flop_counts.get(f"{root}.{fqn}" if fqn else root, {}).values())

    layers = []
    for fqn, module in model.named_modules():
        if _inside_parametrization(fqn):
            continue  # a parametrization's stored weight and work belong to the module it parametrizes
        own_flops = counted(fqn) - sum(counted(f"{fqn}.{child}" if fqn else child)
                                       for child, _ in module.named_children() if child != "parametrizations")
        own_params = sum(p.numel() for p in module.parameters(recurse=False))
        if parametrize.is_parametrized(module):
            own_params += sum(p.numel() for p in module.parametrizations.parameters())
        dense_macs = own_flops // 2
        if fqn in declared:
            counts = declared[fqn]
            weight = module.parametrizations.weight.original.numel() if "weight" in module.parametrizations else 0
            entry = {"macs": counts["macs"], "binary_adds": counts["binary_adds"],
                     "nonzero_params": own_params - weight + counts["nonzero_params"]}
        elif own_params or own_flops:
            entry = {"macs": dense_macs, "binary_adds": 0, "nonzero_params": own_params}
        else:
            continue
        layers.append({"name": fqn or "(model)", "type": type(module).__name__, "params": own_params,
                       "nonzero_params": entry["nonzero_params"], "macs": entry["macs"],
                       "flops": 2 * entry["macs"], "binary_adds": entry["binary_adds"], "dense_macs": dense_macs})
    return layers


def profile_model(name: str, options: dict, input_shape: tuple[int, int, int] | None = None,
                  by_layer: bool = False) -> dict:
    """Build ``name`` with ``options`` and profile it.

    ``in_channels`` and ``image_size`` come from ``input_shape`` unless ``options`` sets them
    (image_size is the smaller side); without ``input_shape`` the input is
    in_channels x image_size x image_size from the options or the model's defaults.
    """
    from .models import build

    options, input_shape = input_options(name, options, input_shape)
    try:  # counted on the meta device: shapes only, no weights allocated or initialized (VGG-19: 0.1 s, not 2 s)
        with torch.device("meta"):
            model = build(name, **options)
        return profile(model, input_shape, by_layer=by_layer)
    except ConfigError:
        raise
    except (NotImplementedError, RuntimeError):  # a layer that needs real values: count it for real
        return profile(build(name, **options), input_shape, by_layer=by_layer)


def input_options(name: str, options: dict, input_shape: tuple[int, int, int] | None) -> tuple[dict, tuple]:
    """(the builder's options, the input shape) as ``profile_model`` reads them."""
    from .models import describe

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
    return options, input_shape
