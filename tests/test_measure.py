"""Params, MACs and FLOPs against hand-derived values (MACs = C_out*H_out*W_out*C_in/groups*k*k)."""
import pytest
import torch
from torch import nn

from harness import models
from harness.errors import ConfigError
from harness.measure import count_params, parse_input, profile, profile_model


def check(result, params, macs):
    assert result["params"] == params
    assert result["macs"] == macs
    assert result["flops"] == 2 * macs


def test_conv():
    # 16 outputs x 32x32 positions x (3 channels x 3x3); params 16*3*9 + 16 bias
    check(profile(nn.Conv2d(3, 16, 3, padding=1), (3, 32, 32)), 448, 16 * 32 * 32 * 3 * 3 * 3)
    assert 16 * 32 * 32 * 3 * 3 * 3 == 442_368


def test_depthwise_conv():
    check(profile(nn.Conv2d(32, 32, 3, padding=1, groups=32), (32, 16, 16)),
          32 * 9 + 32, 32 * 16 * 16 * 9)


def test_grouped_pointwise_conv():
    check(profile(nn.Conv2d(32, 64, 1, groups=4), (32, 8, 8)),
          64 * 8 + 64, 64 * 8 * 8 * (32 // 4))


def test_strided_conv():
    # 32x32 -> 16x16
    check(profile(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), (16, 32, 32)),
          16 * 32 * 9, 32 * 16 * 16 * 16 * 9)


def test_linear():
    check(profile(nn.Linear(64, 10), (1, 1, 64)), 650, 640)


def small_net():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),                       # 3x32x32 -> 16x32x32
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),  # -> 32x16x16
        nn.Conv2d(32, 32, 3, padding=1, groups=32),           # -> 32x16x16
        nn.Conv2d(32, 64, 1, groups=4),                       # -> 64x16x16
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


SMALL_NET_MACS = [16 * 32 * 32 * 27, 0, 32 * 16 * 16 * 16 * 9, 32 * 16 * 16 * 9,
                  64 * 16 * 16 * 8, 640]
SMALL_NET_PARAMS = [448, 32, 16 * 32 * 9, 32 * 9 + 32, 64 * 8 + 64, 650]


def test_sequential_sums_layers():
    result = profile(small_net(), (3, 32, 32), by_layer=True)
    check(result, sum(SMALL_NET_PARAMS), sum(SMALL_NET_MACS))
    assert result["input"] == "3x32x32"
    layers = result["layers"]
    assert [layer["name"] for layer in layers] == ["0", "1", "3", "4", "5", "8"]
    assert [layer["type"] for layer in layers] == ["Conv2d", "BatchNorm2d", "Conv2d", "Conv2d",
                                                   "Conv2d", "Linear"]
    assert [layer["macs"] for layer in layers] == SMALL_NET_MACS
    assert [layer["params"] for layer in layers] == SMALL_NET_PARAMS
    assert all(layer["flops"] == 2 * layer["macs"] for layer in layers)


def test_count_params_includes_frozen_excludes_buffers():
    model = small_net()
    model[0].weight.requires_grad_(False)
    assert count_params(model) == sum(SMALL_NET_PARAMS)


def test_profile_restores_mode_and_batch_of_one():
    model = small_net().train()
    profile(model, (3, 32, 32))
    assert model.training
    assert model[1].num_batches_tracked == 0  # eval mode: BN statistics untouched


def resnet20_macs():
    """Hand derivation at 3x32x32: sum over convs of C_out*H_out*W_out*C_in*k*k, plus the FC.

      stem     16*32*32*3*9                          =    442,368
      stage 1  6 convs x 16*32*32*16*9               = 14,155,776
      stage 2  32*16*16*16*9 + 5 x 32*16*16*32*9     = 12,976,128
      stage 3  64*8*8*32*9   + 5 x 64*8*8*64*9       = 12,976,128
      fc       64*10                                 =        640
      total                                          = 40,551,040
    Option A shortcuts (subsample + zero pad) do no multiply-adds.
    """
    stem = 16 * 32 * 32 * 3 * 9
    stage1 = 6 * 16 * 32 * 32 * 16 * 9
    stage2 = 32 * 16 * 16 * 16 * 9 + 5 * 32 * 16 * 16 * 32 * 9
    stage3 = 64 * 8 * 8 * 32 * 9 + 5 * 64 * 8 * 8 * 64 * 9
    return stem + stage1 + stage2 + stage3 + 64 * 10


def test_resnet20_macs():
    assert resnet20_macs() == 40_551_040
    result = profile_model("resnet20", {}, (3, 32, 32), by_layer=True)
    check(result, 269_722, 40_551_040)
    layers = result["layers"]
    assert sum(layer["type"] == "Conv2d" for layer in layers) == 19
    assert sum(layer["macs"] for layer in layers) == result["macs"]
    assert sum(layer["params"] for layer in layers) == result["params"]


@pytest.mark.parametrize("name", models.names())
def test_by_layer_sums_to_totals(name):
    result = profile_model(name, {}, by_layer=True)
    assert sum(layer["macs"] for layer in result["layers"]) == result["macs"]
    assert sum(layer["flops"] for layer in result["layers"]) == result["flops"]
    assert sum(layer["params"] for layer in result["layers"]) == result["params"]
    assert result["flops"] == 2 * result["macs"] > 0


def test_profile_model_input_shape():
    assert profile_model("digits_cnn", {})["input"] == "1x8x8"
    assert profile_model("resnet20", {"in_channels": 1, "image_size": 28})["input"] == "1x28x28"
    adapted = profile_model("resnet20", {"num_classes": 100}, (1, 28, 28))
    assert adapted["input"] == "1x28x28"
    assert adapted["params"] == 269_722 - 2 * 16 * 9 + 90 * 64 + 90
    with pytest.raises(ConfigError) as info:
        profile_model("resnet20", {"in_channels": 3}, (1, 28, 28))
    assert info.value.key == "model.in_channels"


@pytest.mark.parametrize("text,shape", [("3x32x32", (3, 32, 32)), (" 1X28x28 ", (1, 28, 28)),
                                        ("1x8x8", (1, 8, 8))])
def test_parse_input(text, shape):
    assert parse_input(text) == shape


@pytest.mark.parametrize("text", ["3x32", "0x32x32", "3x-1x32", "axbxc", "3x32x32x1", "", "3*32*32",
                                  None])
def test_parse_input_rejects(text):
    with pytest.raises(ConfigError) as info:
        parse_input(text)
    assert info.value.key == "input"
    assert "CxHxW" in str(info.value)


@pytest.mark.parametrize("name", models.names())
def test_meta_device_counts_equal_real_ones(name):
    """profile_model counts on the meta device; the same model built for real must count the same."""
    options = {"conv": "maxmin"} if name in ("resnet20", "vgg16") else {}  # a parametrized kernel too
    described = models.describe(name)["options"]
    shape = (described["in_channels"], described["image_size"], described["image_size"])
    real = profile(models.build(name, **options), shape, by_layer=True)
    assert profile_model(name, options, shape, by_layer=True) == real
