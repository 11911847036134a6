"""Pöllot et al.: width multiplier α (counts by hand), WRN-28-10, the ensemble model (soft voting,
stacking, ComboNet as equivalences), the Trainer's use of a model's own loss, data.classes and
data.crop_padding, the flop_budget method, and the report functions on fabricated runs."""
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from harness import cli, models
from harness.checks import checked
from harness.config import RunConfig
from harness.data import load
from harness.errors import ConfigError
from harness.measure import profile
from harness.models.common import round_channels
from harness.models.ensemble import combine_heads
from harness.train import Trainer

SQRT_HALF = math.sqrt(0.5)
VGG16_CONVS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def meta_counts(name, shape=(3, 32, 32), **options):
    with torch.device("meta"):  # shapes and counts without memory or arithmetic
        model = models.build(name, **options)
    return profile(model, shape)


def vgg16_small_input_counts(alpha, num_classes=10, in_channels=3, side=32):
    """VGG-16 with BN for a 32x32 image (ceil-mode pools, 1x1 average pool), every width x α rounded to
    the nearest channel. Conv: C_in·C_out·9 weights + C_out bias + 2·C_out BN, C_in·C_out·9·H·W MACs at
    its input side H = W (halved by each pool: 32, 16, 8, 4, 2); linear: in·out + out, in·out MACs."""
    params = macs = 0
    previous, size = in_channels, side
    for item in VGG16_CONVS:
        if item == "M":
            size = math.ceil(size / 2)
            continue
        channels = round_channels(item, alpha)
        params += previous * channels * 9 + channels + 2 * channels
        macs += previous * channels * 9 * size * size
        previous = channels
    hidden = round_channels(4096, alpha)
    for fan_in, fan_out in ((previous, hidden), (hidden, hidden), (hidden, num_classes)):
        params += fan_in * fan_out + fan_out
        macs += fan_in * fan_out
    return params, macs


@pytest.mark.parametrize("alpha", [1.0, SQRT_HALF, 0.5, 0.25])
def test_vgg16_width_counts_by_hand(alpha):
    counts = meta_counts("vgg16", width=alpha, width_rounding="nearest")
    assert (counts["params"], counts["macs"]) == vgg16_small_input_counts(alpha)


def test_width_scales_params_and_macs_by_about_alpha_squared():
    full = {name: meta_counts(name, **extra) for name, extra in
            (("vgg16", {}), ("mobilenetv2", {"width_rounding": "nearest"}), ("wrn28_10", {}))}
    assert vgg16_small_input_counts(1.0) == (full["vgg16"]["params"], full["vgg16"]["macs"])
    for alpha in (SQRT_HALF, 0.5, 0.25):
        for name in full:
            counts = meta_counts(name, width=alpha, width_rounding="nearest")
            for key in ("params", "macs"):
                ratio = counts[key] / full[name][key] / alpha ** 2
                # α² on every layer but the stem's input and the classifier's outputs (x α): within 2 %
                # for VGG-16 and WRN (rounding moves it either way); MobileNetV2's depthwise convs and
                # BNs scale by α, not α², so its ratio grows as α shrinks: 1.15 (params), 1.23 (MACs) x α² at 0.25
                low, high = (0.99, 1.02) if name != "mobilenetv2" else (1.0, 1.25)
                assert low < ratio < high, (name, alpha, key, ratio)


def test_vgg16_keeps_its_strict_default_and_mobilenet_its_torchvision_default():
    with pytest.raises(ConfigError, match="model.width"):
        models.build("vgg16", width=SQRT_HALF)  # exact rounding (Jin's models rely on it) rejects 45.25 channels
    with pytest.raises(ConfigError, match="model.width_rounding"):
        models.build("vgg16", width=0.5, width_rounding="up")
    import torchvision

    torchvision_half = models.build("mobilenetv2", width=0.5)  # the default is torchvision's width_mult
    reference = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5)
    assert [p.shape for p in torchvision_half.parameters()] == [p.shape for p in reference.parameters()]
    assert torchvision_half.features[-1][0].out_channels == 1280  # kept below width 1
    nearest_half = models.build("mobilenetv2", width=0.5, width_rounding="nearest")
    assert nearest_half.features[-1][0].out_channels == 640 and nearest_half.classifier[1].in_features == 640
    assert nearest_half.features[1].conv[0][0].groups == 16  # the depthwise conv stays depthwise (32 x 0.5)


def wrn_params_by_hand(depth=28, widen=10, num_classes=10, in_channels=3):
    """Zagoruyko & Komodakis: stem conv 3x3 to 16; per block BN(C_in) + conv3x3 C_in->C_out + BN(C_out) +
    conv3x3 C_out->C_out, plus a 1x1 C_in->C_out shortcut where C_in != C_out; final BN + linear.
    WRN-28-10 (10 classes):
      stem                                             =        432
      group 1: first block 32 + 23,040 + 320 + 230,400 + 2,560       =    286,352
               3 more x (320 + 230,400 + 320 + 230,400)             =  1,384,320
      group 2: first 320 + 460,800 + 640 + 921,600 + 51,200         =  1,434,560
               3 more x (640 + 921,600 + 640 + 921,600)             =  5,533,440
      group 3: first 640 + 1,843,200 + 1,280 + 3,686,400 + 204,800  =  5,736,320
               3 more x (1,280 + 3,686,400 + 1,280 + 3,686,400)     = 22,126,080
      final BN 1,280, linear 640 x 10 + 10                          =      7,690
      total                                                         = 36,479,194 (the paper's 36.5M)
    """
    n = (depth - 4) // 6
    total = in_channels * 16 * 9
    previous = 16
    for channels in (16 * widen, 32 * widen, 64 * widen):
        for _ in range(n):
            total += 2 * previous + previous * channels * 9 + 2 * channels + channels * channels * 9
            if previous != channels:
                total += previous * channels
            previous = channels
    return total + 2 * previous + previous * num_classes + num_classes


def test_wrn28_10_has_the_papers_parameter_count():
    assert wrn_params_by_hand() == 36_479_194
    counts = meta_counts("wrn28_10")
    assert counts["params"] == 36_479_194
    assert meta_counts("wrn28_10", shape=(3, 224, 224), image_size=224)["params"] == 36_479_194  # stem adds none
    with pytest.raises(ConfigError, match="model.dropout"):
        models.build("wrn28_10", dropout=1.5)


def test_profile_cli_shows_the_alpha_squared_scaling(capsys):
    import json

    results = []
    for width in ("1", "0.5"):
        assert cli.main(["profile", "wrn28_10", "--set", f"width={width}", "--input", "3x32x32", "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["params"] == 36_479_194
    assert 0.25 <= results[1]["macs"] / results[0]["macs"] < 0.251  # every layer but the stem's input halves


# ---- the ensemble model ----------------------------------------------------------------------------

def members_built_directly(seed, widths, **options):
    torch.manual_seed(seed)
    return [models.build("digits_cnn", num_classes=10, in_channels=1, image_size=8, width=w, **options)
            for w in widths]


def ensemble(seed, **options):
    torch.manual_seed(seed)
    return models.build("ensemble", num_classes=10, in_channels=1, image_size=8, base="digits_cnn", **options)


def test_combine_heads_is_the_mean_of_the_heads():
    torch.manual_seed(0)
    heads = [torch.nn.Linear(d, 5) for d in (3, 7, 4)]
    features = [torch.randn(6, h.in_features) for h in heads]
    shared = combine_heads(heads)
    assert shared.weight.shape == (5, 14)
    mean = torch.stack([h(f) for h, f in zip(heads, features)]).mean(0)
    torch.testing.assert_close(shared(torch.cat(features, 1)), mean)


def test_combonet_output_equals_the_mean_of_the_members_logits():
    widths = [0.5, 0.25, 0.5]  # members may differ in α
    model = ensemble(3, width=widths, members=3, combine="combonet").eval()
    members = [m.eval() for m in members_built_directly(3, widths)]
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(model(x), torch.stack([m(x) for m in members]).mean(0))
    assert isinstance(model.members[0].fc, torch.nn.Identity)  # the heads now live in the shared layer
    params = sum(p.numel() for p in model.parameters())
    assert params == sum(sum(p.numel() for p in m.parameters()) for m in members) - 2 * 10  # N biases -> one


def test_soft_voting_outputs_the_log_of_the_mean_probability_and_trains_members_independently():
    model = ensemble(4, width=0.5, members=2, combine="soft_voting").train()
    members = [m.train() for m in members_built_directly(4, [0.5, 0.5])]
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5])
    output, loss = model.forward_train(x, y)
    logits = [m(x) for m in members]
    torch.testing.assert_close(output.exp(), torch.stack([z.softmax(1) for z in logits]).mean(0))
    torch.testing.assert_close(loss, F.cross_entropy(logits[0], y) + F.cross_entropy(logits[1], y))
    loss.backward()
    F.cross_entropy(logits[1], y).backward()  # member 1 alone, with its own loss
    torch.testing.assert_close(model.members[1].fc.weight.grad, members[1].fc.weight.grad)
    model.eval()  # evaluation: the same vote, with each member's BN running statistics
    evaluated = torch.stack([m.eval()(x).softmax(1) for m in model.members]).mean(0)
    torch.testing.assert_close(model(x).exp(), evaluated)


def test_one_member_soft_voting_is_the_base_network():
    model = ensemble(5, width=1.0, members=1, combine="soft_voting").train()
    (member,) = members_built_directly(5, [1.0])
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 2, 3, 4])
    _, loss = model.forward_train(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(member.train()(x), y))


def test_stacking_meta_classifier_learns_on_detached_member_outputs():
    model = ensemble(6, width=0.5, members=2, combine="stacking", meta_hidden=7).train()
    linears = [m for m in model.meta if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(20, 7), (7, 10)]  # two dense layers
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    output, loss = model.forward_train(x, y)
    members_only = sum(F.cross_entropy(m(x), y) for m in model.members)
    torch.testing.assert_close(loss, members_only + F.cross_entropy(output, y))
    grads = torch.autograd.grad(loss, [model.members[0].fc.weight, linears[0].weight])
    member_grad = torch.autograd.grad(members_only, model.members[0].fc.weight)[0]
    torch.testing.assert_close(grads[0], member_grad)  # the meta loss does not reach the members
    assert grads[1].abs().sum() > 0


@pytest.mark.parametrize("options,key", [
    ({"members": 0}, "model.members"),
    ({"combine": "bagging"}, "model.combine"),
    ({"base": "crnet_cb"}, "model.base"),
    ({"base": "ensemble"}, "model.base"),
    ({"width": [0.5, 0.5, 0.5], "members": 2}, "model.width"),
    ({"width": 0}, "model.width"),
    ({"base_options": {"width": 0.5}}, "model.base_options.width"),
    ({"base": "vgg16", "width": SQRT_HALF}, "model.width"),  # exact rounding: found on the meta build
    ({"base": "vgg16", "base_options": {"batch_norm": "yes"}}, "model.batch_norm"),
])
def test_bad_ensemble_options_fail_before_any_work(options, key):
    with pytest.raises(ConfigError) as error:
        models.check_options("ensemble", options)
    assert error.value.key == key


def trainer(tmp_path=None, **sections):
    d = {"data": {"dataset": "digits", "train_subset": 64, "test_subset": 32, "val_size": 32},
         "train": {"epochs": 2, "batch_size": 32, "threads": 1}}
    for section, values in sections.items():
        d[section] = {**d.get(section, {}), **values}
    return Trainer(RunConfig.from_dict(d))


def test_trainer_uses_the_models_own_loss():
    # Stacking detaches the members from its output: only forward_train's member losses move them.
    t = trainer(model={"name": "ensemble", "options": {"base": "digits_cnn", "combine": "stacking"}},
                train={"weight_decay": 0.0, "momentum": 0.0})
    before = t.model.members[0].fc.weight.detach().clone()
    metrics = t.train_epoch(1)
    assert not torch.equal(before, t.model.members[0].fc.weight)
    assert metrics["train_loss"] > 2 * math.log(10) * 0.8  # two members' losses and the meta loss, summed


def test_flop_budget_logs_the_full_size_networks_budget():
    t = trainer(model={"name": "ensemble", "options": {"base": "digits_cnn", "width": 0.5, "members": 2}},
                method={"name": "flop_budget", "options": {"budget_epochs": 4}})
    reference = profile(models.build("digits_cnn", num_classes=10, in_channels=1, image_size=8), (1, 8, 8))
    result = t.run().merged()
    assert result["reference_macs"] == reference["macs"] and result["reference_params"] == reference["params"]
    assert result["macs_ratio"] == pytest.approx(t.counts()["macs"] / reference["macs"])
    assert result["budget_used"] == pytest.approx(t.counts()["macs"] / reference["macs"] * 2 / 4)
    assert result["train_macs"] == 3 * t.counts()["macs"] * 2 * 64


def test_flop_budget_refuses_a_run_that_would_exceed_it_and_times_a_batch():
    with pytest.raises(ConfigError, match="method.options.budget_epochs"):
        trainer(model={"name": "ensemble", "options": {"base": "digits_cnn", "width": 1.0, "members": 2}},
                method={"name": "flop_budget", "options": {"budget_epochs": 2}})
    t = trainer(model={"name": "ensemble", "options": {"base": "digits_cnn", "width": 0.5, "members": 2,
                                                        "combine": "soft_voting"}},
                method={"name": "flop_budget", "options": {"timing_batch": 4, "timing_repeats": 2, "timing_warmup": 1}},
                train={"epochs": 1})
    weights = {k: v.clone() for k, v in t.model.state_dict().items()}
    result = t.run().merged()
    trained = {k: v.clone() for k, v in t.model.state_dict().items()}
    assert result["train_batch_ms"] > 0 and result["infer_batch_ms"] > 0 and result["timing_batch"] == 4
    assert any(not torch.equal(weights[k], trained[k]) for k in weights)  # it trained ...
    t.method._time(t.context)
    assert all(torch.equal(trained[k], v) for k, v in t.model.state_dict().items())  # ... timing leaves it be
    with pytest.raises(ConfigError, match="method.options.timing_batch"):
        checked({"method": {"name": "flop_budget", "options": {"timing_batch": -1}}})


# ---- data.classes, data.crop_padding -------------------------------------------------------------

def test_classes_keeps_the_first_classes_of_the_pet_files(tmp_path):
    from tests.test_data import write_pet

    colors = {"Abyssinian_1": (200, 40, 40), "beagle_1": (40, 40, 200), "Abyssinian_2": (40, 200, 40),
              "beagle_2": (120, 120, 120), "Abyssinian_3": (10, 220, 90), "beagle_3": (90, 10, 220)}
    write_pet(tmp_path, colors, "Abyssinian_1 1 1 1\nbeagle_1 2 2 1\nAbyssinian_2 1 1 1\nbeagle_2 2 2 1\n",
              "Abyssinian_3 1 1 1\nbeagle_3 2 2 1\n")
    everything = load("oxford_pet", data_root=str(tmp_path), val_size=0, image_size=8)
    assert everything.train.labels.tolist() == [0, 1, 0, 1] and everything.info.num_classes == 37
    first = load("oxford_pet", data_root=str(tmp_path), val_size=0, image_size=8, classes=1)
    assert first.train.labels.tolist() == [0, 0] and first.test.labels.tolist() == [0]
    assert first.info.num_classes == 1
    torch.testing.assert_close(first.train.images, everything.train.images[[0, 2]])  # Abyssinian_1, _2
    torch.testing.assert_close(first.test.images, everything.test.images[:1])
    with pytest.raises(ConfigError, match="data.classes"):
        load("oxford_pet", data_root=str(tmp_path), val_size=0, image_size=8, classes=38)


def test_classes_splits_only_the_kept_classes_and_all_classes_change_nothing():
    plain = load("digits", val_size=100, train_subset=300, test_subset=50)
    same = load("digits", val_size=100, train_subset=300, test_subset=50, classes=10)
    for a, b in ((plain.train, same.train), (plain.val, same.val), (plain.test, same.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    three = load("digits", val_size=50, classes=3)
    full = load("digits", val_size=0)
    assert three.info.num_classes == 3
    for split in (three.train, three.val, three.test):
        assert int(split.labels.max()) == 2
    assert len(three.train) + len(three.val) == int((full.train.labels < 3).sum())
    assert len(three.test) == int((full.test.labels < 3).sum())


def test_data_options_are_checked_and_crop_padding_reaches_the_loader():
    for key, value in (("classes", 0), ("crop_padding", -1)):
        with pytest.raises(ConfigError, match=f"data.{key}"):
            RunConfig.from_dict({"data": {key: value}})
    assert trainer(model={"name": "digits_cnn"}).train_loader.crop_padding == 0  # digits' default
    t = trainer(model={"name": "digits_cnn"}, data={"crop_padding": 2, "classes": 4})
    assert t.train_loader.crop_padding == 2 and t.build_kwargs["num_classes"] == 4


# ---- reports on fabricated runs -------------------------------------------------------------------

def test_accuracy_table_puts_the_difference_to_the_full_network_beside_the_slides():
    from harness_analysis.poellot import make_accuracy_table

    runs = pd.DataFrame([
        {"row": "cifar10-full", "seed": 0, "test_acc_at_best_val": 90.0},
        {"row": "cifar10-full", "seed": 1, "test_acc_at_best_val": 92.0},
        {"row": "cifar10-a0.5-n2-combonet", "seed": 0, "test_acc_at_best_val": 91.5, "macs_ratio": 0.5,
         "params_ratio": 0.5},
        {"row": "cifar10-a0.5-n2-combonet", "seed": 1, "test_acc_at_best_val": 93.5, "macs_ratio": 0.5,
         "params_ratio": 0.5},
    ]).assign(dataset="digits", **{"config.model.options.base": "vgg16"})
    table = make_accuracy_table(runs).frame.set_index("Ensemble Method")
    combonet = table[table["α"] == "0.5"].loc["ComboNet"]
    assert combonet["VGG-16 CIFAR-10 (paper)"] == "+0.41" and combonet["WRN CIFAR-100 (paper)"] == "+0.49"
    # (92.5 - 91.0) ± sqrt(2/2 + 2/2): both sides have variance 2
    assert combonet["VGG-16 CIFAR-10: ours (digits)"] == f"+1.50 ± {math.sqrt(2):.2f} (n=2)"
    assert table.loc["full-size: test accuracy %", "VGG-16 CIFAR-10: ours (digits)"] == "91.00 (n=2)"
    assert table[table["α"] == "√0.5"].iloc[0]["WRN CIFAR-10 (paper)"] == "-"  # blank on the slide


def test_timing_table_relates_every_row_to_the_full_network():
    from harness_analysis.poellot import make_timing_table

    runs = pd.DataFrame([{"row": row, "train_batch_ms": ms, "infer_batch_ms": ms / 4, "timing_batch": 16,
                          "device": "NVIDIA H100", "dataset": "cifar10", "config.model.options.base": "vgg16"}
                         for row, ms in (("a1-n1", 40.0), ("a0.5-n1", 12.0), ("a0.5-n2", 24.0), ("a0.25-n8", 50.0))])
    frame = make_timing_table(runs).frame
    vgg = frame[frame["network"] == "VGG-16"].set_index("N")
    assert list(vgg["ms (paper)"]) == ["67.77", "26.36", "54.52", "101.76"]
    assert vgg.loc[8, "x full (paper)"] == f"{101.76 / 67.77:.2f}"
    assert vgg.loc[8, "train x full (ours)"] == "1.25" and vgg.loc[8, "forward ms (ours)"] == "12.50"
    assert set(vgg["device (ours)"]) == {"NVIDIA H100"}
    assert set(frame[frame["network"] == "WRN"]["train step ms (ours)"]) == {"-"}  # no runs: paper only


@pytest.mark.parametrize("alpha", [math.sqrt(0.5), 0.5, 0.25])
def test_vgg16_at_224_takes_every_alpha_of_the_slides(alpha):
    """The flattened 7x7 map feeds the first linear layer: its input is round(512 a) x 49, not round(25,088 a)."""
    from harness.measure import profile_model

    counts = profile_model("vgg16", {"width": alpha, "width_rounding": "nearest"}, (3, 224, 224), by_layer=True)
    last, hidden = math.floor(512 * alpha + 0.5), math.floor(4096 * alpha + 0.5)  # nearest, halves up
    (first,) = [layer for layer in counts["layers"] if layer["name"] == "classifier.0"]
    assert first["macs"] == last * 49 * hidden
    assert first["params"] == last * 49 * hidden + hidden


# ---- ComboNet of mixed widths (issue 15, item 5) --------------------------------------------------

MIXED_WIDTHS = {"a0.71_0.25-n2-combonet": [SQRT_HALF, 0.25], "a0.5_0.25x4-n5-combonet": [0.5, 0.25, 0.25, 0.25, 0.25]}


@pytest.mark.parametrize("base,widths,features", [
    # penultimate width x α, nearest channel: VGG-16 4096 -> 2896 (2896.3), 1024; WRN-28-10 640 -> 453
    # (452.55), 160; MobileNetV2's last conv 1280 -> 640, 320 (x4)
    ("vgg16", [SQRT_HALF, 0.25], [2896, 1024]),
    ("wrn28_10", [SQRT_HALF, 0.25], [453, 160]),
    ("mobilenetv2", [0.5, 0.25, 0.25, 0.25, 0.25], [640, 320, 320, 320, 320]),
])
def test_mixed_width_combonet_of_the_papers_bases_outputs_the_mean_of_its_members_logits(base, widths, features):
    options = {"num_classes": 10, "in_channels": 3, "image_size": 32}
    torch.manual_seed(11)
    model = models.build("ensemble", base=base, width=widths, members=len(widths), combine="combonet",
                         base_options={"width_rounding": "nearest"}, **options).eval()
    torch.manual_seed(11)  # the same draws, member by member, as the ensemble made them
    members = [models.build(base, width=w, width_rounding="nearest", **options).eval() for w in widths]
    heads = [m.get_submodule({"vgg16": "classifier.6", "wrn28_10": "fc", "mobilenetv2": "classifier.1"}[base])
             for m in members]
    assert [h.in_features for h in heads] == features and model.head.in_features == sum(features)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.stack([m(x) for m in members]).mean(0), rtol=1e-4, atol=1e-5)


def test_the_sweeps_mixed_rows_are_the_reports_and_its_counts_are_the_built_models():
    """The α sets of poellot_accuracy.yaml's mixed rows are the report's, and the params / MACs ratios its
    comment prints (224x224 CIFAR-10, against the full-size network) are those of the built models."""
    from harness_analysis.poellot import MIXED, ROWS
    from harness import catalog

    sweep = catalog.all_sweeps()["poellot_accuracy"]
    rows = {r["label"]: r["config"]["model"]["options"] for r in sweep.rows}
    for setting, widths in MIXED_WIDTHS.items():
        assert rows[f"cifar10-{setting}"] == {"width": widths, "members": len(widths), "combine": "combonet"}
        assert MIXED[setting][1] == len(widths)
    assert sum(w * w for w in MIXED_WIDTHS["a0.5_0.25x4-n5-combonet"]) == 0.5  # the α = 0.5, N = 2 budget
    assert sum(w * w for w in MIXED_WIDTHS["a0.71_0.25-n2-combonet"]) == pytest.approx(0.5625)
    labels = list(ROWS)
    assert labels[labels.index("a0.5-n2-combonet") + 1:][:2] == list(MIXED)  # beside the uniform ComboNet
    text = sweep.path.read_text()
    shape = (3, 224, 224)
    for base, name in (("vgg16", "VGG-16"), ("mobilenetv2", "MobileNetV2"), ("wrn28_10", "WRN-28-10")):
        counts = {}
        for setting, widths in {"full": [1.0], "a0.5-n2": [0.5, 0.5], **MIXED_WIDTHS}.items():
            counts[setting] = meta_counts("ensemble", shape, image_size=224, base=base, width=widths,
                                          members=len(widths), combine="combonet",
                                          base_options={"width_rounding": "nearest"})
        full = counts.pop("full")
        line = f"{name:<12} {full['params']:>11,} / {full['macs'] / 1e9:6.3f} G    " + "   ".join(
            f"{c['params'] / full['params']:.3f} / {c['macs'] / full['macs']:.3f}" for c in counts.values())
        assert line in text, line


def test_accuracy_table_shows_the_mixed_rows_after_the_uniform_combonet():
    from harness_analysis.poellot import make_accuracy_table

    runs = pd.DataFrame([
        {"row": "cifar10-full", "seed": 0, "test_acc_at_best_val": 90.0},
        {"row": "cifar10-a0.5-n2-combonet", "seed": 0, "test_acc_at_best_val": 90.5},
        {"row": "cifar10-a0.71_0.25-n2-combonet", "seed": 0, "test_acc_at_best_val": 91.25, "macs_ratio": 0.565,
         "params_ratio": 0.563},
        {"row": "cifar10-a0.5_0.25x4-n5-combonet", "seed": 0, "test_acc_at_best_val": 89.0},
    ]).assign(dataset="digits", **{"config.model.options.base": "vgg16"})
    table = make_accuracy_table(runs)
    frame = table.frame
    methods = list(frame["Ensemble Method"])
    combonet = methods.index("ComboNet")  # the first: α = 0.5, N = 2
    assert list(frame["α"][combonet:combonet + 3]) == ["0.5", "√0.5, 0.25", "0.5, 4 x 0.25"]
    assert list(frame["N"][combonet:combonet + 3]) == [2, 2, 5]
    mixed = frame.iloc[combonet + 1]
    assert mixed["VGG-16 CIFAR-10 (paper)"] == "-" and mixed["VGG-16 CIFAR-10: ours (digits)"] == "+1.25 (n=1)"
    assert frame.iloc[combonet + 2]["VGG-16 CIFAR-10: ours (digits)"] == "-1.00 (n=1)"
    assert "VGG-16 a0.71_0.25-n2-combonet: 0.565 MACs, 0.563 params" in " ".join(table.notes)


# ---- the MobileNetV2 and WRN-28-10 rows at the quick profile (issue 15, item 6) --------------------

@pytest.mark.parametrize("base,column", [("mobilenetv2", "MobileNetV2 CIFAR-10"), ("wrn28_10", "WRN CIFAR-10")])
def test_quick_rows_of_mobilenetv2_and_wrn_train_on_digits_and_render(base, column):
    """The quick profile's cells of these bases, as `harness run poellot_accuracy --profile quick --dataset digits`
    resolves them, on 48 training images for one epoch (the full quick profile: docs/fidelity.md), trained and
    rendered: the full-size row, a mixed-α ComboNet and α = 0.25, N = 4 stacking."""
    from harness_analysis.poellot import make_accuracy_table
    from harness import catalog

    sweep = catalog.all_sweeps()["poellot_accuracy"]
    sets = ["data.train_subset=48", "data.test_subset=32", "data.val_size=16", "train.epochs=1", "train.threads=1"]
    wanted = ("cifar10-full", "cifar10-a0.25-n4-stacking", "cifar10-a0.71_0.25-n2-combonet")  # the sweep's order
    cells = [c for c in sweep.cells("quick", dataset="digits", sets=sets)
             if c.row in wanted and c.config["model"]["options"]["base"] == base]
    assert [c.row for c in cells] == list(wanted)
    records = []
    for cell in cells:
        assert cell.config["data"]["dataset"] == "digits" and cell.config["data"]["image_size"] is None
        result = Trainer(RunConfig.from_dict(cell.config)).run().merged()
        assert 0 < result["budget_used"] <= 1
        records.append({"row": cell.row, "seed": 0, **{k: result[k] for k in
                        ("test_acc_at_best_val", "macs_ratio", "params_ratio")}})
    runs = pd.DataFrame(records).assign(dataset="digits", **{"config.model.options.base": base})
    # the mixed ComboNet against the full network at 8x8 (the built models on the meta device): about Σα² =
    # 0.5625; MobileNetV2 more, its depthwise convs and BNs scale by α
    mixed = runs.set_index("row").loc["cifar10-a0.71_0.25-n2-combonet"]
    macs, params = {"wrn28_10": (184_153_374 / 327_695_616, 20_543_849 / 36_478_906),
                    "mobilenetv2": (3_240_616 / 5_473_664, 1_301_119 / 2_236_106)}[base]
    assert (mixed["macs_ratio"], mixed["params_ratio"]) == (pytest.approx(macs), pytest.approx(params))
    frame = make_accuracy_table(runs).frame.set_index("Ensemble Method")
    ours = f"{column}: ours (digits)"
    assert frame.loc["full-size: test accuracy %", ours].endswith("(n=1)")
    assert frame.loc["ComboNet, mixed α (ours)", ours].iloc[0].endswith("(n=1)")
    assert frame.loc["Stacking", ours].iloc[1].endswith("(n=1)")  # α = 0.25, N = 4


@pytest.mark.slow
def test_accuracy_smoke_report_shows_the_mixed_combonets_with_the_built_models_costs(smoke_all):
    """conftest's smoke run of poellot_accuracy (digits_cnn on digits): the two mixed-α ComboNets ran, the
    report prints them after the uniform α = 0.5, N = 2 ComboNet, and their MACs against the full network
    are the built models' (digits_cnn's channels 32 / 64 / 128 x α, nearest: √0.5 -> 23 / 45 / 91)."""
    from harness.runs import load_runs

    assert smoke_all.rc["poellot_accuracy"] == (0, 0)
    runs = load_runs("poellot_accuracy", smoke_all.store, profile="smoke").set_index("row")
    options = {"num_classes": 10, "in_channels": 1, "image_size": 8, "base": "digits_cnn", "combine": "combonet"}
    full = meta_counts("digits_cnn", (1, 8, 8), num_classes=10, in_channels=1, image_size=8)
    for setting, widths in MIXED_WIDTHS.items():
        run = runs.loc[f"cifar10-{setting}"]
        assert run["status"] == "FINISHED" and tuple(run["config.model.options.width"]) == tuple(widths)
        built = meta_counts("ensemble", (1, 8, 8), width=widths, members=len(widths), **options)
        assert float(run["macs_ratio"]) == pytest.approx(built["macs"] / full["macs"])
        assert float(run["params_ratio"]) == pytest.approx(built["params"] / full["params"])
    frame = pd.read_csv(smoke_all.reports / "poellot-table-accuracy.csv", dtype=str, keep_default_na=False)
    methods = list(frame["Ensemble Method"])
    combonet = methods.index("ComboNet")
    assert methods[combonet + 1:combonet + 3] == ["ComboNet, mixed α (ours)"] * 2
    ours = frame["digits_cnn CIFAR-10: ours (digits)"]
    assert all(ours[combonet + i].endswith("(n=1)") for i in (1, 2))
    assert "mixed-α ComboNets" in (smoke_all.reports / "poellot-figure-validation.md").read_text()
