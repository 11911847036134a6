"""Çallı's convolution alternatives and models: shapes, hand-derived params and MACs, option errors."""
import pytest
import torch
from torch import nn

from harness import measure, models
from harness.errors import ConfigError
from harness.layers import separable


def counts(conv: str, **options) -> dict:
    model = models.build("calli_baseline", num_classes=10, in_channels=3, image_size=32, conv=conv, **options)
    return measure.profile(model, (3, 32, 32))


# The baseline at 3x32x32, widths 32/64/128, 10 classes. Conv1 (kept dense in every variant):
# 5*5*3*32 weights + 32 biases, BN 2*32, 32*32 positions. Conv2 at 16x16, conv3 at 8x8. Dense layer 128*10 + 10.
CONV1_PARAMS, CONV1_MACS = 5 * 5 * 3 * 32 + 32 + 2 * 32, 32 * 32 * 5 * 5 * 3 * 32
BN23 = 2 * 64 + 2 * 128
FC_PARAMS, FC_MACS = 128 * 10 + 10, 128 * 10


def test_dense_baseline_counts_by_hand():
    c = counts("dense")
    assert c["params"] == CONV1_PARAMS + (25 * 32 * 64 + 64) + (25 * 64 * 128 + 128) + BN23 + FC_PARAMS == 260362
    assert c["macs"] == CONV1_MACS + 16 * 16 * 25 * 32 * 64 + 8 * 8 * 25 * 64 * 128 + FC_MACS == 28_673_280


def test_separable_counts_by_hand():
    # depthwise K^2 C_in (no bias) + pointwise C_in C_out (+ the original bias); MACs H W (K^2 C_in + C_in C_out)
    conv2 = 25 * 32 + 32 * 64 + 64, 16 * 16 * (25 * 32 + 32 * 64)
    conv3 = 25 * 64 + 64 * 128 + 128, 8 * 8 * (25 * 64 + 64 * 128)
    c = counts("separable")
    assert c["params"] == CONV1_PARAMS + conv2[0] + conv3[0] + BN23 + FC_PARAMS == 17002
    assert c["macs"] == CONV1_MACS + conv2[1] + conv3[1] + FC_MACS == 3_814_656
    nonlinear = counts("separable_nonlinear")  # + BN between depthwise and pointwise: 2 C_in each
    assert nonlinear["params"] == c["params"] + 2 * 32 + 2 * 64
    assert nonlinear["macs"] == c["macs"]


def test_kernel_composing_counts_by_hand():
    # 1x5 (C_in -> n, bias) then 5x1 (n -> C_out, bias), n = C_out; both at the output size (stride 1)
    conv2 = (5 * 32 * 64 + 64) + (5 * 64 * 64 + 64), 16 * 16 * (5 * 32 * 64 + 5 * 64 * 64)
    conv3 = (5 * 64 * 128 + 128) + (5 * 128 * 128 + 128), 8 * 8 * (5 * 64 * 128 + 5 * 128 * 128)
    c = counts("kernel_composing")
    assert c["params"] == CONV1_PARAMS + conv2[0] + conv3[0] + BN23 + FC_PARAMS == 158154
    assert c["macs"] == CONV1_MACS + conv2[1] + conv3[1] + FC_MACS == 18_187_520
    narrow = counts("kernel_composing", conv_options={"mid_channels": 8})
    assert narrow["macs"] == CONV1_MACS + 16 * 16 * 5 * 8 * (32 + 64) + 8 * 8 * 5 * 8 * (64 + 128) + FC_MACS


@pytest.mark.parametrize("variant", separable.VARIANTS)
@pytest.mark.parametrize("stride,padding", [(1, 2), (2, 2), (2, 0)])
def test_variants_keep_the_output_shape_and_train(variant, stride, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 5, stride=stride, padding=padding)
    model = nn.Sequential(conv)
    from harness.layers import convert_convs

    x = torch.randn(2, 8, 15, 13)
    expected = conv(x).shape
    convert_convs(model, variant)
    assert not isinstance(model[0], nn.Conv2d)
    y = model(x)
    assert y.shape == expected
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_input_convs_and_1x1_convs_stay_dense():
    for variant in separable.VARIANTS:
        model = models.build("calli_baseline", num_classes=10, in_channels=3, image_size=32, conv=variant)
        assert isinstance(model.features[0], nn.Conv2d)  # the 3-channel input conv, as in the thesis
        model = models.build("calli_baseline", num_classes=10, in_channels=3, image_size=32, conv=variant,
                             conv_options={"min_in_channels": 1})
        assert not isinstance(model.features[0], nn.Conv2d)
        assert separable.separable(nn.Conv2d(8, 8, 1)) is None


def test_bad_options_raise_config_errors_before_building():
    with pytest.raises(ConfigError, match="mid_channels"):
        models.check_options("calli_baseline", {"conv": "kernel_composing", "conv_options": {"mid_channels": 0}})
    with pytest.raises(ConfigError, match="min_in_channels"):
        models.check_options("calli_baseline", {"conv": "separable", "conv_options": {"min_in_channels": "x"}})
    with pytest.raises(ConfigError, match="model.widths"):
        models.check_options("calli_baseline", {"widths": [32, 0, 64]})
    with pytest.raises(ConfigError, match="model.blocks"):
        models.check_options("calli_cifar", {"blocks": 0})


def block_params(cin, cout):  # BN, dw 3x3, BN, pw, BN, dw 3x3, BN, pw (non-linear separable)
    return 2 * cin + 9 * cin + 2 * cin + cin * cout + 2 * cout + 9 * cout + 2 * cout + cout * cout


def block_macs(cin, cout, side):  # dw 9 C and pw C_in C_out per position; a strided block at its output size
    return side * side * (9 * cin + cin * cout + 9 * cout + cout * cout)


def test_separable_residual_model_counts_by_hand():
    """Our reading of Figure 2.12: blocks 1 / 2 / 3 per stage on 32 / 64 / 128 (Table 3.2: 0.12 M, ~13M ops)."""
    expected = 27 * 32 + block_params(32, 32) + block_params(32, 64) + block_params(64, 64) \
        + block_params(64, 128) + 2 * block_params(128, 128) + 2 * 128 + 128 * 10 + 10
    model = models.build("calli_cifar", num_classes=10, in_channels=3, image_size=32)
    c = measure.profile(model, (3, 32, 32))
    assert c["params"] == expected == 121_802
    assert f"{c['params'] / 1e6:.2f}" == "0.12"  # Table 3.2's "# params" to its two decimals

    def macs(side):  # conv1 and stage 1 at the input side, stage 2 at side / 2, stage 3 at side / 4
        return side * side * 27 * 32 + block_macs(32, 32, side) + block_macs(32, 64, side // 2) \
            + block_macs(64, 64, side // 2) + block_macs(64, 128, side // 4) + 2 * block_macs(128, 128, side // 4) \
            + 1280

    assert c["macs"] == macs(32) == 13_931_776
    assert measure.profile(model, (3, 24, 24))["macs"] == macs(24) == 7_837_184  # the thesis's 24x24 crops
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == 1 + 6 * 4 + 1  # 26, thesis 27
    assert [len(stage) for stage in model.stages] == [1, 2, 3]
    resnet = measure.profile(models.build("resnet20", num_classes=10), (3, 32, 32))
    # the thesis: "about 2 times smaller in terms of number of parameters" (0.27 / 0.12), "3 times less operations"
    assert 2.0 < resnet["params"] / c["params"] < 2.5 and 2.5 < resnet["macs"] / c["macs"] < 3.5
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    odd = models.build("calli_cifar", num_classes=10, in_channels=1, image_size=8)
    assert odd(torch.randn(2, 1, 9, 9)).shape == (2, 10)  # odd sides: avg-pool shortcut matches the strided conv


def test_two_blocks_per_stage_is_the_other_reading():
    expected = 27 * 32 + 2 * block_params(32, 32) + block_params(32, 64) + block_params(64, 64) \
        + block_params(64, 128) + block_params(128, 128) + 2 * 128 + 128 * 10 + 10
    for blocks in (2, [2, 2, 2]):
        model = models.build("calli_cifar", num_classes=10, in_channels=3, image_size=32, blocks=blocks)
        c = measure.profile(model, (3, 32, 32))
        assert c["params"] == expected == 88_586
        assert c["macs"] == 32 * 32 * 27 * 32 + 2 * block_macs(32, 32, 32) + block_macs(32, 64, 16) \
            + block_macs(64, 64, 16) + block_macs(64, 128, 8) + block_macs(128, 128, 8) + 1280 == 14_374_144
        assert [len(stage) for stage in model.stages] == [2, 2, 2]
    with pytest.raises(ConfigError, match="model.blocks"):
        models.check_options("calli_cifar", {"blocks": [1, 2]})
    with pytest.raises(ConfigError, match="model.blocks"):
        models.check_options("calli_cifar", {"blocks": [1, 0, 5]})
