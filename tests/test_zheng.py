"""Zheng et al.: Winograd F(2x2,3x3) layers, iterative pruning, dynamic batch size, the SC-CNN stack, reports."""
import copy
import math
from types import SimpleNamespace

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


# -- dynamic batch size -----------------------------------------------------------------------------

def test_algorithm_1_round_clip_stepwise():
    assert dbs.round_clip_step(200.4, 128, 1024) == 192
    assert dbs.round_clip_step(100, 128, 1024) == 128
    assert dbs.round_clip_step(5000, 128, 1024) == 1024
    assert dbs.round_clip_step(1000, 128, 1000) == 992
    with pytest.raises(ConfigError, match="min_batch"):
        dbs.DynamicBatchSize(min_batch=2048, max_batch=1024)


def test_momentum_curve_follows_the_ode():
    assert dbs.momentum_curve(0.0) == pytest.approx(0.9)
    assert dbs.momentum_curve(1e-3) == pytest.approx(0.9 + 0.5e-3, abs=1e-5)  # y'(0) = -0.5
    for k in (1.3, 1.6, 1.75):  # energy: y'^2/2 - k ln y is constant, so y' = 0 at y0 exp(-rate^2 / 2k)
        assert dbs.momentum_curve(5.0, k) == pytest.approx(1 - 0.1 * math.exp(-0.125 / k), abs=1e-6)
    curve = dbs.momentum_curve(np.linspace(0, 0.3, 50))
    assert np.all(np.diff(curve) >= -1e-12)  # held at its peak, never falls back
    with pytest.raises(ConfigError):
        dbs.momentum_curve(0.1, k=0)


def _stub_context(epochs=20, batch=128, n_train=20000, momentum=0.9):
    optimizer = SimpleNamespace(param_groups=[{"lr": 0.02, "momentum": momentum}])
    return SimpleNamespace(cfg=SimpleNamespace(train=SimpleNamespace(epochs=epochs, batch_size=batch, momentum=momentum)),
                           optimizer=optimizer, batches=SimpleNamespace(num_samples=n_train, batch_size=batch))


def test_dbs_schedule_follows_algorithm_1():
    ctx = _stub_context()
    method = dbs.DynamicBatchSize(double_every=1)
    method.setup(ctx)
    vals = [50, 60, 70, 75, 74, 80, 80, 80, 80, 80, 80, 81]
    log = []
    for epoch, val in enumerate(vals, 1):
        extra = method.before_epoch(ctx, epoch)
        group = ctx.optimizer.param_groups[0]
        log.append((round(group["lr"], 6), round(group["momentum"], 4), ctx.batches.batch_size,
                    extra["dbs_phase"]))
        method.after_epoch(ctx, epoch, {"val_acc": val})
    peak = 1 - 0.1 * math.exp(-0.125 / 1.6)
    line3 = 0.04 * 0.1 / (0.02 * (1 - peak)) * 128  # 276.8 -> Round 277 -> Stepwise 256
    assert log[:6] == [(0.01, 0.9, 128, 0), (0.015, 0.9, 128, 0),  # warm-up 0.01 -> 0.02 over 10 % of 20 epochs
                       (0.02, 0.9, 128, 1), (0.04, 0.9, 256, 1), (0.08, 0.9, 512, 1),  # B scales with lr
                       (0.04, round(peak, 4), 32 * (round(line3) // 32), 2)]  # val fell: lr undone, momentum up
    assert log[6][:3] == (0.04, round(peak, 4), 256) and log[6][3] == 3
    # val 80 at epoch 6 is the best; epochs 7-11 do not beat it: lr x 0.1 from epoch 12, the batch stays
    assert log[11][0] == pytest.approx(0.004) and log[11][2] == 256
    restored = dbs.DynamicBatchSize(double_every=1)
    restored.load_state_dict(method.state_dict())
    assert restored.state == method.state


def test_dbs_batch_limits_are_checked_before_training():
    method = dbs.DynamicBatchSize()
    with pytest.raises(ConfigError, match="N/10"):
        method.setup(_stub_context(batch=128, n_train=1000))  # B0 = 128 > N/10 = 100


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


def test_sc_cnn_bad_options():
    with pytest.raises(ConfigError, match="model.base"):
        models.check_options("sc_cnn", {"base": "nonexistent"})
    with pytest.raises(ConfigError, match="model.base_options.width"):
        models.check_options("sc_cnn", {"base": "resnet32", "base_options": {"width": 0.5}})
    with pytest.raises(ConfigError, match="model.dropout"):
        models.check_options("sc_cnn", {"base": "alexnet_fmnist", "base_options": {"dropout": 2}})


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
    from analysis import zheng

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


def test_figure_5a_reads_the_masked_winograd_kernels_of_layer_2():
    from analysis import zheng

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

    from analysis import zheng

    figure = zheng.make_figure_5b()
    lines = figure.figure.axes[0].get_lines()
    assert len(lines) == 11  # k = 1.30 ... 1.75 and the k = 0 line
    k16 = lines[zheng.K_VALUES.index(1.6)]
    assert k16.get_ydata()[-1] == pytest.approx(1 - 0.1 * math.exp(-0.125 / 1.6), abs=1e-6)
    plt.close(figure.figure)


@pytest.mark.parametrize("sweep_name, sparsity", [("zheng_table_1", 0.3), ("zheng_table_3", 0.4), ("zheng_table_5", 0.4)])
def test_sweep_rows_match_their_labels(sweep_name, sparsity):
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
