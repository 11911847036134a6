"""Zheng et al.: Winograd F(2x2,3x3) layers, iterative pruning, dynamic batch size, the SC-CNN stack, reports."""
import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import measure, models, train
from harness.errors import ConfigError
from harness.layers import convert_convs
from harness.layers.winograd import A_T, B_T, WinogradConv2d, kernel_to_winograd
from harness.methods import base as methods_base
from harness.methods import dbs, pruning
from harness.models.zheng import fit_stack_weights


# -- Winograd ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, padding, bias", [((8, 8), 1, True), ((7, 5), 1, False), ((9, 6), 0, True)])
def test_winograd_equals_conv2d(size, padding, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=padding, bias=bias)
    x = torch.randn(2, 3, *size)
    out = WinogradConv2d(conv, relu=False)(x)
    assert out.shape == conv(x).shape
    assert torch.allclose(out, conv(x), atol=1e-4)


def test_winograd_model_equals_dense_model():
    torch.manual_seed(0)
    dense = models.build("resnet20", num_classes=10, in_channels=3, image_size=16, width=0.25).eval()
    wino = convert_convs(copy.deepcopy(dense), "winograd").eval()
    kinds = [type(m).__name__ for m in wino.modules() if isinstance(m, (nn.Conv2d, WinogradConv2d))]
    assert kinds.count("WinogradConv2d") == 19 - 2 and kinds.count("Conv2d") == 2  # two stride-2 convs stay dense
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(wino(x), dense(x), atol=1e-4)


def test_winograd_relu_is_eq_2_on_one_tile():
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 1, 3, padding=0, bias=False)
    d = torch.randn(4, 4)
    layer = WinogradConv2d(conv, relu=True)
    u = kernel_to_winograd(conv.weight.detach())[0, 0]
    expected = A_T @ (u * torch.relu(B_T @ d @ B_T.T)) @ A_T.T  # Aᵀ[U ⊙ ReLU(Bᵀ d B)]A, B = (Bᵀ)ᵀ
    got = layer(d.view(1, 1, 4, 4))[0, 0]
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, conv(d.view(1, 1, 4, 4))[0, 0], atol=1e-3)  # the ReLU changed something


def test_winograd_strict_and_macs():
    strided = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2))
    with pytest.raises(ConfigError, match="stride"):
        convert_convs(strided, "winograd", {"strict": True})
    assert isinstance(convert_convs(nn.Sequential(nn.Conv2d(4, 4, 3, stride=2)), "winograd")[0], nn.Conv2d)
    with pytest.raises(ConfigError, match="strict"):
        models.check_options("resnet20", {"conv": "winograd", "conv_options": {"strict": "yes"}})
    model = convert_convs(nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False)), "winograd_relu")
    # 8x8 output -> 4x4 tiles of 2x2; 16 products per tile and (in, out) pair instead of 36 for direct conv
    assert measure.profile(model, (8, 8, 8))["macs"] == 16 * 16 * 8 * 16
    assert measure.profile(nn.Conv2d(8, 16, 3, padding=1, bias=False), (8, 8, 8))["macs"] == 64 * 9 * 8 * 16


# -- pruning ----------------------------------------------------------------------------------------

def test_prune_schedule_and_targets():
    assert pruning.schedule(10, 4, 0.2, 0.5) == [3, 4, 5, 6]
    assert pruning.schedule(2, 4, 0.2, 0.5) == [2]  # a short run still retrains one epoch after its step
    method = pruning.Prune(sparsity=0.5, steps=4)
    method.plan = [3, 4, 5, 6]
    assert method.target_at(2) == 0 and method.target_at(6) == pytest.approx(0.5)
    assert method.target_at(4) == pytest.approx(1 - 0.5 ** 0.5)  # 2 of 4 geometric steps
    for bad in (1.0, -0.1, "half", True):  # the type from Prune's annotation, the range from Prune
        with pytest.raises(ConfigError, match="method.options.sparsity"):
            methods_base.build_method("prune", {"sparsity": bad})
    with pytest.raises(ConfigError, match="method.options.end"):
        pruning.Prune(start=0.6, end=0.4)


def test_prune_in_winograd_domain_by_magnitude():
    torch.manual_seed(0)
    model = convert_convs(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.Flatten(),
                                        nn.Linear(3 * 16, 4)), "winograd")
    modules = dict(pruning.attach_masks(model))
    assert set(modules) == {"0", "2"} and modules["0"].weight_orig.shape == (3, 2, 4, 4)
    dense_weight = modules["0"].weight_orig.detach().clone()
    with torch.no_grad():
        pruning.prune_to(modules.values(), 0.25)
    kept = modules["0"].weight != 0
    assert kept.sum() == 96 - 24  # 25 % of the 3x2x16 Winograd weights, rounded per layer
    assert dense_weight.abs()[~kept].max() <= dense_weight.abs()[kept].min()  # the smallest magnitudes went
    assert pruning.sparsity_of(modules.values()) == pytest.approx((24 + 48) / (96 + 192))
    macs = measure.profile(model, (2, 4, 4))["macs"]
    assert pruning.macs_nonzero(model, (2, 4, 4), modules) == round(4 * 16 * 2 * 3 * 0.75 + 48 * 4 * 0.75)
    assert macs == 4 * 16 * 2 * 3 + 48 * 4


def test_prune_masks_a_max_min_kernel_after_its_parametrization():
    """Jin's Max-Min kernel keeps 2 of each 3x3 kernel's 9 weights; pruning it (the cross-paper space draws
    the pair) masks the *effective* weights, the smallest magnitudes among those still alive first."""
    from harness.layers import maxmin

    torch.manual_seed(0)
    conv = maxmin.attach(nn.Conv2d(2, 3, 3, padding=1, bias=False), "sparse", init="model")
    model = nn.Sequential(conv)
    modules = dict(pruning.attach_masks(model))
    assert list(modules) == ["0"] and pruning.sparsity_of([conv]) == pytest.approx(42 / 54)  # 6 kernels x 7 zeros
    before = conv.weight.detach().clone()
    extremes = before[before != 0].abs().sort().values  # 12: the max and min of each of the 6 kernels
    assert len(extremes) == 12 and pruning.density(conv) == 1.0
    with torch.no_grad():
        pruning.prune_to([conv], 0.85)  # round(0.85 x 54) = 46 masked: the 42 zeros, then the 4 smallest extremes
    after = conv.weight.detach()
    assert int((pruning.mask_of(conv) == 0).sum()) == 46 and int((after != 0).sum()) == 8
    assert torch.equal(after[after != 0].abs().sort().values, extremes[4:])
    assert pruning.density(conv) == pytest.approx(8 / 12)
    # the declared MACs (2 per kernel and output position: 6 x 2 x 16 at 4x4) times that density
    assert pruning.macs_nonzero(model, (2, 4, 4), modules) == round(6 * 2 * 16 * 8 / 12)
    x = torch.randn(1, 2, 4, 4)
    assert torch.allclose(conv(x), F.conv2d(x, after, padding=1))
    # the mask is in the state dict, and restore_masks lets a fresh conv load it (harness.runs.load_model)
    fresh = nn.Sequential(maxmin.attach(nn.Conv2d(2, 3, 3, padding=1, bias=False), "sparse", init="model"))
    saved = model.state_dict()
    assert "0.parametrizations.weight.1.mask" in saved
    pruning.restore_masks(fresh, saved)
    fresh.load_state_dict(saved)
    assert torch.equal(fresh(x), conv(x))


def test_pruned_binary_kernel_model_trains():
    """The pair that failed at trial start (torch's prune cannot wrap a parametrized weight) trains and
    reaches its sparsity on the effective weights: binary_approx is 2-sparse (7 of 9 zero) before any step."""
    cfg = {"data": {"dataset": "digits", "train_subset": 256, "test_subset": 64, "val_size": 64},
           "model": {"name": "resnet20", "options": {"width": 0.25, "conv": "binary_approx"}},
           "method": {"name": "prune", "options": {"sparsity": 0.9, "steps": 1, "start": 0.5, "end": 0.5}},
           "train": {"epochs": 2, "batch_size": 64, "schedule": "constant", "threads": 1}}
    epochs = []
    result = train.train(cfg, on_epoch=lambda e, m: epochs.append(m))
    assert epochs[0]["sparsity"] > 0.7 and result["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert result["macs_nonzero"] < result["macs"]


# -- methods (the dynamic batch size itself: tests/test_dbs.py) ---------------------------------

def test_chain_names_the_inner_option():
    with pytest.raises(ConfigError) as err:
        methods_base.build_method("chain", {"prune": {"sparsity": 1.5}})
    assert err.value.key == "method.options.prune.sparsity"
    with pytest.raises(ConfigError, match="method.options.prunning"):
        methods_base.build_method("chain", {"prunning": {}})


# -- the stack ---------------------------------------------------------------------------------------

def test_stack_output_is_the_weighted_mean_of_member_probabilities():
    torch.manual_seed(0)
    stack = models.build("sc_cnn", num_classes=10, in_channels=1, image_size=8, base="alexnet_fmnist",
                         width=0.0625).eval()
    stack.stack_weights.copy_(torch.tensor([0.2, 0.3, 0.5]))
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    member_logits = [m(x) for m in stack.members]
    expected = sum(w * F.softmax(z, 1) for w, z in zip((0.2, 0.3, 0.5), member_logits))
    assert torch.allclose(stack(x).exp(), expected, atol=1e-6)
    _, loss = stack.forward_train(x, y)
    assert loss.item() == pytest.approx(sum(F.cross_entropy(z, y).item() for z in member_logits), rel=1e-5)


def test_stack_weights_fit_favours_the_accurate_member():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (200,))
    good = F.one_hot(labels, 10).float() * 0.9 + 0.01
    noise = torch.softmax(torch.randn(2, 200, 10), dim=2)
    weights = fit_stack_weights(torch.cat([good[None], noise]), labels)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-5) and weights[0] > 0.9


def test_the_c_cnns_dropout_follows_its_convs_only():
    """Sec. 4.1: "A dropout rate of 0.2 ... is used in convolutional layers": one Dropout after each of the
    five conv blocks, none in the 4096-4096 head unless head_dropout asks for it (issue 27)."""
    def dropouts(sequential):  # by position: one Dropout module may sit at several places
        return [m.p for m in sequential if isinstance(m, nn.Dropout)]

    features, head = models.build("alexnet_fmnist", num_classes=10, in_channels=1, image_size=28, width=0.0625)
    assert dropouts(features) == [0.2] * 5 and dropouts(head) == []
    features, head = models.build("alexnet_fmnist", num_classes=10, in_channels=1, image_size=28, width=0.0625,
                                  head_dropout=0.5)
    assert dropouts(features) == [0.2] * 5 and dropouts(head) == [0.5, 0.5]
    with pytest.raises(ConfigError, match="model.dropout"):
        models.build("alexnet_fmnist", num_classes=10, in_channels=1, image_size=28, head_dropout=1.0)


def test_sc_cnn_bad_options():
    with pytest.raises(ConfigError, match="model.base"):
        models.check_options("sc_cnn", {"base": "nonexistent"})
    with pytest.raises(ConfigError, match="model.base_options.width"):
        models.check_options("sc_cnn", {"base": "resnet32", "base_options": {"width": 0.5}})
    with pytest.raises(ConfigError, match="model.dropout"):
        models.check_options("sc_cnn", {"base": "alexnet_fmnist", "base_options": {"dropout": 2}})
    with pytest.raises(ConfigError, match="model.member_width"):
        models.check_options("sc_cnn", {"base": "alexnet_fmnist", "member_width": 0})


def test_member_width_scales_the_springenberg_members_only():
    stack = models.build("sc_cnn", num_classes=10, in_channels=1, image_size=8, base="alexnet_fmnist", width=0.5,
                         member_width=0.25)
    first_convs = [next(m for m in member.modules() if isinstance(m, nn.Conv2d)).out_channels for member in stack.members]
    assert first_convs == [32, 12, 12]  # 64 x 0.5; 96 x 0.5 x 0.25


def test_pruned_winograd_stack_with_dbs_trains():
    cfg = {"data": {"dataset": "digits", "train_subset": 512, "test_subset": 64, "val_size": 64},
           "model": {"name": "sc_cnn", "options": {"base": "alexnet_fmnist", "width": 0.0625, "conv": "winograd_relu"}},
           "method": {"name": "chain", "options": {"prune": {"sparsity": 0.6, "steps": 2}, "dbs": {"double_every": 1, "warmup": 0.25}}},
           "train": {"epochs": 4, "batch_size": 32, "schedule": "constant", "threads": 1}}
    epochs = []
    result = train.train(cfg, on_epoch=lambda e, m: epochs.append(m))
    assert [round(m["sparsity"], 2) for m in epochs] == [0.0, 0.37, 0.6, 0.6]  # steps at epochs 2 and 3 of 4
    assert result["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert result["theoretical_speedup"] == pytest.approx(result["macs"] / result["macs_nonzero"])
    assert all(abs(m["stack_w1"] + m["stack_w2"] + m["stack_w3"] - 1) < 1e-5 for m in epochs)
    assert [m["batch_size"] for m in epochs] == [32, 32, 32, 32]  # B_max = N/10 = 51 -> stepped to 32
    assert [m["dbs_phase"] for m in epochs][:2] == [0, 1]  # one warm-up epoch (25 % of 4)
    assert epochs[0]["lr"] == pytest.approx(0.01) and epochs[1]["lr"] == pytest.approx(0.02)


# -- reports -----------------------------------------------------------------------------------------

def _runs(rows: dict) -> pd.DataFrame:
    records = [{"row": row, "seed": 0, "run_id": row, "device": "cpu (test)", "torch_version": "x",
                "config.train.epochs": "2", "config.train.batch_size": "128", **values} for row, values in rows.items()]
    return pd.DataFrame(records)


def test_tables_put_ours_beside_the_paper():
    from harness_analysis import zheng

    runs = _runs({"c_cnn-s0": {"train_time_s": 20.0, "macs": 1000, "macs_nonzero": 1000, "sparsity": 0, "test_acc": 80.0},
                  "c_cnn-s30": {"train_time_s": 16.0, "macs": 1000, "macs_nonzero": 700, "sparsity": 0.3, "test_acc": 81.0},
                  "swr_cnn_dbs-s30": {"train_time_s": 40.0, "macs": 2000, "macs_nonzero": 1400, "sparsity": 0.3,
                                      "test_acc": 85.0}})
    table = zheng.make_sparsity_table(runs, "alexnet_fmnist").frame.set_index(["Sparsity", "Model"])
    row = table.loc[("30%", "C-CNN")]
    assert (row["Time s (paper)"], row["Speed (paper)"]) == ("12.00", "1.42")
    assert row["Time s (ours)"] == "8.00 (n=1)" and row["Speed (ours)"] == "1.25"
    assert row["Theoretical speed-up (ours)"] == "1.43"  # 1000 / 700
    assert table.loc[("30%", "SWR-CNN + DBS"), "Speed (ours)"] == "0.50"
    assert table.loc[("Overall", "C-CNN"), "Time s (paper)"] == "11.42"
    batch = zheng.make_batch_table(runs, "alexnet_fmnist").frame.set_index(["Batch size", "Model"])
    assert batch.loc[(128, "C-CNN"), "Row (ours)"] == "c_cnn-s30" and batch.loc[(128, "C-CNN"), "Speed (ours)"] == "1.25"
    assert batch.loc[("DBS", "SWR-CNN + DBS"), "Row (ours)"] == "swr_cnn_dbs-s30"
    assert batch.loc[("DBS", "SWR-CNN + DBS"), "Time s (paper)"] == "11.00"
    # the paper's time over its C-CNN's in the same row, beside our MACs over c_cnn-s0's
    assert table.loc[("30%", "SC-CNN"), "Time ÷ C-CNN (paper)"] == "3.08"  # 37 / 12
    assert table.loc[("30%", "SWR-CNN + DBS"), ["Time ÷ C-CNN (paper)", "MACs ÷ C-CNN (ours)"]].tolist() == ["0.92", "2.00"]
    assert table.loc[("0%", "C-CNN"), "MACs ÷ C-CNN (ours)"] == "1.00" and table.loc[("0%", "SC-CNN"), "Time ÷ C-CNN (paper)"] == "-"
    assert table.loc[("Overall", "SC-CNN"), "Time ÷ C-CNN (paper)"] == "3.21"  # 36.71 / 11.42
    assert batch.loc[(1024, "SC-CNN"), "Time ÷ C-CNN (paper)"] == "7.00"  # 21 / 3
    assert batch.loc[("DBS", "SWR-CNN + DBS"), "MACs ÷ C-CNN (ours)"] == "2.00"


def test_stack_members_macs_by_hand_and_the_width_rule():
    """ConvPool-CNN-C at Table 1's member width 13/16 on 1x28x28 (78 and 156 channels, padded 3x3 convs, two
    3x3/2 pools: 28 -> 14 -> 7), counted by hand; the stack/base ratio from the built models; and the rule that
    chose each sweep's width: on the 1/16 grid its neighbours' ratios are farther from the paper's time ratio."""
    from harness_analysis import zheng
    from harness import catalog

    a, b = 78, 156
    convpool = (28 * 28 * 9 * (1 * a + 2 * a * a) + 14 * 14 * 9 * (a * b + 2 * b * b)
                + 7 * 7 * (9 * b * b + b * b + b * 10))
    costs = zheng.stack_costs("alexnet_fmnist")
    assert costs["convpool_cnn"] == convpool == 205_730_616
    all_cnn = (28 * 28 * 9 * (1 * a + a * a) + 14 * 14 * 9 * a * a  # the pool is a 3x3 stride-2 conv
               + 14 * 14 * 9 * (a * b + b * b) + 7 * 7 * 9 * b * b + 7 * 7 * (9 * b * b + b * b + b * 10))
    assert costs["all_cnn"] == all_cnn
    assert costs["stack"] == costs["base"] + convpool + all_cnn
    assert costs["ratio"] == pytest.approx(3.254, abs=1e-3)
    for published, sweep in zheng.SWEEPS.items():
        costs = zheng.stack_costs(published)
        overall = zheng.published_values(published)["sparse"]["Overall"]
        target = overall["sc_cnn"][0] / overall["c_cnn"][0]
        width = costs["member_width"]
        cell = next(c for c in catalog.all_sweeps()[sweep].cells("paper") if c.row == "sc_cnn-s0")
        shape = {"zheng_table_1": (1, 28, 10)}.get(sweep, (3, 32, 100 if sweep == "zheng_table_5" else 10))
        for neighbour in (width - 1 / 16, width + 1 / 16):
            opts = {**cell.config["model"]["options"], "member_width": neighbour, "num_classes": shape[2]}
            stack = measure.profile_model("sc_cnn", opts, (shape[0], shape[1], shape[1]))["macs"]
            assert abs(stack / costs["base"] - target) > abs(costs["ratio"] - target), (sweep, neighbour)


def test_one_run_cells_name_the_papers_own_inconsistencies():
    from harness_analysis import zheng

    assert zheng.one_run_notes("alexnet_fmnist") == [] and zheng.one_run_notes("vgg16_cifar10") == []
    notes = zheng.one_run_notes("resnet32_cifar100")
    assert len(notes) == 3
    assert "SWR-CNN at batch 128 (20 s, 2.70x)" in notes[0] and "SWR-CNN at 40 % in the sparsity table (24 s, 2.25x)" in notes[0]
    assert "one row swr_cnn-s40" in notes[0]
    assert "SWR-CNN at batch DBS (13 s, 4.15x)" in notes[1] and "SWR-CNN + DBS at 40 %" in notes[1] and "(20 s, 2.70x)" in notes[1]
    assert "C-CNN to 3.30x; the table prints 3.00x" in notes[2] and "54 / 18 = 3.00" in notes[2]
    batch = zheng.make_batch_table(_runs({"c_cnn-s0": {"train_time_s": 20.0, "macs": 1000, "test_acc": 50.0}}),
                                   "resnet32_cifar100")
    assert all(n in batch.notes for n in notes) and zheng.LR_NOTE in batch.notes


def test_the_texts_dbs_speeds_are_printed_in_the_seed():
    from pathlib import Path

    from harness_analysis.published import load

    seed = Path(__file__).resolve().parents[2] / "shared" / "seeds" / load("zheng")["seed"]
    if not seed.is_file():
        pytest.skip(f"{seed} is not beside the checkout")
    text = seed.read_text()
    for key in ("alexnet_fmnist", "vgg16_cifar10", "resnet32_cifar100"):
        for speed in load("zheng")[f"{key}/batch"]["text_dbs_speed"].values():
            assert f"to {speed:.2f}x" in text, (key, speed)


def test_figure_5a_reads_the_masked_winograd_kernels_of_layer_2():
    from harness_analysis import zheng

    torch.manual_seed(0)
    stack = models.build("sc_cnn", num_classes=10, in_channels=3, image_size=8, base="resnet32", width=0.25,
                         conv="winograd_relu")
    modules = dict(pruning.attach_masks(stack))
    with torch.no_grad():
        pruning.prune_to(modules.values(), 0.6)
    kernels = zheng.layer2_kernels(stack)  # members.0.layer1.0.conv1: 4 x 4 channels at width 0.25
    assert kernels.shape == (4, 4, 4, 4)
    assert np.mean(kernels == 0) == pytest.approx(round(0.6 * 256) / 256)
    expected = stack.members[0].layer1[0].conv1
    assert np.array_equal(kernels, (expected.weight_orig * expected.weight_mask).detach().numpy())


def test_figure_5b_is_the_analytic_momentum_curve():
    import matplotlib.pyplot as plt

    from harness_analysis import zheng

    figure = zheng.make_figure_5b()
    lines = figure.figure.axes[0].get_lines()
    assert len(lines) == 12  # k = 1.30 ... 1.75, the k = 0 line and k = 1.60 read with k_scale = 1
    k16 = lines[zheng.K_VALUES.index(1.6)]
    assert k16.get_ydata()[-1] == pytest.approx(1 - 0.1 * math.exp(-0.125 / (1.6 * dbs.K_SCALE)), abs=1e-6)
    assert lines[-1].get_ydata()[-1] == pytest.approx(1 - 0.1 * math.exp(-0.125 / 1.6), abs=1e-6)  # 0.9075
    assert "0.9943 at p = 0.254 (k = 1.6)" in figure.notes[1] and "0.9075 at p = 0.030" in figure.notes[1]
    plt.close(figure.figure)


@pytest.mark.parametrize("sweep_name, sparsity, member_width",
                         [("zheng_table_1", 0.3, 0.8125), ("zheng_table_3", 0.4, 0.75), ("zheng_table_5", 0.4, 0.25)])
def test_sweep_rows_match_their_labels(sweep_name, sparsity, member_width):
    from harness import catalog

    sweep = catalog.all_sweeps()[sweep_name]
    cells = sweep.cells("paper")
    assert len(cells) == 4 * 8 + 3 * 4 + 2 and len(sweep.cells("smoke")) <= 4
    for cell in cells:
        variant, _, setting = cell.row.rpartition("-")
        methods = cell.config["method"]["options"]
        assert ("dbs" in methods) == (variant == "swr_cnn_dbs" or setting == "dbs")
        options = cell.config["model"]["options"]
        assert cell.config["model"]["name"] == ("sc_cnn" if variant != "c_cnn" else options.get("base", cell.config["model"]["name"]))
        assert (options.get("conv") == "winograd_relu") == variant.startswith("swr")
        assert ("warmup_plateau" in methods) == ("dbs" not in methods)  # one lr strategy for every row
        assert options.get("member_width") == (None if variant == "c_cnn" else member_width)
        if setting.startswith("s"):
            assert methods["prune"]["sparsity"] == pytest.approx(int(setting[1:]) / 100)
            assert cell.config["train"]["batch_size"] == 128
        else:
            assert methods["prune"]["sparsity"] == pytest.approx(sparsity)
            assert cell.config["train"]["batch_size"] == (128 if setting == "dbs" else int(setting[1:]))


def test_strict_winograd_on_a_strided_conv_fails_at_config_time_without_drawing_rng():
    """Issue 5's bad input: a Winograd option on a layer that is not 3x3 stride 1 is an error before Ray."""
    from harness.checks import checked

    cfg = {"data": {"dataset": "digits"},
           "model": {"name": "resnet20", "options": {"conv": "winograd", "conv_options": {"strict": True}}}}
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="stride \\(2, 2\\)"):
        checked(cfg)  # resnet20's stage 2 and 3 open with stride-2 3x3 convs
    assert torch.rand(1) == expected  # the check built the model on the meta device only


@pytest.mark.slow
def test_smoke_reports_state_the_members_the_lr_strategy_and_the_papers_inconsistencies(smoke_all):
    """conftest's smoke_all ran and reported the three sweeps: the stack trained at its member width (its logged
    MACs are the built model's), and the reports carry the notes of issue 15."""
    from harness import data
    from harness import runs as recorded

    for name in ("zheng_table_1", "zheng_table_3", "zheng_table_5"):
        assert smoke_all.rc[name] == (0, 0)
    runs = recorded.load_runs("zheng-table-1", smoke_all.store)
    run = runs[runs["row"] == "swr_cnn_dbs-s30"].iloc[0]
    shape, classes = data.nominal_shape("digits")
    options = {"base": "alexnet_fmnist", "base_options": {"dropout": 0.0}, "member_options": {"dropout": 0.0},
               "conv": "winograd_relu", "width": 0.0625, "num_classes": classes}
    built = measure.profile_model("sc_cnn", {**options, "member_width": 0.8125}, shape)["macs"]
    assert run["macs"] == built != measure.profile_model("sc_cnn", {**options, "member_width": 1.0}, shape)["macs"]
    table_2 = (smoke_all.reports / "zheng-table-2.md").read_text()
    assert "member_width 0.8125" in table_2 and "the stack has 3.25x its base's MACs" in table_2
    assert "3.21x its C-CNN's time" in table_2 and "every row without DBS trains with method warmup_plateau" in table_2
    assert "MACs ÷ C-CNN (ours)" in table_2 and "differs from" not in table_2
    table_6 = (smoke_all.reports / "zheng-table-6.md").read_text()
    assert "member_width 0.25" in table_6 and "the stack has 1.65x its base's MACs" in table_6
    assert "ours fills both cells from the one row swr_cnn-s40" in table_6 and "to 3.30x; the table prints 3.00x" in table_6
    assert "k_scale = 0.0272 makes k = 1.60" in (smoke_all.reports / "zheng-figure-5b.md").read_text()
