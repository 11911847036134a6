"""Every registered model builds, adapts to another dataset, trains one step; counts by hand."""
import pytest
import torch
import torch.nn.functional as F

from harness import models
from harness.errors import ConfigError
from harness.measure import count_params, profile

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
