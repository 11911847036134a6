"""Çallı's approximation of a trained model: connection pruning, rounding, SVD with eq. 2.1, int8 quantization."""
import copy

import pytest
import torch
from torch import nn

from harness import measure
from harness.checks import checked
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.methods import compress
from harness.train import Trainer


def test_svd_at_full_rank_reproduces_the_layer():
    torch.manual_seed(0)
    for layer, x in ((nn.Linear(12, 7), torch.randn(5, 12)),
                     (nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.randn(2, 4, 9, 9))):
        full = min(layer.weight.shape[0], layer.weight[0].numel())
        factorized = compress.factorize_layer(layer, full)
        torch.testing.assert_close(factorized(x), layer(x), atol=1e-5, rtol=1e-5)
        truncated = compress.factorize_layer(layer, 1)
        assert not torch.allclose(truncated(x), layer(x), atol=1e-3)


def test_eq_2_1_decision_by_hand():
    # A linear layer 100 -> 50: eq. 2.1 n < 100 * 50 / (100 + 50) = 33.3, so rank 33 saves, rank 34 does not:
    # 33 * 150 = 4950 < 5000 and 34 * 150 = 5100 > 5000.
    assert compress.factorization_saves(33, 50, 100)
    assert not compress.factorization_saves(34, 50, 100)
    # A 3x3 conv 16 -> 16 is the matrix 16 x 144: n (16 + 144) < 2304 holds up to n = 14 (2240), not at 15 (2400).
    assert compress.factorization_saves(14, 16, 144) and not compress.factorization_saves(15, 16, 144)


def test_lowest_rank_keeps_the_error_within_the_threshold():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of 22: errors 1, 6/22, 2/22, 1/22, 0 at ranks 0..4
    assert compress.lowest_rank(s, 0.05) == 3  # 1/22 = 0.045 <= 0.05 < 2/22
    assert compress.lowest_rank(s, 0.1) == 2
    assert compress.lowest_rank(s, 0.3) == 1
    assert compress.lowest_rank(s, 1e-9) == 4


def test_factorize_applies_only_where_it_saves_work():
    torch.manual_seed(0)
    low_rank = nn.Linear(100, 50, bias=True)
    with torch.no_grad():
        low_rank.weight.copy_(torch.randn(50, 3) @ torch.randn(3, 100))  # rank 3: exact at rank 3, saves work
    full_rank = nn.Linear(50, 2)  # needs its full rank 2: 2 * (2 + 50) = 104 > 100, no saving
    model = nn.Sequential(low_rank, nn.ReLU(), full_rank)
    reference = copy.deepcopy(model)
    records = compress.factorize(model, 1e-6)
    assert [(r["rank"], r["factorized"]) for r in records] == [(3, True), (2, False)]
    assert isinstance(model[0], nn.Sequential) and isinstance(model[2], nn.Linear)
    x = torch.randn(4, 100)
    torch.testing.assert_close(model(x), reference(x), atol=1e-4, rtol=1e-4)
    assert measure.count_params(model) == 3 * 100 + 50 * 3 + 50 + 50 * 2 + 2
    with pytest.raises(ConfigError, match="error_threshold"):
        compress.factorize(model, 1.0)


def test_prune_connections_and_rounding():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.011, -0.5, 0.2, 1.234]]))
    std = layer.weight.detach().std()
    assert compress.prune_connections(layer, float(0.21 / std)) == {"pruned": 2, "weights": 4}
    assert layer.weight.tolist() == [[0.0, pytest.approx(-0.5), 0.0, pytest.approx(1.234)]]
    assert not hasattr(layer, "weight_orig")  # made permanent
    compress.cluster_weights(layer, 2)
    assert layer.weight.tolist() == [[0.0, pytest.approx(-0.5), 0.0, pytest.approx(1.23)]]


def test_approximate_method_options_are_checked():
    with pytest.raises(ConfigError, match="method.options.error_threshold"):
        checked({"method": {"name": "approximate", "options": {"error_threshold": 0}}})
    with pytest.raises(ConfigError, match="method.options.prune_threshold"):
        checked({"method": {"name": "approximate", "options": {"prune_threshold": -1}}})


@pytest.mark.parametrize("method", [{"name": "approximate"},
                                    {"name": "chain", "options": {"dbs": {}, "approximate": {"quantize": False}}}])
@pytest.mark.parametrize("conv", ["maxmin", "binary_approx", "local_binary_heuristic"])
def test_approximate_refuses_a_re_derived_kernel_before_any_work(method, conv):
    """Jin's kernels re-derive the weight that approximate would prune, round and factorize; the config
    check says so (it used to fail after the last epoch, with torch's prune's TypeError)."""
    with pytest.raises(ConfigError) as e:
        checked({"model": {"name": "resnet20", "options": {"conv": conv}}, "method": method})
    assert e.value.key == "model.options.conv" and e.value.value == conv and "stored" in e.value.valid
    checked({"model": {"name": "resnet20", "options": {"conv": "separable"}}, "method": method})  # a stored weight


def test_int8_accuracy_within_tolerance_on_digits():
    """Train the baseline on digits for 3 epochs, then the approximate method: int8 within 2 points of fp32."""
    cfg = RunConfig.from_dict({
        "data": {"dataset": "digits", "val_size": 100},
        "model": {"name": "calli_baseline", "options": {"widths": [16, 32, 64]}},
        "method": {"name": "approximate", "options": {"prune_threshold": 0.0, "decimals": None,
                                                      "error_threshold": 0.001, "calibration_batches": 4,
                                                      "latency_batch": 8}},
        "train": {"epochs": 3, "batch_size": 64, "lr": 0.05, "threads": 1, "device": "cpu"}})
    results = Trainer(cfg).run().merged()
    assert results["fp32_test_acc"] == pytest.approx(results["test_acc"], abs=0.5)  # same model, CPU fp32
    assert results["fp32_test_acc"] > 90
    assert abs(results["int8_test_acc"] - results["fp32_test_acc"]) <= 2.0
    # an error of 0.1 % keeps nearly every rank: the approximation is the model, or it was not applied
    assert abs(results["approx_test_acc"] - results["fp32_test_acc"]) <= 1.0
    assert results["fp32_latency_s"] > 0 and results["int8_latency_s"] > 0
