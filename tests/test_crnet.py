"""Jiang's CRnets: counts against Tables 4-1 ... 4-8 and hand derivations, equations 1-5 against
the built layers, the CR module's choice, bad options, Tables 3-1/3-2 and the sweep files' rows."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness_analysis import jiang_crnet
from harness_analysis.jiang_crnet import PUBLISHED, SETTINGS, paper_counts, row_label
from harness import catalog, checks, cli, models
from harness.errors import ConfigError
from harness.layers import crnet as blocks
from harness.latency import measure_latency
from harness.measure import profile

# The 24 profiles of the issue: Tables 4-1 (crnet_cb) and 4-5 (crnet_cib), CIFAR-10, 3x32x32.
PROFILES_24 = [(number, key) for number in ("4-1", "4-5") for key in PUBLISHED[number].rows]
# The same networks with 100 classes (Tables 4-3 and 4-7); one FLOPs cell of 4-3 is lost in the source.
PROFILES_100 = [(number, key) for number in ("4-3", "4-7") for key in PUBLISHED[number].rows]


def _counts(number, key):
    pub = PUBLISHED[number]
    e, g, a, s = key
    return paper_counts(pub.network, e, g, a, s, jiang_crnet.NUM_CLASSES[pub.dataset])


@pytest.mark.parametrize("number,key", PROFILES_24 + PROFILES_100, ids=lambda v: str(v))
def test_profiles_match_the_published_tables(number, key):
    """Parameters to the tables' rounding (0.01 M); MACs within 2 % as the issue asks, and in fact within
    0.1 % and 0.015 M (ours sit up to 10 k MACs from the rounded published values, see analysis/jiang_crnet.py)."""
    p_params, p_flops, _ = PUBLISHED[number].rows[key]
    counts = _counts(number, key)
    assert round(counts["params"] / 1e6, 2) == pytest.approx(p_params, abs=1e-9)
    if p_flops is None:
        pytest.skip("the source text lost this FLOPs cell")
    assert abs(counts["macs"] / 1e6 - p_flops) / p_flops < 0.02
    assert abs(counts["macs"] / 1e6 - p_flops) / p_flops < 0.001
    assert abs(counts["macs"] / 1e6 - p_flops) < 0.015  # the paper's FLOPs are our multiply-accumulates


def test_the_same_profiles_through_the_cli(capsys):
    """The issue's command line gives Table 4-1's CR-module row."""
    assert cli.main(["profile", "crnet_cb", "--set", "exp=4", "--set", "g=2", "--set", "alpha=0.5", "--set",
                     "strategy=gc-c1dw", "--set", "num_classes=10", "--input", "3x32x32", "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert round(result["params"] / 1e6, 2) == 0.16 and round(result["macs"] / 1e6, 2) == 27.36
    # the tables count models built on the meta device (faster); a real one counts the same
    for network, key in (("crnet_cb", (4, 2, 0.5, "gc-c1dw")), ("crnet_cib", (6, 2, 0.5, "gc-c1dw"))):
        real = profile(models.build(network, exp=key[0], g=key[1], alpha=key[2], strategy=key[3]), (3, 32, 32))
        assert {k: real[k] for k in ("params", "macs")} == {k: paper_counts(network, *key)[k] for k in ("params", "macs")}


@pytest.mark.parametrize("number", ["4-1", "4-3", "4-5", "4-7"])
@pytest.mark.parametrize("setting", SETTINGS, ids=str)
def test_strategy_differences_match_exactly(number, setting):
    """Every pairwise MACs difference between strategies of one setting equals the paper's to its
    rounding: two values rounded to 0.01 M differ from their true difference by < 0.01 M."""
    pub = PUBLISHED[number]
    cells = {s: (pub.rows[(*setting, s)][1], _counts(number, (*setting, s))["macs"] / 1e6)
             for s in jiang_crnet.ORDER[pub.network]}
    for a in cells:
        for b in cells:
            (pa, oa), (pb, ob) = cells[a], cells[b]
            if pa is not None and pb is not None:
                assert abs((pa - pb) - (oa - ob)) < 0.01 + 1e-9, (a, b)


def _dw_sum(terms):
    """Σ d·d·β·m·H·W over (m, H·W) with d = 3, β = 1: the c1dw depthwise a gc 1x1 does not have."""
    return sum(9 * m * hw for m, hw in terms)


def test_strategy_differences_derived_by_hand():
    """At g = 2, α = 0.5 a gc 1x1 and a c1dw 1x1 share C_in·C_out/2·H·W; c1dw adds its 3x3 depthwise
    on m = C_out/2 maps (β = 1). So the MACs saved by gc in one position of every block are
    Σ 9·(C_out/2)·H·W over the blocks, at the resolution the 1x1 runs at.

    crnet_cb first 1x1 (C_0 at the input resolution): conv2 3 x 16 @ 32², conv3-1 32 @ 32²,
    conv3-2..4 3 x 32 @ 16², conv4 6 x 32 @ 16², conv5-1 64 @ 16², conv5-2..3 2 x 64 @ 8²
      -> 811,008 (Table 4-1: 28.17 - 27.36 = 0.81 M)
    crnet_cb second 1x1 (C_out = 4·C_0 at the output resolution): 3 x 64 @ 32², 4 x 128 @ 16²,
    6 x 128 @ 16², 3 x 256 @ 8²  -> 2,580,480 (28.17 - 25.59 = 2.58 M)
    crnet_cib first 1x1 (inner = 4·out, input resolution): 5 x 64 @ 32², 128 @ 32², 5 x 128 @ 16²,
    256 @ 16², 4 x 256 @ 8²  -> 3,391,488 (24.58 - 21.19 = 3.39 M)
    crnet_cib second 1x1 (out at the output resolution): 5 x 16 @ 32², 32 @ 16², 5 x 32 @ 16²,
    64 @ 8², 4 x 64 @ 8²  -> 681,984 (24.58 - 23.90 = 0.68 M)
    """
    half = lambda c, n, hw: [(c // 2, hw)] * n  # noqa: E731
    cb_first = _dw_sum(half(16, 3, 1024) + half(32, 1, 1024) + half(32, 3, 256) + half(32, 6, 256)
                       + half(64, 1, 256) + half(64, 2, 64))
    cb_second = _dw_sum(half(64, 3, 1024) + half(128, 4, 256) + half(128, 6, 256) + half(256, 3, 64))
    cib_first = _dw_sum(half(64, 5, 1024) + half(128, 1, 1024) + half(128, 5, 256) + half(256, 1, 256)
                        + half(256, 4, 64))
    cib_second = _dw_sum(half(16, 5, 1024) + half(32, 1, 256) + half(32, 5, 256) + half(64, 1, 64)
                         + half(64, 4, 64))
    assert (cb_first, cb_second, cib_first, cib_second) == (811_008, 2_580_480, 3_391_488, 681_984)

    def macs(network, strategy):
        return paper_counts(network, 4, 2, 0.5, strategy)["macs"]

    assert macs("crnet_cb", "c1dw-c1dw") - macs("crnet_cb", "gc-c1dw") == cb_first
    assert macs("crnet_cb", "c1dw-gc") - macs("crnet_cb", "gc-gc") == cb_first
    assert macs("crnet_cb", "c1dw-c1dw") - macs("crnet_cb", "c1dw-gc") == cb_second
    assert macs("crnet_cib", "c1dw-c1dw") - macs("crnet_cib", "gc-c1dw") == cib_first
    assert macs("crnet_cib", "c1dw-c1dw") - macs("crnet_cib", "c1dw-gc") == cib_second
    # At g = 4, α = 0.25 the depthwise makes β = 3 maps from each of C/4: 9·3·C/4 = 1.5 x 9·C/2.
    cb4 = paper_counts("crnet_cb", 4, 4, 0.25, "c1dw-c1dw")["macs"] - paper_counts("crnet_cb", 4, 4, 0.25,
                                                                                     "gc-c1dw")["macs"]
    assert cb4 == cb_first * 3 // 2


def test_cr_strategy_is_the_crs_of_the_tables():
    """cr lets each 1x1 choose: gc-c1dw in bottlenecks (reduce, then expand), c1dw-gc in inverted ones."""
    for network, same in (("crnet_cb", "gc-c1dw"), ("crnet_cib", "c1dw-gc")):
        cr = models.build(network, strategy="cr")
        fixed = models.build(network, strategy=same)
        assert [type(m).__name__ for m in cr.modules()] == [type(m).__name__ for m in fixed.modules()]
        assert paper_counts(network, 4, 2, None, "cr") == paper_counts(network, 4, 2, 0.5, same)
    model = models.build("crnet_cb", strategy="cr")
    # conv2-1's first 1x1 is 16 -> 16: "we also use gc for this layer" (Table 3-1's footnote)
    assert isinstance(model.conv2_x[0].reduce, blocks.GroupConv1x1)
    assert model.conv2_x[0].reduce.channels_in == model.conv2_x[0].reduce.channels_out == 16
    assert blocks.choose(16, 64) == "c1dw" and blocks.choose(64, 16) == "gc" and blocks.choose(16, 16) == "gc"


def _conv_params(module):
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def _macs(module, channels_in, size=8):
    return profile(module, (channels_in, size, size))["macs"]


@pytest.mark.parametrize("cin,cout,g", [(64, 16, 2), (64, 16, 4), (128, 32, 8), (16, 16, 2)])
def test_equations_1_and_2_against_a_built_gc(cin, cout, g):
    layer = blocks.GroupConv1x1(cin, cout, g, relu=False)
    dense = nn.Conv2d(cin, cout, 1, bias=False)
    assert _conv_params(layer) / _conv_params(dense) == blocks.ratio_params_gc(g) == 1 / g
    assert _macs(layer, cin) / _macs(dense, cin) == pytest.approx(1 / g)


@pytest.mark.parametrize("cin,cout,alpha,beta", [(16, 64, 0.5, 1), (16, 64, 0.25, 3), (32, 128, 0.125, 7),
                                                 (16, 16, 0.75, 1), (64, 256, 0.5, 1), (24, 40, 0.3, 3)])
def test_equations_3_to_5_against_a_built_c1dw(cin, cout, alpha, beta):
    """R_p = R_FLOPs = α + d²βα/C_in with β = ⌈(C_out - ⌈αC_out⌉)/⌈αC_out⌉⌉ (eq. 5), d = 3. Where m does
    not divide C_out (α = 0.75 of 16, 0.3 of 40) the surplus maps are made and dropped, and counted."""
    layer = blocks.GhostConv1x1(cin, cout, alpha, relu=True)
    assert layer.beta == blocks.beta(cout, alpha) == beta
    assert layer(torch.randn(2, cin, 8, 8)).shape == (2, cout, 8, 8)
    dense = nn.Conv2d(cin, cout, 1, bias=False)
    m = math.ceil(alpha * cout)
    expected = m / cout + 9 * beta * m / (cout * cin)  # the exact ratio eqs. 3-4 write as α + d²βα/C_in
    assert _conv_params(layer) / _conv_params(dense) == pytest.approx(expected)
    assert _macs(layer, cin) / _macs(dense, cin) == pytest.approx(expected)
    if alpha * cout == m:
        assert blocks.ratio_params_c1dw(cin, cout, alpha) == pytest.approx(expected)


@pytest.mark.parametrize("cin,cout,alpha", [(64, 16, 0.5), (128, 32, 0.25), (256, 64, 0.125)])
def test_gc_is_cheaper_than_c1dw_when_g_is_one_over_alpha(cin, cout, alpha):
    """Sec. 3.1.1: with g = ⌈1/α⌉ gc has fewer parameters and FLOPs than c1dw (eq. 1 vs eq. 3)."""
    g = math.ceil(1 / alpha)
    assert blocks.ratio_params_gc(g) < blocks.ratio_params_c1dw(cin, cout, alpha)
    gc = blocks.GroupConv1x1(cin, cout, g, relu=False)
    c1dw = blocks.GhostConv1x1(cin, cout, alpha, relu=False)
    assert _conv_params(gc) < _conv_params(c1dw) and _macs(gc, cin) < _macs(c1dw, cin)


@pytest.mark.parametrize("network", ["crnet_cb", "crnet_cib"])
@pytest.mark.parametrize("strategy", ["c1dw-c1dw", "gc-c1dw", "gc-gc", "c1dw-gc"])
def test_every_strategy_trains_a_step_on_small_input(network, strategy):
    torch.manual_seed(0)
    model = models.build(network, num_classes=10, in_channels=1, image_size=8, exp=2, g=8, strategy=strategy)
    logits = model(torch.randn(4, 1, 8, 8))
    assert logits.shape == (4, 10)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 9])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_the_built_blocks_follow_tables_3_1_and_3_2():
    for row in jiang_crnet.make_table_3_1().frame["= Table 3-1"]:
        assert row == "✓"
    table = jiang_crnet.make_table_3_2().frame
    assert len(table) == 21
    # as trained (depthwise=strided): every cell matches but the DW of the 14 blocks that do not stride,
    # which have no intermediate depthwise; the kernels printed there are 3, but 5 in blocks 4 and 5
    blocks_ = table[table["Operator"] == "C-IBneck"]
    assert list(blocks_["DW"]) == ["-"] * 5 + [3] + ["-"] * 5 + [5] + ["-"] * 4
    assert list(blocks_["= Table 3-2"]) == (["✗ paper: 3"] * 3 + ["✗ paper: 5"] * 2 + ["✓"] + ["✗ paper: 3"] * 5
                                            + ["✓"] + ["✗ paper: 3"] * 4)
    assert set(table[table["Operator"] != "C-IBneck"]["= Table 3-2"]) == {"✓"}
    assert "14 of 16 C-IBnecks have no intermediate depthwise" in " ".join(jiang_crnet.make_table_3_2().notes)
    # Sec. 3.1.2's reading builds Table 3-2 in every cell, DW read off the built depthwise kernels
    every = jiang_crnet.make_table_3_2(depthwise="every").frame
    assert list(every["= Table 3-2"]) == ["✓"] * 21
    assert list(every[every["Operator"] == "C-IBneck"]["DW"]) == [3, 3, 3, 5, 5] + [3] * 6 + [5] + [3] * 4
    cib = models.build("crnet_cib")
    assert [b.stride for b in cib.blocks].count(2) == 2
    assert [type(b.depthwise).__name__ for b in cib.blocks].count("Sequential") == 2  # only where it strides
    assert [b.se.reduced for b in cib.blocks if b.se_ratio] == [16, 16, 32, 32, 64, 64, 64]


def test_a_stored_attribute_does_not_make_the_dw_column():
    """The DW column reads the built depthwise: a block whose depthwise is removed shows '-' and ✗."""
    model = jiang_crnet._meta_build("crnet_cib", depthwise="every")
    model.blocks[3].depthwise = nn.Identity()  # its dw_kernel attribute still says 5
    shapes = jiang_crnet._trace(model, ["blocks.3", "blocks.3.expand"])
    assert jiang_crnet._built_cib_row(model.blocks[3], shapes, "blocks.3") == (64, 4, 16, 1, 0.25, None)
    assert model.blocks[3].dw_kernel == 5


def test_sec_3_1_2s_depthwise_in_every_block_misses_table_4_5():
    """Each of the 14 non-strided C-IBnecks gains an inner x d x d depthwise on H x W positions (and its
    BN): at exp 4, MACs 9·64·32² x 3 + 25·64·32² x 2 + 9·128·16² x 5 + 9·256·8² x 4 = 7,110,656 and
    params (9+2)·64 x 3 + (25+2)·64 x 2 + (9+2)·128 x 5 + (9+2)·256 x 4 = 23,872 more, for every strategy."""
    macs = 9 * 64 * 32 * 32 * 3 + 25 * 64 * 32 * 32 * 2 + 9 * 128 * 16 * 16 * 5 + 9 * 256 * 8 * 8 * 4
    params = 11 * 64 * 3 + 27 * 64 * 2 + 11 * 128 * 5 + 11 * 256 * 4
    assert (macs, params) == (7_110_656, 23_872)
    gaps = jiang_crnet.depthwise_reading_gaps("4-5")
    assert gaps[:4] == [pytest.approx((macs / 1e6, params / 1e6))] * 4  # exp 4, g 2: the same for all 4 strategies
    assert gaps[8:] == [pytest.approx((macs / 1e6, params / 1e6))] * 4  # exp 4, g 4
    assert gaps[4] == pytest.approx((1.5 * macs / 1e6, 1.5 * params / 1e6))  # exp 6: inner x 1.5
    for (e, g, a, s), (p_params, p_flops, _) in PUBLISHED["4-5"].rows.items():
        every = paper_counts("crnet_cib", e, g, a, s, 10, "every")
        assert every["macs"] / 1e6 - p_flops > 7.1 and round(every["params"] / 1e6, 2) != p_params
    with pytest.raises(ConfigError, match="model.depthwise"):
        models.build("crnet_cib", depthwise="all")
    notes = " ".join(jiang_crnet.make_results_table(None, "4-5").notes)
    assert "would add 7.11 to 10.67 M MACs and 0.024 to 0.036 M parameters to these rows" in notes


BAD = [
    ("crnet_cb", {"g": 3}, "model.g", ["conv2-1 first 1x1", "16 -> 16", "1, 2, 4, 8, 16"]),
    ("crnet_cib", {"g": 32, "strategy": "gc-gc"}, "model.g", ["C-IBneck 1 first 1x1", "16 -> 64", "1, 2, 4, 8, 16"]),
    ("crnet_cb", {"g": 2.5}, "model.g", ["an int"]),  # the type, from the builder's annotation (g: int)
    ("crnet_cb", {"g": 0}, "model.g", ["positive integer"]),
    ("crnet_cb", {"g": "2"}, "model.g", ["an int"]),
    ("crnet_cb", {"g": 3, "strategy": "c1dw-c1dw"}, "model.g", ["alpha unset", "conv2-1 first 1x1", "2, 4, 8, 16"]),
    ("crnet_cb", {"g": 1}, "model.g", ["alpha unset", ">= 2"]),
    ("crnet_cb", {"alpha": 0.3}, "model.alpha", ["conv2-1 second 1x1", "C_out = 64", "multiples of 1/64"]),
    ("crnet_cib", {"alpha": 0.1}, "model.alpha", ["C-IBneck 1 first 1x1", "multiples of 1/64"]),
    ("crnet_cb", {"alpha": 1.0}, "model.alpha", ["(0, 1)"]),
    ("crnet_cb", {"alpha": 0}, "model.alpha", ["(0, 1)"]),
    ("crnet_cib", {"alpha": -0.5}, "model.alpha", ["(0, 1)"]),
    ("crnet_cb", {"alpha": "half"}, "model.alpha", ["a finite number", "or null"]),
    ("crnet_cb", {"exp": 0}, "model.exp", ["> 0", "whole channel count"]),
    ("crnet_cib", {"exp": 2.03}, "model.exp", ["whole channel count"]),
    ("crnet_cb", {"exp": True}, "model.exp", ["a finite number, not a boolean"]),
    ("crnet_cb", {"strategy": "cr-cr"}, "model.strategy", ["c1dw-c1dw", "gc-c1dw", "gc-gc", "c1dw-gc"]),
]


@pytest.mark.parametrize("network,options,key,words", BAD, ids=lambda v: str(v))
def test_bad_options_fail_at_build_naming_layer_value_and_valid_values(network, options, key, words):
    with pytest.raises(ConfigError) as info:
        models.build(network, **options)
    assert info.value.key == key
    value = next(iter(v for k, v in options.items() if key.endswith(k)), None)
    assert repr(value) in str(info.value) or str(value) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_bad_options_fail_before_ray_and_in_harness_profile(capsys):
    # harness.checks.checked (RunConfig.from_dict + check_config) is what `harness run` checks every
    # cell with before Ray starts
    with pytest.raises(ConfigError) as info:
        checks.checked({"model": {"name": "crnet_cb", "options": {"exp": 4, "g": 3}}})
    assert info.value.key == "model.options.g"  # a config names the option where it is set
    assert cli.main(["profile", "crnet_cib", "--set", "alpha=0.3", "--input", "3x32x32"]) == 2
    err = capsys.readouterr().err
    assert "model.alpha=0.3" in err and "C-IBneck 1 first 1x1" in err


def test_sweep_files_hold_the_papers_rows_protocol_and_seeds():
    sweeps = catalog.all_sweeps()
    smoke_strategies = {"crnet_cb": set(), "crnet_cib": set()}
    for number, pub in PUBLISHED.items():
        sweep = sweeps[f"jiang_table_{number.replace('-', '_')}"]
        assert sweep.base["model"]["name"] == pub.network and sweep.base["data"]["dataset"] == pub.dataset
        paper = sweep.cells("paper")
        assert len(paper) == 36 and {c.config["train"]["seed"] for c in paper} == {0, 1, 2}
        for cell in paper:
            t = cell.config["train"]
            assert (t["epochs"], t["batch_size"], t["lr"], t["momentum"], t["weight_decay"], t["milestones"]) == (
                160, pub.batch_size, 0.1, 0.9, 1e-4, [80, 120])
        labels = [r["label"] for r in sweep.rows]
        assert labels == [row_label(*key) for key in pub.rows]
        for row, (e, g, a, s) in zip(sweep.rows, pub.rows):
            assert row["config"]["model"]["options"] == {"exp": e, "g": g, "alpha": a, "strategy": s}
        quick = sweep.cells("quick", dataset="fashion_mnist")
        assert len(quick) == 12 and {c.config["train"]["batch_size"] for c in quick} == {pub.batch_size // 4}
        smoke = sweep.cells("smoke")
        assert len(smoke) == 1 and smoke[0].config["data"]["dataset"] == "digits"
        smoke_strategies[pub.network].add(smoke[0].config["model"]["options"]["strategy"])
    assert all(len(s) == 4 for s in smoke_strategies.values())  # the smoke rows cover every strategy
    exp_g = sweeps["jiang_crnet_exp_g"]
    cells = exp_g.cells("paper")
    assert len(cells) == 2 * 4 * 4 * 3 * 3
    assert {(c.config["model"]["options"]["exp"], c.config["model"]["options"]["g"]) for c in cells} == {
        (e, g) for e in (2, 4, 6, 8) for g in (2, 4, 8)}
    figure = sweeps["jiang_figure_3_1"]
    assert figure.cells("smoke")[0].config["train"]["save_model"] is True
    assert figure.base["model"]["name"] == "resnet56"


def test_count_tables_render_without_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", "jiang-table-3-1", "jiang-table-3-2", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "jiang-table-3-1.md").read_text()
    assert "conv5-x" in text and "128×16×16" in text and "157,722" in text
    assert "C-IBneck 16" in (tmp_path / "jiang-table-3-2.md").read_text()


def test_results_table_puts_ours_beside_the_published_values():
    import pandas as pd

    label = row_label(4, 2, 0.5, "gc-c1dw")
    runs = pd.DataFrame({"row": [label] * 3, "test_acc": [91.0, 92.0, 93.0], "macs": [27_359_744.0] * 3})
    table = jiang_crnet.make_results_table(runs, "4-1").frame
    row = table[table["1st-2nd 1×1"] == "gc-c1dw"].iloc[0]
    assert row["test_acc % (ours)"] == "92.00 ± 1.00 (n=3)" and row["ΔAcc (ours - paper)"] == "+0.54"
    assert row["FLOPs M (paper)"] == "27.36" and row["Params M (paper)"] == "0.16"
    assert "MACs M (as trained)" not in table  # trained at the paper's input: no separate column
    assert (table["test_acc % (ours)"] == "-").sum() == 11


def test_latency_measurement():
    model = models.build("crnet_cib", num_classes=10, in_channels=1, image_size=8, exp=2, g=8)
    threads = torch.get_num_threads()
    result = measure_latency(model, (1, 8, 8), batch_size=4, repeats=3, warmup=1, threads=1)
    assert result["latency_s"] > 0 and result["per_image_s"] == pytest.approx(result["latency_s"] / 4)
    assert result["input"] == "1x8x8" and result["repeats"] == 3 and result["threads"] == 1
    assert "cpu" in result["device"] and "1 thread)" in result["device"]
    assert model.training and torch.get_num_threads() == threads  # both restored
    with pytest.raises(ConfigError):
        measure_latency(model, (1, 8, 8), batch_size=0)


def test_exp_g_artifacts_from_recorded_runs():
    import pandas as pd

    runs = pd.DataFrame({"row": ["CB_gc-c1dw", "CB_gc-c1dw", "CIB_c1dw-gc"], "config.model.options.exp": ["2", "2", "8"],
                         "config.model.options.g": ["8", "8", "4"], "test_acc": [50.0, 52.0, 60.0],
                         "macs": [1.0e6, 1.0e6, 2.0e6]})
    table = jiang_crnet.make_table_crnet_exp_g(runs).frame
    assert list(table["Network"]) == ["CRnet-CB", "CRnet-CIB"] and list(table["α = 1/g"]) == ["0.125", "0.25"]
    assert table["test_acc % (ours)"].iloc[0] == "51.00 ± 1.41 (n=2)"
    cb = paper_counts("crnet_cb", 2, 8, None, "gc-c1dw")
    assert table["MACs M (3×32×32)"].iloc[0] == f"{cb['macs'] / 1e6:.2f}"
    figure = jiang_crnet.make_figure_crnet_exp_g(runs)
    assert len(figure.figure.axes) == 2
    # the paper's own points: Table 4-1's 12 CRnet-CB rows beside CB, Table 4-5's 12 CRnet-CIB rows beside CIB
    for ax, table in zip(figure.figure.axes, ("4-1", "4-5")):
        assert sum(t.get_text().startswith(f"{table} ") for t in ax.texts) == 12
    assert "4-1 e4g2 gc-c1dw" in [t.get_text() for t in figure.figure.axes[0].texts]
    assert any("measured elsewhere" in n for n in figure.notes)


def test_a_profile_keeps_the_rows_it_names(tmp_path):
    """The catalog's profile-level ``rows`` (added for these sweeps: a smoke profile of one row)."""
    import yaml

    path = tmp_path / "rows.yaml"
    spec = {"name": "rows_test", "paper": "jiang",
            "artifacts": [{"id": "rows-test", "kind": "table", "number": "0", "title": "t",
                           "report": "harness_analysis.jiang_crnet:make_results_table",
                           "options": {"published": "4-1"}}],
            "base": {"data": {"dataset": "digits"}, "model": {"name": "digits_cnn"}},
            "rows": [{"label": "a"}, {"label": "b"}, {"label": "c"}],
            "profiles": {"paper": {}, "quick": {"rows": ["c", "a"]}, "smoke": {"rows": ["d"]}}}
    path.write_text(yaml.safe_dump(spec))
    sweep = catalog.load_sweep(path)
    assert [c.row for c in sweep.cells("paper")] == ["a", "b", "c"]
    assert [c.row for c in sweep.cells("quick")] == ["a", "c"]  # the file's order
    with pytest.raises(ConfigError) as info:
        sweep.cells("smoke")
    assert info.value.key == "profiles.smoke.rows" and "a, b, c" in str(info.value)


# -- Tables 4-10, 4-12, 4-14: the paper's printed relative changes, not a recomputation ----------
from harness_analysis import jiang  # noqa: E402


def _runs(rows):
    import pandas as pd

    return pd.DataFrame([{"row": r, "test_acc": a, "test_acc5": 99.0, "train_time_s": t, "predicted_time_ratio": 1.0}
                         for r, a, t in rows])


def test_the_analysis_tables_print_the_papers_printed_values():
    table = jiang.make_analysis_table(_runs([("Re-impl.", 70.0, 100.0), ("R1_0.8", 69.3, 80.0)]), "4-13")
    frame = table.frame.set_index("Method")
    # Table 4-14 prints -0.74; (71.62 / 72.15 - 1) x 100 = -0.7346 would print -0.73
    assert (71.62 / 72.15 - 1) * 100 == pytest.approx(-0.7346, abs=5e-5)
    assert frame.loc["M-Net v2 R1_0.8", "Top1↑ % (paper)"] == "-0.74"
    assert frame.loc["M-Net v2 R1_0.8", "Top1↑ % (ours)"] == "-1.00"  # 69.3 / 70 - 1
    assert list(frame["Time↑ % (paper)"]) == ["-", "-19.65", "-37.79", "-37.66"]
    assert frame.loc["M-Net v2 Re-impl.", "Top1↑ % (paper)"] == "-"  # printed "-", not a computed +0.00
    assert "except R1_0.8 Top1↑: printed -0.74, recomputed -0.7346." in " ".join(table.notes)
    cifar10 = jiang.make_analysis_table(_runs([("Re-impl.", 90.0, 100.0)]), "4-9")
    r1 = cifar10.frame.set_index("Method").loc["ResNet56 R1_0.8"]
    assert (r1["Top1↑ % (paper)"], r1["Top5↑ % (paper)"], r1["Time↑ % (paper)"]) == ("-0.36", "-0.01", "-21.04")
    assert "round to the same 2 decimals in every cell" in " ".join(cifar10.notes)


def test_only_one_printed_relative_change_differs_from_its_recomputation():
    """All 39 printed cells of Tables 4-10, 4-12, 4-14 against (x / x_Re-impl. - 1) x 100 of Tables
    4-9, 4-11, 4-13's printed values: one rounds otherwise, by 0.01."""
    assert {k: jiang.recomputation_mismatches(k) for k in ("4-9", "4-11", "4-13")} == {
        "4-9": [], "4-11": [], "4-13": ["R1_0.8 Top1↑: printed -0.74, recomputed -0.7346"]}
    cells = 0
    for key in ("4-9", "4-11", "4-13"):
        summary = jiang.summary(_runs([]).reindex(columns=["row"]), jiang.published_rows(key)[1]).set_index("row")
        for label, printed in jiang.printed_relatives(key).items():
            for stem, _ in jiang.RELATIVE:
                if printed[stem] is not None:
                    assert abs(printed[stem] - summary.loc[label, f"paper_{stem}_rel"]) < 0.0055, (key, label, stem)
                    cells += 1
    assert cells == 39


def test_the_epoch_stepped_cosines_gap_at_the_papers_length():
    """150 epochs of ceil(1,271,167 / 256) = 4,966 steps (ImageNet less the 10,000 held out): the largest
    gap is one epoch's drop at the steepest point, about π / (2 x 150); the mean about 1 / (2 x 150); the last
    epoch trains at (1 + cos(149π / 150)) / 2 of the base lr."""
    largest, mean, last = jiang.per_epoch_cosine_gap(150, 4966)
    assert largest == pytest.approx(math.pi / 300, rel=1e-3) and mean == pytest.approx(1 / 300, rel=1e-3)
    assert last == pytest.approx((1 + math.cos(149 * math.pi / 150)) / 2) == pytest.approx(1.0966e-4, rel=1e-4)
    frame = _runs([("Re-impl.", 70.0, 100.0)]).assign(**{"config.train.schedule": "cosine_iter",
                                                         "config.train.epochs": 150, "batches": 4966})
    note = jiang.make_performance_table(frame, "4-13").notes[-1]
    assert "cosine_iter" in note and "up to 1.05 % of the base lr (mean 0.33 %)" in note and "0.00011 × lr" in note
    assert "stepped once per epoch (train.schedule cosine)" in jiang.make_performance_table(
        frame.assign(**{"config.train.schedule": "cosine"}), "4-13").notes[-1]
