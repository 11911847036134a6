"""Max-Min kernels (Jin 2018): structure, gradients, initialization factors, counts, every model x every variant."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from harness import models
from harness.checks import checked
from harness.errors import ConfigError
from harness.layers import convert_convs
from harness.layers.maxmin import VARIANTS, KernelBinaryApprox, KernelBinaryHeuristic, KernelMaxMin
from harness.measure import profile
from harness.methods.maxmin import MODES, he_std, variance_factor, variance_factor_for


def converted(conv: nn.Conv2d, variant: str, **options) -> nn.Module:
    return convert_convs(nn.Sequential(conv), variant, options or None)[0]


def dense_weight(conv: nn.Module) -> torch.Tensor:
    return conv.parametrizations.weight.original


def extremes(weight: torch.Tensor, group: str = "kernel"):
    flat = weight.reshape(weight.shape[0] * weight.shape[1], -1) if group == "kernel" \
        else weight.reshape(weight.shape[0], -1)
    return flat, flat.argmax(1), flat.argmin(1)


# ---- Algorithm 1: structure and gradient ---------------------------------------------------------

@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5), (11, 11), (1, 7), (7, 1), (1, 3)])
def test_maxmin_keeps_exactly_the_max_and_min_of_each_kernel(kernel_size):
    torch.manual_seed(0)
    conv = converted(nn.Conv2d(6, 5, kernel_size), "maxmin")
    flat, hi, lo = extremes(dense_weight(conv).detach())
    sparse = conv.weight.detach().reshape(flat.shape)
    assert ((sparse != 0).sum(1) == 2).all()
    rows = torch.arange(flat.shape[0])
    assert torch.equal(sparse[rows, hi], flat[rows, hi]) and torch.equal(sparse[rows, lo], flat[rows, lo])
    assert (hi != lo).all()


def test_gradient_reaches_only_the_extremes():
    torch.manual_seed(0)
    conv = converted(nn.Conv2d(4, 8, 3, padding=1), "maxmin")
    x = torch.randn(3, 4, 9, 9)
    conv(x).square().sum().backward()
    grad = dense_weight(conv).grad
    flat, hi, lo = extremes(dense_weight(conv).detach())
    keep = torch.zeros_like(flat)
    keep[torch.arange(len(hi)), hi] = 1
    keep[torch.arange(len(lo)), lo] = 1
    # the gradient of the loss w.r.t. the re-derived weight, masked to the two extremes
    effective = conv.weight.detach().clone().requires_grad_(True)
    F.conv2d(x, effective, conv.bias.detach(), padding=1).square().sum().backward()
    expected = (effective.grad.reshape(flat.shape) * keep).reshape(grad.shape)
    assert torch.allclose(grad, expected, atol=1e-5)
    assert ((grad.reshape(flat.shape) != 0).sum(1) == 2).all()


def test_plain_sgd_updates_exactly_the_extremes_which_may_then_change():
    conv = nn.Conv2d(1, 1, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.50, 0.00, 0.10], [0.00, -0.30, 0.00], [0.20, 0.00, 0.45]]]]))
    conv = converted(conv, "maxmin", init="model")
    optimizer = torch.optim.SGD(conv.parameters(), lr=1.0)
    before = dense_weight(conv).detach().clone()
    # the loss pushes the maximum (0.50, top left) down by 0.2 and the minimum (-0.30) down by 0.1
    x = torch.zeros(1, 1, 3, 3)
    out = conv(x + torch.tensor([[[[0.2, 0, 0], [0, 0.1, 0], [0, 0, 0]]]]))
    out.sum().backward()
    optimizer.step()
    changed = (dense_weight(conv).detach() != before).reshape(-1)
    assert changed.nonzero().flatten().tolist() == [0, 4]  # only the max and the min moved
    after = dense_weight(conv).detach().reshape(-1)
    assert after[0].item() == pytest.approx(0.30) and after[4].item() == pytest.approx(-0.40)
    # the element at 0.45 is now the maximum: the next forward uses it instead
    assert (conv.weight.detach().reshape(-1) != 0).nonzero().flatten().tolist() == [4, 8]


# ---- Algorithms 2 and 3 --------------------------------------------------------------------------

def test_binary_heuristic_is_plus_minus_range_and_updates_through_delta():
    torch.manual_seed(1)
    conv = converted(nn.Conv2d(3, 4, 3), "binary_heuristic")
    flat, hi, lo = extremes(dense_weight(conv).detach())
    rows = torch.arange(flat.shape[0])
    delta = flat[rows, hi] - flat[rows, lo]
    binary = conv.weight.detach().reshape(flat.shape)
    assert ((binary != 0).sum(1) == 2).all()
    assert torch.allclose(binary[rows, hi], delta) and torch.allclose(binary[rows, lo], -delta)
    x = torch.randn(2, 3, 6, 6)
    conv(x).sum().backward()
    effective = conv.weight.detach().clone().requires_grad_(True)
    F.conv2d(x, effective, conv.bias.detach()).sum().backward()
    g = effective.grad.reshape(flat.shape)
    g_delta = g[rows, hi] - g[rows, lo]  # dL/dΔ = Σ dL/dw' * binarysparse(w)
    grad = dense_weight(conv).grad.reshape(flat.shape)
    assert torch.allclose(grad[rows, hi], g_delta, atol=1e-5) and torch.allclose(grad[rows, lo], -g_delta, atol=1e-5)
    assert ((grad != 0).sum(1) == 2).all()


def test_binary_approx_is_sign_times_half_l1_and_updates_by_algorithm_3():
    torch.manual_seed(2)
    conv = converted(nn.Conv2d(3, 4, 3), "binary_approx")
    with torch.no_grad():  # one kernel with both extremes positive: the binary pair is (+α, +α)
        dense_weight(conv)[0, 0] = torch.linspace(0.1, 0.9, 9).reshape(3, 3)
    flat, hi, lo = extremes(dense_weight(conv).detach())
    rows = torch.arange(flat.shape[0])
    alpha = 0.5 * (flat[rows, hi].abs() + flat[rows, lo].abs())
    binary = conv.weight.detach().reshape(flat.shape)
    assert torch.allclose(binary[rows, hi], alpha * flat[rows, hi].sign())
    assert torch.allclose(binary[rows, lo], alpha * flat[rows, lo].sign())
    assert binary[0, 8] > 0 and binary[0, 0] > 0 and binary[0, 8] == binary[0, 0]
    x = torch.randn(2, 3, 6, 6)
    conv(x).sum().backward()
    effective = conv.weight.detach().clone().requires_grad_(True)
    F.conv2d(x, effective, conv.bias.detach()).sum().backward()
    g = effective.grad.reshape(flat.shape)
    signs = binary.sign()
    g_alpha = (g * signs).sum(1)  # dL/dα
    grad = dense_weight(conv).grad.reshape(flat.shape)
    # Algorithm 3: w <- w - η (dL/dα) binarysparse(w)
    assert torch.allclose(grad[rows, hi], g_alpha * signs[rows, hi], atol=1e-5)
    assert torch.allclose(grad[rows, lo], g_alpha * signs[rows, lo], atol=1e-5)
    assert ((grad != 0).sum(1) == 2).all()


def test_local_binary_replaces_kxk_convs_and_keeps_1x1():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 1))
    convert_convs(model, "local_binary_heuristic", {"width": 16, "channel_sparse": True})
    block = model[0]
    assert block.binary.out_channels == 16 and block.binary.stride == (2, 2) and block.pointwise.out_channels == 8
    assert isinstance(block.binary.parametrizations.weight[0], KernelBinaryHeuristic)
    pointwise = block.pointwise.weight.detach().reshape(8, 16)
    assert ((pointwise != 0).sum(1) == 2).all()  # channel-wise Max-Min: 2 of 16 input channels
    assert not parametrize.is_parametrized(model[1])
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 8, 4, 4)


def test_maxmin_pointwise_channel_option():
    conv = converted(nn.Conv2d(12, 5, 1), "maxmin", pointwise="channel")
    assert ((conv.weight.detach().reshape(5, 12) != 0).sum(1) == 2).all()
    assert not parametrize.is_parametrized(converted(nn.Conv2d(12, 5, 1), "maxmin"))


# ---- initialization ------------------------------------------------------------------------------

def test_variance_factors_at_k3_are_the_thesis_values():
    assert round(variance_factor("sparse", 3), 3) == 0.569  # eq. 2.7
    assert round(variance_factor("binary_heuristic", 3), 3) == 2.105  # eq. 3.3
    assert round(variance_factor("binary_approx", 3), 3) == 0.527  # eq. 3.8


def test_variance_factors_in_closed_form_for_two_elements():
    # n = 2: Max-Min keeps both (factor 1); ±(max - min) has E[(x1 - x2)²] = 2; ½(|x1| + |x2|) squared
    # has mean ¼(2 + 4/π)
    assert variance_factor_for("sparse", 2) == pytest.approx(1.0, abs=1e-9)
    assert variance_factor_for("binary_heuristic", 2) == pytest.approx(2.0, abs=1e-9)
    assert variance_factor_for("binary_approx", 2) == pytest.approx(0.25 * (2 + 4 / math.pi), abs=1e-9)


PARAMETRIZATION = {"sparse": KernelMaxMin, "binary_heuristic": KernelBinaryHeuristic,
                   "binary_approx": KernelBinaryApprox}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(3, 3), (5, 5), (1, 7), (2, 2)])
def test_variance_factor_against_monte_carlo_of_the_layers_own_kernels(mode, shape):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(200_000, 1, *shape, generator=generator, dtype=torch.float64)
    rederived = PARAMETRIZATION[mode]("kernel")(weight)
    estimate = rederived.square().mean().item()  # E[w'^2] with Var[w] = 1
    elements = shape[0] * shape[1]
    assert estimate == pytest.approx(variance_factor_for(mode, elements), rel=0.01)


@pytest.mark.parametrize("variant,mode", [("maxmin", "sparse"), ("binary_heuristic", "binary_heuristic"),
                                          ("binary_approx", "binary_approx")])
def test_scaled_he_init_puts_the_rederived_kernel_on_he_critical_line(variant, mode):
    torch.manual_seed(0)
    conv = converted(nn.Conv2d(256, 256, 3), variant)
    fan_in = 256 * 9
    assert dense_weight(conv).std().item() == pytest.approx(he_std(fan_in, variance_factor(mode, 3)), rel=0.01)
    # eq. 2.8 / 3.4 / 3.9: ½ n_l Var[W'] = 1
    assert 0.5 * fan_in * conv.weight.detach().square().mean().item() == pytest.approx(1.0, rel=0.03)


def test_init_model_keeps_the_models_weights():
    conv = nn.Conv2d(4, 4, 3)
    before = conv.weight.detach().clone()
    assert torch.equal(dense_weight(converted(conv, "maxmin", init="model")), before)


# ---- counts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 3, 5, 7, 11])
def test_sparse_macs_are_2_over_k_squared_of_dense(k):
    dense = profile(nn.Conv2d(8, 16, k, padding=k // 2), (8, 20, 20))
    sparse = profile(convert_convs(nn.Sequential(nn.Conv2d(8, 16, k, padding=k // 2)), "maxmin"), (8, 20, 20))
    assert sparse["macs"] * k * k == 2 * dense["macs"]
    assert sparse["params"] == dense["params"] == 16 * 8 * k * k + 16
    assert sparse["nonzero_params"] == 16 * 8 * 2 + 16
    assert sparse["flops"] == 2 * sparse["macs"] and sparse["binary_adds"] == 0


@pytest.mark.parametrize("variant", ["binary_heuristic", "binary_approx"])
def test_binary_counts_one_scale_multiplication_and_two_additions_per_kernel(variant):
    dense = profile(nn.Conv2d(8, 16, 3, padding=1, bias=False), (8, 10, 10))
    binary = profile(convert_convs(nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False)), variant), (8, 10, 10))
    kernels, positions = 16 * 8, 10 * 10
    assert binary["macs"] == kernels * positions == dense["macs"] // 9
    assert binary["binary_adds"] == 2 * kernels * positions
    assert binary["nonzero_params"] == kernels


def test_local_binary_counts_and_by_layer_sums():
    model = convert_convs(nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 1)),
                          "local_binary_approx", {"width": 32, "channel_sparse": True})
    result = profile(model, (4, 7, 7), by_layer=True)
    positions = 49
    binary_kernels = 32 * 4
    assert result["binary_adds"] == 2 * binary_kernels * positions
    # binary scales (one per kernel and position) + channel-sparse 1x1 (2 per output) + the dense 1x1
    assert result["macs"] == binary_kernels * positions + 6 * 2 * positions + 6 * 6 * positions
    assert result["nonzero_params"] == binary_kernels + (6 * 2 + 6) + (6 * 6 + 6)
    layers = result["layers"]
    assert [layer["name"] for layer in layers] == ["0.binary", "0.pointwise", "2"]
    for key in ("params", "nonzero_params", "macs", "flops", "binary_adds"):
        assert sum(layer[key] for layer in layers) == result[key], key


def build_224(name, **options):
    with torch.device("meta"):
        return models.build(name, num_classes=1000, image_size=224, **options)


def test_table_2_1_alexnet_and_vgg19_counts():
    """AlexNet 61.1M / 715M dense and 59.1M / 163M sparse; VGG-19 143.7M / 19.6B and 128.1M / 4.5B.

    By hand: sparse keeps 2 of k² weights per kernel, so nonzero params drop by Σ C_out C_in (k² - 2)
    and conv MACs scale by 2/k² per layer. AlexNet's convs (C_out, C_in, k, output side) at 224:
    (64, 3, 11, 55), (192, 64, 5, 27), (384, 192, 3, 13), (256, 384, 3, 13), (256, 256, 3, 13);
    its linear layers 9216x4096 + 4096x4096 + 4096x1000 = 58,621,952 MACs.
    """
    convs = [(64, 3, 11, 55), (192, 64, 5, 27), (384, 192, 3, 13), (256, 384, 3, 13), (256, 256, 3, 13)]
    linear = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    dense_macs = sum(o * i * k * k * s * s for o, i, k, s in convs) + linear
    sparse_macs = sum(o * i * 2 * s * s for o, i, k, s in convs) + linear
    removed = sum(o * i * (k * k - 2) for o, i, k, s in convs)
    dense = profile(build_224("alexnet"), (3, 224, 224))
    sparse = profile(build_224("alexnet", conv="maxmin"), (3, 224, 224))
    assert dense["params"] == dense["nonzero_params"] == 61_100_840  # 61.1M
    assert dense["macs"] == dense_macs == 714_188_480  # the paper's 715M (0.1 % above)
    assert sparse["nonzero_params"] == 61_100_840 - removed == 59_132_392  # 59.1M
    assert sparse["macs"] == sparse_macs == 157_997_440  # the paper's 163M: 3 % above, see jin-table-2-1
    vgg_dense = profile(build_224("vgg19"), (3, 224, 224))
    vgg_sparse = profile(build_224("vgg19", conv="maxmin"), (3, 224, 224))
    assert round(vgg_dense["nonzero_params"] / 1e6, 1) == 143.7 and round(vgg_dense["macs"] / 1e9, 1) == 19.6
    assert round(vgg_sparse["nonzero_params"] / 1e6, 1) == 128.1 and round(vgg_sparse["macs"] / 1e9, 1) == 4.5
    conv_weights = sum(m.weight.numel() for m in build_224("vgg19").modules() if isinstance(m, nn.Conv2d))
    assert vgg_dense["nonzero_params"] - vgg_sparse["nonzero_params"] == conv_weights * 7 // 9


def test_torchvision_counts_at_224():
    # the registered models are torchvision's at 224 (torchvision's recorded num_params)
    assert profile(build_224("vgg19", batch_norm=False), (3, 224, 224))["params"] == 143_667_240
    assert profile(build_224("resnet18"), (3, 224, 224))["params"] == 11_689_512
    assert profile(build_224("resnet50"), (3, 224, 224))["params"] == 25_557_032
    assert profile(build_224("inception_v3"), (3, 224, 224))["params"] == 23_834_568  # without the aux head


# ---- every model x every variant -------------------------------------------------------------------

JIN_MODELS = ("alexnet", "vgg19", "inception_v3", "resnet18", "resnet50")


def train_step(model: nn.Module, shape: tuple, batch: int = 4) -> torch.Tensor:
    """One SGD step on random images; returns the loss after checking everything stayed finite."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = F.cross_entropy(model(torch.randn(batch, *shape)), torch.arange(batch) % 10)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return loss


@pytest.mark.parametrize("conv", VARIANTS)  # dense: tests/test_models.py
@pytest.mark.parametrize("name", JIN_MODELS)
def test_jin_models_with_every_conv_train_a_step(name, conv):
    torch.manual_seed(0)
    conv_options = {"width": 16, "channel_sparse": True} if conv.startswith("local") else None
    # MNIST-sized (28x28 is the smallest common size all five small-input stems take) at an eighth width
    model = models.build(name, in_channels=1, image_size=28, width=0.125, conv=conv, conv_options=conv_options)
    assert torch.isfinite(train_step(model, (1, 28, 28)))
    counts = profile(model, (1, 28, 28))
    assert counts["flops"] == 2 * counts["macs"] > 0
    if conv in ("maxmin", "binary_heuristic", "binary_approx"):
        assert counts["nonzero_params"] < counts["params"]


@pytest.mark.parametrize("name", models.names())
def test_every_registered_model_takes_maxmin(name):
    """The `conv` option on the other papers' models too, so they can join a cross-paper comparison."""
    conv = "maxmin"
    torch.manual_seed(0)
    info = models.describe(name)["options"]
    options = {"width": 0.25} if "width" in info and name != "digits_cnn" else {}
    model = models.build(name, conv=conv, **options)
    shape = (info["in_channels"], info["image_size"], info["image_size"])
    assert torch.isfinite(train_step(model, shape))
    assert any(parametrize.is_parametrized(m) for m in model.modules())


def test_saved_weights_rebuild_the_same_model():
    torch.manual_seed(0)
    model = models.build("resnet18", width=0.25, conv="binary_approx").eval()
    state = model.state_dict()
    assert any(key.endswith("parametrizations.weight.original") for key in state)
    rebuilt = models.build("resnet18", width=0.25, conv="binary_approx").eval()
    rebuilt.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("name,size,side", [("inception_v3", 28, 1), ("inception_v3", 32, 1), ("vgg19", 28, 1),
                                            ("alexnet", 16, 1), ("alexnet", 32, 3), ("resnet18", 28, 4)])
def test_small_input_adaptations_keep_the_maps_alive(name, size, side):
    model = models.build(name, in_channels=1, image_size=size, width=0.125).eval()
    seen = {}
    last = {"alexnet": "features", "vgg19": "features", "inception_v3": "Mixed_7c", "resnet18": "layer4"}[name]

    def hook(module, inputs, output):
        seen["shape"] = output.shape

    model.get_submodule(last).register_forward_hook(hook)
    model(torch.zeros(1, 1, size, size))
    assert seen["shape"][-1] == side


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("options,key", [
    ({"conv": "maxmax"}, "model.conv"),
    ({"conv": "local_binary_heuristic", "conv_options": {"width": 0}}, "model.conv_options.width"),
    ({"conv": "local_binary_approx", "conv_options": {"width": 2.5}}, "model.conv_options.width"),
    ({"conv": "local_binary_approx", "conv_options": {"width": True}}, "model.conv_options.width"),
    ({"conv": "local_binary_heuristic", "conv_options": {"channel_sparse": "yes"}},
     "model.conv_options.channel_sparse"),
    ({"conv": "maxmin", "conv_options": {"width": 256}}, "model.conv_options.width"),
    ({"conv": "maxmin", "conv_options": {"pointwise": "sparse"}}, "model.conv_options.pointwise"),
    ({"conv": "binary_approx", "conv_options": {"init": "he"}}, "model.conv_options.init"),
    ({"width": 0.3}, "model.width"),
    ({"image_size": 20}, "model.image_size"),
])
def test_bad_options_fail_before_any_work_naming_key_value_and_valid_values(options, key):
    with pytest.raises(ConfigError) as info:
        models.build("inception_v3", **options)
    assert info.value.key == key
    assert repr(info.value.value) in str(info.value)
    # conv options are also checked when a sweep's config is resolved, before Ray starts
    if key.startswith("model.conv"):
        with pytest.raises(ConfigError) as info:
            checked({"model": {"name": "inception_v3", "options": options}})
        assert info.value.key == key.replace("model.", "model.options.", 1)  # where a config sets it


def test_unknown_conv_lists_the_variants():
    with pytest.raises(ConfigError) as info:
        models.build("alexnet", conv="sparse")
    for variant in ("dense",) + VARIANTS:
        assert variant in str(info.value)


@pytest.mark.parametrize("call,key", [(lambda: variance_factor("dense", 3), "mode"),
                                      (lambda: variance_factor("sparse", 1), "k"),
                                      (lambda: variance_factor("sparse", 2.5), "k"),
                                      (lambda: variance_factor_for("binary_approx", 1), "n")])
def test_variance_factor_rejects_bad_arguments(call, key):
    with pytest.raises(ConfigError) as info:
        call()
    assert info.value.key == key
