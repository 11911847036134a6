"""Iterative magnitude pruning with retraining (``method: {name: prune}``; Zheng et al. Sec. 3.2, 4).

The paper says only that "all models are iteratively pruned and retrained" to a sparsity of 20 ...
80 %. Our reading, after Han et al. (2015): every conv and linear weight (``include_linear``) is
pruned layer by layer by magnitude (``torch.nn.utils.prune.l1_unstructured``) in ``steps`` steps
at the start of evenly spaced epochs between ``start`` and ``end`` (fractions of the run; never
before epoch 2, so the dense net trains at least one epoch first), the
sparsity after step k of n being 1 - (1 - sparsity)^(k/n), so each step removes the same fraction
of the weights still alive; the epochs after a step retrain the remaining weights. A Winograd layer
(harness.layers.winograd) is pruned in the Winograd domain, because its ``weight`` is the 4x4
Winograd kernel U = G g Gᵀ: the mask is Prune(G g Gᵀ) of eq. 2. Biases and BN are never pruned.

Every targeted layer gets an identity mask at setup, so the model's state dict has the same keys
(``weight_orig``, ``weight_mask``) before and after pruning and a checkpoint resumes at any epoch.
A layer whose weight is already re-derived by a ``torch.nn.utils.parametrize`` parametrization (Jin's
Max-Min and binary kernels, harness.layers.maxmin) is pruned where it computes, after that
parametrization: a ``WeightMask`` appended to its chain (key ``parametrizations.weight.<i>.mask``)
zeroes the smallest-magnitude *effective* weights, chosen by torch's ``L1Unstructured.compute_mask``
among the entries still alive. torch.nn.utils.prune cannot do it itself: it re-registers ``weight`` as a
parameter ``weight_orig``, and a parametrized weight is computed, not a parameter
(docs/fidelity.md, "Pruning a Max-Min kernel", says what the combination means).

Logged: ``sparsity`` each epoch, the fraction of targeted weights that are exactly zero in the
effective (masked) weights; at the end also ``macs_nonzero`` (each layer's ``macs`` times its
fraction of nonzero weights, the multiplications a sparse kernel would still do) and
``theoretical_speedup`` = ``macs`` / ``macs_nonzero``. Dense kernels run the masked zeros anyway,
so measured epoch times do not fall with sparsity: the two are reported side by side.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

from .. import measure
from ..errors import ConfigError
from ..layers.winograd import WinogradConv2d
from ..registry import METHODS
from .base import TrainMethod

PRUNABLE = (nn.Conv2d, nn.Linear, WinogradConv2d)


def _fraction(key: str, value: float, low_open: bool = False, high_closed: bool = False) -> float:
    """The range of a fraction option; its type is Prune's annotation (float), checked by build_method."""
    ok = (value > 0 if low_open else value >= 0) and (value <= 1 if high_closed else value < 1)
    if not ok:
        interval = ("(0" if low_open else "[0") + ", " + ("1]" if high_closed else "1)")
        raise ConfigError(key, value, f"a number in {interval}")
    return float(value)


def targets(model: nn.Module, include_linear: bool = True) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer whose ``weight`` is pruned."""
    kinds = PRUNABLE if include_linear else (nn.Conv2d, WinogradConv2d)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


class WeightMask(nn.Module):
    """weight -> weight * mask: the prune mask as the last parametrization of an already parametrized
    weight (module docstring); the mask is a buffer, so it is in the model's state dict."""

    def __init__(self, like: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", torch.ones_like(like))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def _weight_mask(module: nn.Module):
    """The WeightMask of a parametrized weight, else None."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return next((p for p in module.parametrizations.weight if isinstance(p, WeightMask)), None)


def mask_of(module: nn.Module) -> torch.Tensor:
    """The mask a target's effective weight is multiplied by (torch's ``weight_mask`` or a WeightMask's)."""
    held = _weight_mask(module)
    return held.mask if held is not None else module.weight_mask


def attach_mask(module: nn.Module) -> None:
    """An identity mask on ``module.weight`` (idempotent): torch's prune, or a WeightMask when parametrized."""
    if parametrize.is_parametrized(module, "weight"):
        if _weight_mask(module) is None:
            parametrize.register_parametrization(module, "weight", WeightMask(module.weight.detach()))
    elif not torch_prune.is_pruned(module):
        torch_prune.identity(module, "weight")


def attach_masks(model: nn.Module, include_linear: bool = True) -> list[tuple[str, nn.Module]]:
    """Give every target an identity mask (weight -> weight_orig * weight_mask); idempotent."""
    found = targets(model, include_linear)
    for _, module in found:
        attach_mask(module)
    return found


def restore_masks(model: nn.Module, state_dict: dict) -> None:
    """Identity masks wherever a saved pruned model's state dict holds one (``<param>_mask`` of torch's
    prune, ``parametrizations.weight.<i>.mask`` of a WeightMask), so the saved masks load into them."""
    for key in state_dict:
        if not key.endswith("mask"):
            continue
        head, _, last = key.rpartition(".")
        parts = head.split(".")
        if last == "mask" and len(parts) >= 3 and parts[-3:-1] == ["parametrizations", "weight"]:
            attach_mask(model.get_submodule(".".join(parts[:-3])))
        elif last.endswith("_mask"):
            torch_prune.identity(model.get_submodule(head), last[: -len("_mask")])


def sparsity_of(modules) -> float:
    """Fraction of exactly-zero entries among the effective weights of ``modules``."""
    zeros = total = 0
    for module in modules:
        weight = module.weight
        zeros += int((weight == 0).sum())
        total += weight.numel()
    return zeros / total if total else 0.0


def prune_to(modules, sparsity: float) -> None:
    """Raise each module's sparsity to ``sparsity`` by L1 magnitude among its live weights."""
    for module in modules:
        total = module.weight.numel()
        already = int((mask_of(module) == 0).sum())
        more = int(round(sparsity * total)) - already
        if more <= 0:
            continue
        held = _weight_mask(module)
        if held is None:
            torch_prune.l1_unstructured(module, "weight", amount=more)
        else:  # the pruned entries as +inf, so L1Unstructured picks its `more` among the live ones
            live = module.weight.detach().abs().masked_fill(held.mask == 0, float("inf"))
            held.mask.copy_(torch_prune.L1Unstructured(amount=more).compute_mask(live, held.mask))


@torch.no_grad()
def density(module: nn.Module) -> float:
    """The fraction of a target's weights its mask leaves to multiply: nonzero effective weights over all
    of them; for a WeightMask's layer, over the nonzero weights its parametrization gives before the mask,
    because that layer's declared MACs already count only those (a Max-Min kernel's two per group)."""
    nonzero = float((module.weight != 0).sum())
    held = _weight_mask(module)
    if held is None:
        return nonzero / module.weight.numel()
    chain = module.parametrizations.weight
    unmasked = chain.original
    for step in chain:
        if step is not held:
            unmasked = step(unmasked)
    before = float((unmasked != 0).sum())
    return nonzero / before if before else 1.0


def macs_nonzero(model: nn.Module, input_shape, modules: dict) -> int:
    """Layer MACs scaled by each pruned layer's ``density``; other layers count in full."""
    by_layer = measure.profile(model, input_shape, by_layer=True)["layers"]
    total = 0.0
    for layer in by_layer:
        module = modules.get(layer["name"])
        total += layer["macs"] * (1.0 if module is None else density(module))
    return int(round(total))


def schedule(epochs: int, steps: int, start: float, end: float) -> list[int]:
    """Epochs (1-based) at whose start a pruning step happens; the last reaches the target."""
    if steps == 1:
        points = [end]
    else:
        points = [start + (end - start) * k / (steps - 1) for k in range(steps)]
    first = min(2, epochs)  # train before the first step (train, prune, retrain), unless the run is one epoch
    return sorted({min(epochs, max(first, 1 + int(epochs * p + 0.5))) for p in points})


@METHODS.register("prune")
class Prune(TrainMethod):
    """Iterative L1 magnitude pruning to ``sparsity`` with retraining (torch.nn.utils.prune)."""

    owns = frozenset({"masks"})

    def __init__(self, sparsity: float = 0.5, steps: int = 4, start: float = 0.2, end: float = 0.5,
                 include_linear: bool = True):
        self.sparsity = _fraction("method.options.sparsity", sparsity)
        if steps < 1:
            raise ConfigError("method.options.steps", steps, "an integer >= 1 (pruning steps)")
        self.start = _fraction("method.options.start", start)
        self.end = _fraction("method.options.end", end)
        if self.end < self.start:
            raise ConfigError("method.options.end", end, f"a fraction of the run >= start ({start})")
        self.steps, self.include_linear = steps, include_linear
        self.done: list[int] = []  # epochs whose pruning step has been applied

    def setup(self, ctx) -> None:
        self.modules = dict(attach_masks(ctx.model, self.include_linear))
        self.plan = schedule(ctx.cfg.train.epochs, self.steps, self.start, self.end) if self.sparsity else []

    def target_at(self, epoch: int) -> float:
        """Sparsity after the pruning steps up to ``epoch``."""
        k = sum(1 for e in self.plan if e <= epoch)
        return 1.0 - (1.0 - self.sparsity) ** (k / len(self.plan)) if self.plan else 0.0

    def before_epoch(self, ctx, epoch: int) -> dict:
        if epoch in self.plan and epoch not in self.done:
            with torch.no_grad():
                prune_to(self.modules.values(), self.target_at(epoch))
            self.done.append(epoch)
        return {"sparsity": sparsity_of(self.modules.values())}

    def finish(self, ctx) -> dict:
        nonzero = macs_nonzero(ctx.model, ctx.input_shape, self.modules)
        dense = ctx.counts["macs"]
        return {"sparsity": sparsity_of(self.modules.values()), "macs_nonzero": nonzero,
                "theoretical_speedup": dense / nonzero if nonzero else float("inf")}

    def state_dict(self) -> dict:
        return {"done": list(self.done)}  # the masks themselves are buffers in the model's state dict

    def load_state_dict(self, sd: dict) -> None:
        self.done = list(sd.get("done", []))
