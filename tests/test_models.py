"""Every registered model builds, adapts to another dataset, trains one step; counts by hand."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import models
from harness.errors import ConfigError
from harness.measure import count_params, profile, profile_model
from harness.models.common import init_weights, make_stages, round_channels

ALL_MODELS = models.names()


def natural_shape(name):
    options = models.describe(name)["options"]
    return options["in_channels"], options["image_size"], options["image_size"]


def test_registry_holds_the_expected_models():
    assert {"resnet20", "resnet32", "resnet56", "mobilenetv2", "digits_cnn"} <= set(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("dataset", ["natural", "1x28x28/100"])
def test_forward_backward(name, dataset):
    torch.manual_seed(0)
    if dataset == "natural":
        shape, num_classes = natural_shape(name), 10
    else:
        shape, num_classes = (1, 28, 28), 100
    model = models.build(name, num_classes=num_classes, in_channels=shape[0],
                         image_size=shape[1])
    model.train()
    images = torch.randn(2, *shape)
    labels = torch.tensor([0, num_classes - 1])
    logits = model(images)
    assert logits.shape == (2, num_classes)
    loss = F.cross_entropy(logits, labels)
    assert torch.isfinite(loss)
    loss.backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", ALL_MODELS)
def test_describe(name):
    info = models.describe(name)
    assert info["name"] == name
    assert info["summary"]
    assert {"num_classes", "in_channels", "image_size"} <= set(info["options"])


def resnet_cifar_params(n, num_classes=10, in_channels=3):
    """He et al. 2016 Sec. 4.2 with option A shortcuts (no shortcut parameters).

    conv 3x3 weights C_in*C_out*9 (no bias), BN weight+bias 2*C, linear 64*classes + classes.
    resnet20 (n=3), 10 classes, 3 input channels:
      stem     3*16*9 + 2*16                               =     464
      stage 1  3 blocks x (2 * 16*16*9 + 2 * 2*16)         =  14,016
      stage 2  (16*32*9 + 32*32*9 + 4*32) + 2 x 18,560     =  51,072
      stage 3  (32*64*9 + 64*64*9 + 4*64) + 2 x 73,984     = 203,520
      fc       64*10 + 10                                  =     650
      total                                                = 269,722
    Option B (1x1 conv + BN projections at the two stage changes) adds
    (16*32 + 2*32) + (32*64 + 2*64) = 2,752, giving the 272,474 sometimes quoted for resnet20.
    """
    total = in_channels * 16 * 9 + 2 * 16
    previous = 16
    for channels in (16, 32, 64):
        for _ in range(n):
            total += previous * channels * 9 + 2 * channels + channels * channels * 9 + 2 * channels
            previous = channels
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("name,n,expected", [("resnet20", 3, 269_722),
                                             ("resnet32", 5, 464_154),
                                             ("resnet56", 9, 853_018)])
def test_resnet_param_counts(name, n, expected):
    assert resnet_cifar_params(n) == expected
    assert count_params(models.build(name)) == expected
    adapted = models.build(name, num_classes=100, in_channels=1, image_size=28)
    assert count_params(adapted) == resnet_cifar_params(n, num_classes=100, in_channels=1)


def test_resnet_width_scales_channels():
    model = models.build("resnet20", width=2)
    assert model.fc.in_features == 128
    assert count_params(model) > 3.5 * count_params(models.build("resnet20"))


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        models.build("resnet21")
    for name in ALL_MODELS:
        assert name in str(info.value)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ConfigError) as info:
        models.build("mobilenetv2", depth=3)
    assert info.value.key == "model.depth"
    for option in ("num_classes", "in_channels", "image_size", "width", "small_input"):
        assert option in str(info.value)


@pytest.mark.parametrize("name,options,key", [
    ("mobilenetv2", {"width": 0}, "model.width"),
    ("resnet20", {"width": -1.0}, "model.width"),
    ("digits_cnn", {"width": "wide"}, "model.width"),
    ("mobilenetv2", {"small_input": "yes"}, "model.small_input"),
    ("resnet20", {"num_classes": 0}, "model.num_classes"),
    ("digits_cnn", {"in_channels": 1.5}, "model.in_channels"),
    ("digits_cnn", {"image_size": 1}, "model.image_size"),
])
def test_bad_options_name_their_key(name, options, key):
    with pytest.raises(ConfigError) as info:
        models.build(name, **options)
    assert info.value.key == key


def test_mobilenetv2_width_scaling():
    full = profile(models.build("mobilenetv2", width=1.0), (3, 32, 32))
    half = profile(models.build("mobilenetv2", width=0.5), (3, 32, 32))
    assert half["params"] < full["params"]
    # MACs scale roughly with width^2 = 0.25; the 1280-channel last conv does not shrink.
    assert 0.2 < half["macs"] / full["macs"] < 0.35


def test_mobilenetv2_small_input_strides():
    small = models.build("mobilenetv2")
    assert small.features[0][0].stride == (1, 1)
    assert small.features[2].conv[1][0].stride == (1, 1)
    assert small.features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)

    large = models.build("mobilenetv2", image_size=224)
    assert large.features[0][0].stride == (2, 2)
    assert large.features(torch.zeros(1, 3, 224, 224)).shape[-2:] == (7, 7)

    gray = models.build("mobilenetv2", in_channels=1, image_size=28)
    assert gray.features[0][0].in_channels == 1


# ---- the shared scaffolding (harness.models.common) and counts it must keep ----

def test_round_channels_rounds_halves_up_and_refuses_none():
    assert [round_channels(16, w) for w in (0.5, 5 / 32, 9 / 32, 0.7071067811865476, 1 / 32)] == [8, 3, 5, 11, 1]
    with pytest.raises(ConfigError):  # 0.16 of a channel: no longer 1 channel under a width it does not have
        round_channels(16, 0.01)
    assert round_channels(64, 0.7071067811865476) == 45  # 45.25
    assert round_channels(4096, 0.7071067811865476) == 2896  # 2896.31


def test_resnet20_at_a_half_channel_rounds_up():
    # 16/32/64 x 5/32 = 2.5 / 5 / 10: the stem and first stage get 3 channels (Python's round gave 2)
    model = models.build("resnet20", width=5 / 32)
    assert (model.conv1.out_channels, model.layer2[0].conv1.out_channels, model.fc.in_features) == (3, 5, 10)


class _Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride, tag=None):
        super().__init__()
        self.shape, self.tag = (in_channels, out_channels, stride), tag


def test_make_stages_strides_each_stage_but_the_first_at_its_first_block():
    stages = make_stages(_Block, 5, (8, 16, 32), 2, tag="t")
    assert [[block.shape for block in stage] for stage in stages] == [
        [(5, 8, 1), (8, 8, 1)], [(8, 16, 2), (16, 16, 1)], [(16, 32, 2), (32, 32, 1)]]
    assert all(isinstance(stage, nn.Sequential) and block.tag == "t" for stage in stages for block in stage)


def test_init_weights_draws_he_normal_and_keeps_or_zeroes_biases():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 256, 3, bias=True), nn.BatchNorm2d(256), nn.Linear(256, 512))
    with torch.no_grad():
        model[1].weight.fill_(3.0)
    conv_bias, linear = model[0].bias.clone(), model[2].weight.clone()
    init_weights(model)
    # fan_out = 256 x 3 x 3, ReLU gain sqrt(2): std sqrt(2 / 2304) = 0.02946
    assert model[0].weight.std().item() == pytest.approx((2 / 2304) ** 0.5, rel=0.02)
    assert torch.equal(model[0].bias, conv_bias) and torch.equal(model[2].weight, linear)
    assert torch.equal(model[1].weight, torch.ones(256)) and torch.equal(model[1].bias, torch.zeros(256))
    init_weights(model, mode="fan_in", zero_conv_bias=True, linear_std=0.01, zero_linear_bias=True)
    assert model[0].weight.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.02)
    assert model[2].weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert not model[0].bias.any() and not model[2].bias.any()


def test_seeded_builds_are_identical():
    for name, options in (("resnet20", {}), ("wrn28_10", {"width": 0.1}), ("calli_cifar", {})):
        states = []
        for _ in range(2):
            torch.manual_seed(0)
            states.append(models.build(name, **options).state_dict())
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0]), name


@pytest.mark.parametrize("name,options,params,macs", [
    # resnet20, width 0.5 (8/16/32 channels), 3x32x32, 10 classes; conv weights Cin*Cout*9, BN 2*C:
    #   params: stem 216 + 16; stage 1: 3 x (2 x 576 + 32) = 3,552; stage 2: 1,152 + 2,304 + 64
    #           + 2 x 4,672 = 12,864; stage 3: 4,608 + 9,216 + 128 + 2 x 18,560 = 51,072; fc 330
    #           = 68,050
    #   MACs (Cin*Cout*9 x output pixels): stem 216 x 1,024 = 221,184; stage 1: 6 x 576 x 1,024 =
    #           3,538,944; stage 2: (1,152 + 5 x 2,304) x 256 = 3,244,032; stage 3: (4,608 + 5 x
    #           9,216) x 64 = 3,244,032; fc 320 = 10,248,512
    ("resnet20", {"width": 0.5}, 68_050, 10_248_512),
    # wrn28_10, width 0.1 (2 / 16 / 32 / 64 channels: 1.6 rounds to 2), 3x32x32, 10 classes:
    #   params: stem 54; group 1: (4 + 288 + 32 + 2,304 + 32 shortcut) + 3 x 4,672 = 16,676;
    #           group 2: (32 + 4,608 + 64 + 9,216 + 512) + 3 x 18,560 = 70,112; group 3: (64 +
    #           18,432 + 128 + 36,864 + 2,048) + 3 x 73,984 = 279,488; BN 128; fc 650 = 367,108
    #   MACs: stem 54 x 1,024 = 55,296; group 1: (288 + 2,304 + 32 + 6 x 2,304) x 1,024 =
    #           16,842,752; group 2: (4,608 + 9,216 + 512 + 6 x 9,216) x 256 = 17,825,792;
    #           group 3: (18,432 + 36,864 + 2,048 + 6 x 36,864) x 64 = 17,825,792; fc 640
    #           = 52,550,272
    ("wrn28_10", {"width": 0.1}, 367_108, 52_550_272),
])
def test_counts_by_hand(name, options, params, macs):
    counts = profile_model(name, options, (3, 32, 32))
    assert (counts["params"], counts["macs"]) == (params, macs)


@pytest.mark.parametrize("name,options,narrowest,smallest", [
    ("resnet20", {}, 16, "0.03125"),
    ("wrn28_10", {}, 16, "0.03125"),  # the stem, not the 160-channel groups
    ("digits_cnn", {}, 32, "0.015625"),
    ("alexnet_fmnist", {}, 64, "0.0078125"),
    ("convpool_cnn", {}, 96, "0.00521"),  # 0.5 / 96 = 0.0052083..., shown rounded up: it builds when copied back
    ("vgg16", {"width_rounding": "nearest"}, 64, "0.0078125"),
    ("mobilenetv2", {"width_rounding": "nearest"}, 16, "0.03125"),  # its 16-channel layer comes after the 32 of its stem
])
def test_a_width_that_leaves_a_layer_no_channel_is_refused_naming_the_smallest_that_builds(name, options, narrowest,
                                                                                          smallest):
    with torch.device("meta"):
        for width in (1e-6, float(smallest) * 0.99):
            with pytest.raises(ConfigError) as info:
                models.build(name, width=width, **options)
            assert (info.value.key, info.value.value) == ("model.width", width)
            assert info.value.valid == (f"a width at which the narrowest layer ({narrowest} channels at width 1) "
                                        f"keeps >= 1 channel: >= {smallest}")
        models.build(name, width=float(smallest), **options)  # the width the message names builds


def test_a_width_below_a_channel_is_bad_input_before_ray_starts(capsys, monkeypatch, tmp_path):
    import ray

    from harness import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ray, "init", lambda *a, **kw: pytest.fail("Ray started"))
    assert cli.main(["profile", "resnet20", "--set", "width=1e-6"]) == 2
    assert "model.width=1e-06 is not valid" in capsys.readouterr().err
    rc = cli.main(["run", "jiang-table-4-9", "--profile", "smoke", "--set", "model.options.width=1e-6",
                   "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("harness: error: model.options.width=1e-06 is not valid: expected a width "), err
    assert not (tmp_path / "mlflow.db").exists()
