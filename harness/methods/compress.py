"""Çallı's approximation of a trained model (thesis Secs. 2.1.1, 2.2, 2.4.3, 3.3.3-3.3.4).

In the thesis's order, on a copy of the trained model:
  prune_connections   per layer, weights with |w| below ``threshold`` x std(w) of that layer's weight
                      set to 0 (torch.nn.utils.prune masks, made permanent): a per-matrix threshold
                      from the matrix's own statistics (Sec. 2.1.1)
  cluster_weights     rounding after the second decimal (Sec. 2.4.3's "very basic weight clustering")
  factorize           SVD of every dense, pointwise and fully connected weight (not depthwise:
                      Sec. 2.4.3), lowering the rank while the approximation error stays within
                      ``error_threshold``, applied only where the factorized layer needs fewer MACs
                      (eq. 2.1)
  quantize_int8       8-bit post-training static quantization with torch.ao.quantization's FX mode
                      (x86 / fbgemm backend, CPU), calibrated on training batches
and the training method ``approximate`` that runs them when a trial's training ends and logs the
accuracy, counts and measured CPU latency before and after.

Readings, where the thesis is loose:
  * Error: the thesis measures the mean squared error between the matrix and its low-rank product
    against "a predefined error threshold" but gives no value or scale. We use the relative
    squared error ||W - W_n||_F^2 / ||W||_F^2 (the MSE divided by the mean square of W), so one
    threshold in (0, 1) fits every layer; by Eckart-Young it is the sum of the dropped squared
    singular values over the sum of all of them, so the rank needs one SVD per layer.
  * "We keep reducing the rank by 1 while the approximation error is above the predefined error
    threshold" can only mean: lower the rank while the error stays within the threshold, i.e. the
    lowest rank whose error is <= the threshold.
  * Eq. 2.1 (n < m_in m_out / (m_in + m_out)) compares n (m_in + m_out) with m_in m_out. A K x K
    convolution (C_in -> C_out) factorized into K x K (C_in -> n) then 1 x 1 (n -> C_out) costs
    n (K^2 C_in + C_out) MACs per output position against K^2 C_in C_out, which is eq. 2.1 with
    m_in = K^2 C_in (the matrix SVD sees: C_out x K^2 C_in); for K = 1 and linear layers it is eq.
    2.1 exactly. We factorize only when ``factorization_saves`` says so.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import ConfigError
from ..registry import METHODS
from .base import TrainMethod


# ---- connection pruning and weight clustering --------------------------------------------------

def _weighted(model: nn.Module, depthwise: bool = True):
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if not depthwise and isinstance(module, nn.Conv2d) and module.groups > 1:
                continue
            yield name, module


def prune_connections(model: nn.Module, threshold: float) -> dict:
    """Zero, per layer, the weights with |w| < threshold x std(w); return {"pruned", "weights"} counts."""
    pruned = total = 0
    for _, module in _weighted(model):
        weight = module.weight.detach()
        limit = threshold * weight.std() if weight.numel() > 1 else torch.zeros(())
        prune.custom_from_mask(module, "weight", mask=(weight.abs() >= limit).to(weight.dtype))
        prune.remove(module, "weight")  # make it permanent: the zeros are the weight now
        pruned += int((module.weight == 0).sum())
        total += module.weight.numel()
    return {"pruned": pruned, "weights": total}


@torch.no_grad()
def cluster_weights(model: nn.Module, decimals: int = 2) -> None:
    """Round every conv / linear weight to ``decimals`` decimals (Sec. 2.4.3)."""
    for _, module in _weighted(model):
        module.weight.copy_(torch.round(module.weight, decimals=decimals))


# ---- SVD factorization ---------------------------------------------------------------------------

def factorization_saves(rank: int, rows: int, cols: int) -> bool:
    """Eq. 2.1 for a (rows x cols) weight matrix (rows = outputs, cols = inputs x K^2): n (rows + cols) < rows cols."""
    return rank * (rows + cols) < rows * cols


def lowest_rank(singular_values: torch.Tensor, error_threshold: float) -> int:
    """The lowest rank n whose relative squared error sum(s[n:]^2) / sum(s^2) is <= error_threshold."""
    energy = singular_values.double() ** 2
    total = float(energy.sum())
    if total == 0.0:
        return 0
    dropped = torch.flip(torch.cumsum(torch.flip(energy, [0]), 0), [0]) / total  # dropped[n] = error at rank n
    for rank in range(len(energy)):
        if float(dropped[rank]) <= error_threshold:
            return rank
    return len(energy)


def _matrix(module: nn.Module) -> torch.Tensor:
    return module.weight.detach().reshape(module.weight.shape[0], -1)


@torch.no_grad()
def factorize_layer(module: nn.Module, rank: int) -> nn.Sequential:
    """``module`` (nn.Linear or ungrouped nn.Conv2d) as two layers through ``rank`` channels: W ~ (U'S') V'^T."""
    u, s, vh = torch.linalg.svd(_matrix(module).double(), full_matrices=False)
    first_weight = vh[:rank]  # (rank, inputs x K^2)
    second_weight = u[:, :rank] * s[:rank]  # (outputs, rank)
    bias = module.bias is not None
    if isinstance(module, nn.Linear):
        first, second = nn.Linear(module.in_features, rank, bias=False), nn.Linear(rank, module.out_features, bias=bias)
        first.weight.copy_(first_weight)
        second.weight.copy_(second_weight)
    else:
        first = nn.Conv2d(module.in_channels, rank, module.kernel_size, stride=module.stride, padding=module.padding,
                          dilation=module.dilation, bias=False, padding_mode=module.padding_mode)
        second = nn.Conv2d(rank, module.out_channels, 1, bias=bias)
        first.weight.copy_(first_weight.reshape(rank, *module.weight.shape[1:]))
        second.weight.copy_(second_weight.reshape(module.out_channels, rank, 1, 1))
    if bias:
        second.bias.copy_(module.bias)
    like = dict(device=module.weight.device, dtype=module.weight.dtype)
    return nn.Sequential(first.to(**like), second.to(**like))


def _check_error_threshold(value: float, key: str = "error_threshold", null: str = "") -> None:
    """The range of ``error_threshold``: Approximate's option (typed by its annotation) or factorize's argument."""
    if not 0 < value < 1:
        raise ConfigError(key, value, f"a number in (0, 1) (relative squared error of the low-rank weight){null}")


def factorize(model: nn.Module, error_threshold: float) -> list[dict]:
    """Factorize, in place, every layer where the lowest admissible rank saves MACs (eq. 2.1); one record per layer."""
    _check_error_threshold(error_threshold)
    records = []
    for name, module in list(_weighted(model, depthwise=False)):
        if isinstance(module, nn.ConvTranspose2d):
            continue
        matrix = _matrix(module)
        rows, cols = matrix.shape
        rank = lowest_rank(torch.linalg.svdvals(matrix.double()), error_threshold)
        saves = rank > 0 and factorization_saves(rank, rows, cols)
        records.append({"layer": name, "rows": rows, "cols": cols, "full_rank": min(rows, cols), "rank": rank,
                        "factorized": saves})
        if saves:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, factorize_layer(module, rank))
    return records


# ---- 8-bit quantization --------------------------------------------------------------------------

def quantize_int8(model: nn.Module, calibration: list[torch.Tensor]) -> nn.Module:
    """Post-training static int8 quantization (FX graph mode, x86 backend) of a CPU copy of ``model``."""
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao (deprecation notes)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        prepared = prepare_fx(copy.deepcopy(model).cpu().eval(), get_default_qconfig_mapping("x86"),
                              (calibration[0],))
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
        return convert_fx(prepared)


@torch.no_grad()
def accuracy(model: nn.Module, loader, device: torch.device | str = "cpu") -> float:
    """Top-1 % of ``model`` over a DeviceLoader, its batches moved to ``device`` (contiguous, fp32)."""
    if loader is None or loader.num_samples == 0:
        return math.nan
    model.eval()
    correct = 0
    for x, y in loader.epoch(0):
        logits = model(x.to(device).float().contiguous())
        correct += int((logits.argmax(1).cpu() == y.cpu()).sum())
    return 100.0 * correct / loader.num_samples


# ---- the training method --------------------------------------------------------------------------

@METHODS.register("approximate")
class Approximate(TrainMethod):
    """After training: prune connections, round, SVD-factorize, quantize to int8 (Çallı Secs. 2.4.3, 3.3.3-3.3.4).

    Options: prune_threshold (x std(w) per layer, >= 0; 0 keeps every connection), decimals (rounding,
    null = no clustering), error_threshold (relative squared SVD error in (0, 1); null = no
    factorization), quantize (bool), calibration_batches, latency_batch (images per timed pass).
    Logs: fp32_test_acc, approx_test_acc, approx_params, approx_macs, factorized_layers,
    pruned_weights_frac, int8_test_acc, fp32_latency_s, int8_latency_s (CPU, one thread, median).
    """

    def __init__(self, prune_threshold: float = 0.0, decimals: int | None = 2, error_threshold: float | None = 0.1,
                 quantize: bool = True, calibration_batches: int = 4, latency_batch: int = 32):
        # ranges only: each option's type is its annotation, checked by harness.methods.base.build_method
        if not prune_threshold >= 0:
            raise ConfigError("method.options.prune_threshold", prune_threshold, "a number >= 0 (x std of the layer's weights)")
        if decimals is not None and decimals < 0:
            raise ConfigError("method.options.decimals", decimals, "an integer >= 0 or null (no rounding)")
        if error_threshold is not None:
            _check_error_threshold(error_threshold, "method.options.error_threshold", " or null")
        for key, value in (("calibration_batches", calibration_batches), ("latency_batch", latency_batch)):
            if value < 1:
                raise ConfigError(f"method.options.{key}", value, "an integer >= 1")
        self.prune_threshold, self.decimals, self.error_threshold = float(prune_threshold), decimals, error_threshold
        self.quantize, self.calibration_batches, self.latency_batch = quantize, calibration_batches, latency_batch

    def check(self, cfg) -> None:
        """Refuse a model whose convolutions re-derive their weight at every forward (Jin's Max-Min and
        binary kernels: a torch.nn.utils.parametrize parametrization, found on a probe conv on the meta
        device): every step here rewrites stored weights, which such a conv would re-derive over."""
        from torch.nn.utils import parametrize

        from ..layers import probe

        conv = cfg.model.options.get("conv", "dense")
        if any(parametrize.is_parametrized(m) for m in probe(conv, cfg.model.options.get("conv_options")).modules()):
            raise ConfigError("model.options.conv", conv, "a conv whose trained weight is stored (dense, separable, "
                              "winograd, ...): method approximate prunes, rounds and factorizes stored weights, and "
                              f"a {conv} conv re-derives its weight from them at every forward")

    def after_epoch(self, ctx, epoch: int, metrics: dict) -> dict:
        # At the last epoch rather than in finish(): the numbers land in the epoch's metrics, beside that
        # epoch's test_acc, and in the per-epoch history that load_runs reads.
        return self.approximate(ctx) if epoch == ctx.cfg.train.epochs else {}

    def approximate(self, ctx) -> dict:
        from .. import latency, measure

        fp32 = copy.deepcopy(ctx.model).float().cpu().eval().to(memory_format=torch.contiguous_format)
        out = {"fp32_test_acc": accuracy(fp32, ctx.test_loader)}
        approx = copy.deepcopy(fp32)
        pruned = prune_connections(approx, self.prune_threshold)
        out["pruned_weights_frac"] = pruned["pruned"] / max(pruned["weights"], 1)
        if self.decimals is not None:
            cluster_weights(approx, self.decimals)
        records = factorize(approx, self.error_threshold) if self.error_threshold is not None else []
        counts = measure.profile(approx, ctx.input_shape)
        out.update(approx_test_acc=accuracy(approx, ctx.test_loader), approx_params=counts["params"],
                   approx_macs=counts["macs"], factorized_layers=sum(r["factorized"] for r in records),
                   factorizable_layers=len(records))
        if self.quantize:
            # training batches (augmented as in training) set the activation ranges
            calibration = [x.cpu().float().contiguous() for x in ctx.batches.first_images(self.calibration_batches)]
            int8 = quantize_int8(fp32, calibration)
            out["int8_test_acc"] = accuracy(int8, ctx.test_loader)
            for label, model in (("fp32", fp32), ("int8", int8)):
                timed = latency.measure_latency(model, ctx.input_shape, batch_size=self.latency_batch,
                                                repeats=10, warmup=3, threads=1)
                out[f"{label}_latency_s"] = timed["latency_s"]
            out["int8_speedup"] = out["fp32_latency_s"] / out["int8_latency_s"]
        return out
