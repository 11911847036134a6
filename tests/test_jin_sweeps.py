"""Jin's sweeps end to end at their smoke profiles: Ray Tune trials, MLflow runs, every rendered artifact.

The three sweeps run once per test session, with every other sweep, into one MLflow store (conftest's
smoke_all; Table 2.2 reads its CIFAR-10 column from the second sweep's runs); each test then checks
one sweep or one artifact in depth.
The count tables need no runs: the tests without the slow mark check their numbers against hand
derivations, fast; the latency table reads the timed trials of jin_latency (harness/methods/latency.py).
"""
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness import catalog, models, runs as recorded
from harness.errors import ConfigError


JIN_SWEEPS = ("jin_table_2_2_cifar10", "jin_table_2_2", "jin_table_3_1", "jin_latency")  # the CIFAR-10 column first


@pytest.fixture(scope="module")
def jin_smoke(smoke_all):
    """The Jin sweeps as conftest's smoke_all ran and reported them: (tracking uri, reports folder)."""
    for sweep_name in JIN_SWEEPS:
        assert smoke_all.rc[sweep_name] == (0, 0), sweep_name
    return smoke_all.store, smoke_all.reports


@pytest.mark.slow
@pytest.mark.parametrize("sweep_name", JIN_SWEEPS)
def test_every_jin_sweep_runs_end_to_end_at_smoke(jin_smoke, sweep_name):
    store, reports = jin_smoke
    sweep = catalog.all_sweeps()[sweep_name]
    cells = sweep.cells("smoke")
    runs = recorded.load_runs(sweep_name, store)
    assert len(runs) == len(cells) and set(runs["status"]) == {"FINISHED"}
    assert sorted(runs["row"]) == sorted(c.row for c in cells)
    assert set(runs["paper"]) == {"jin"} and set(runs["profile"]) == {"smoke"}
    assert (runs["flops"] == 2 * runs["macs"]).all()
    for artifact in sweep.artifacts:
        files = {p.suffix for p in reports.glob(f"{artifact.id}.*")}
        assert files == ({".md", ".csv", ".tex"} if artifact.kind == "table" else {".png", ".pdf", ".md"}), artifact.id
        if artifact.kind == "figure":
            assert (reports / f"{artifact.id}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_sparse_runs_log_two_of_k_squared_macs(jin_smoke):
    store, _ = jin_smoke
    runs = recorded.load_runs("jin_table_2_2_cifar10", store).set_index("row")
    dense, sparse = runs.loc["alexnet-dense"], runs.loc["alexnet-sparse"]
    assert sparse["params"] == dense["params"]  # the dense weight is what training stores
    assert sparse["macs"] < 0.5 * dense["macs"]  # 11x11, 5x5 and 3x3 kernels keep 2 weights each


@pytest.mark.slow
def test_table_2_2_puts_both_columns_beside_the_paper(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-table-2-2.csv", dtype=str).fillna("")
    assert list(table["Model Name"].unique()) == ["AlexNet", "VGG19", "Inception-v3", "ResNet18", "ResNet50"]
    alexnet = table[(table["Model Name"] == "AlexNet") & (table["Model Type"] == "sparse")].iloc[0]
    assert alexnet["MNIST % (paper)"] == "99.47" and alexnet["CIFAR10 % (paper)"] == "89.54"
    assert alexnet["MNIST: ours (digits)"].endswith("(n=1)") and alexnet["CIFAR10: ours (digits)"].endswith("(n=1)")
    assert alexnet["MNIST: sparse - dense (paper)"] == "-0.02"
    assert alexnet["MNIST: sparse - dense (ours)"] not in ("", "-")
    vgg_dense = table[(table["Model Name"] == "VGG19") & (table["Model Type"] == "dense")].iloc[0]
    assert vgg_dense["MNIST: ours (digits)"] == "-"  # left out at smoke
    text = (reports / "jin-table-2-2.md").read_text()
    assert "digits instead of the paper's mnist" in text and "jin_table_2_2_cifar10" in text


@pytest.mark.slow
def test_table_3_1_beside_the_paper(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-table-3-1.csv", dtype=str).fillna("")
    assert len(table) == 10
    row = table[table["row (ours)"] == "binary-approx"].iloc[0]
    assert row["Test Accuracy % (paper)"] == "79.69" and row["vs dense (paper)"] == "-10.24"
    assert row["ours (digits)"].endswith("(n=1)")
    assert table[table["row (ours)"] == "cs-local-binary-2048"].iloc[0]["ours (digits)"] == "-"


@pytest.mark.slow
def test_table_2_1_renders_each_models_reading_and_its_error(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-table-2-1.csv", dtype=str)
    rows = {(r["Model Name"], r["Model Type"]): r for _, r in table.iterrows()}
    for key in [("AlexNet", "dense"), ("AlexNet", "sparse"), ("VGG19", "dense"), ("VGG19", "sparse")]:
        assert rows[key]["params error"].startswith("="), key
    assert rows[("AlexNet", "sparse")]["FLOPs error"] == "-3.1 %"  # 157,997,440 vs 163M
    assert rows[("Inception-v3", "dense")]["FLOPs error"] == "-55.7 %"  # at the 224 px the thesis names
    assert rows[("Inception-v3", "sparse")]["reading"] == "299 px (Inception-v3's own input)"
    assert rows[("Inception-v3", "sparse")]["reading: FLOPs error"] == "= (+0.1 %)"
    assert rows[("Inception-v3", "dense")]["reading: FLOPs error"] == "-10.7 %"
    assert int(rows[("ResNet18", "sparse")]["exact params (reading)"]) == 2_962_408
    assert rows[("ResNet18", "sparse")]["reading: FLOPs error"] == "-6.2 %"
    assert rows[("ResNet50", "dense")]["reading: params error"] == "+0.4 %"
    text = (reports / "jin-table-2-1.md").read_text()
    assert "299 px with the auxiliary head: dense 27.2M +14.1 %" in text
    assert "stride on the first 1x1 (v1): dense 25.6M +12.6 % / 3.86B +1.5 %" in text


@pytest.mark.slow
def test_table_3_2_counts_every_row_under_one_rule(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-table-3-2.csv", dtype=str).set_index("row (ours)")
    assert table.loc["binary-heuristic", "FLOPs miss"] == "-55.4M"
    assert table.loc["binary-heuristic", "FLOPs error"] == "-48.6 %"
    assert table.loc["local-binary-heuristic", "FLOPs error"] == "= (-0.1 %)"
    assert table.loc["cs-local-binary-2048", "FLOPs error"] == "-8.0 %"
    for width in (256, 512, 1024, 2048):
        assert table.loc[f"cs-local-binary-{width}", "params error"].startswith("=")
    assert table.loc["cs-local-binary-2048", "binary_adds (ours)"] == "804.2M"  # 8 x the 256 row's
    text = (reports / "jin-table-3-2.md").read_text()
    assert "binary-heuristic FLOPs -55.4M (-48.6 %)" in text and "cs-local-binary-2048 FLOPs -5.21M (-8.0 %)" in text


@pytest.mark.slow
def test_latency_table_measures_every_variant_beside_its_mac_saving(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-latency.csv", dtype=str)
    assert set(table["model"]) == {"alexnet", "resnet20", "mobilenetv2"}
    assert len(table) == 3 * 6
    dense = table[table["conv"] == "dense"]
    assert set(dense["MAC saving (x)"]) == {"1.00"} and set(dense["measured speed-up (x)"]) == {"1.00"}
    alexnet_sparse = table[(table["model"] == "alexnet") & (table["conv"] == "maxmin")].iloc[0]
    assert float(alexnet_sparse["MAC saving (x)"]) > 4
    assert all(float(v) > 0 for v in table["ms/image, kernel cached"])
    notes = Path(reports / "jin-latency.md").read_text()
    assert "do not skip zeros" in notes and "recorded by the trials of sweep jin_latency" in notes
    assert "1 CPU thread(s)" in notes and "torch " in notes  # where it was measured, from the runs


@pytest.mark.slow
def test_reports_name_the_dataset_the_runs_used(jin_smoke):
    _, reports = jin_smoke
    for figure in ("jin-figure-2.4", "jin-figure-2.5", "jin-figure-3.2", "jin-figure-3.6"):
        text = (reports / f"{figure}.md").read_text()
        assert "runs on digits" in text and "in the legend" in text, figure


# ---- the count tables' numbers, by hand (no runs) -------------------------------------------------

def _counts(name, **options):
    from harness_analysis import jin_counts

    return jin_counts.count(name, options)


def test_zero_pad_shortcuts_remove_exactly_the_projections():
    """torchvision's ResNet-18 and ResNet-50 less their 1x1 projection convs and the BNs after them.

    ResNet-18: (64*128 + 2*128) + (128*256 + 2*256) + (256*512 + 2*512) = 8,448 + 33,280 + 132,096
    = 173,824 of 11,689,512. ResNet-50: 64*256 + 256*512 + 512*1024 + 1024*2048 = 2,768,896 conv
    weights + 2*(256 + 512 + 1024 + 2048) = 7,680 BN = 2,776,576 of 25,557,032; their MACs at 224:
    64*256*56*56 + (256*512 + 512*1024 + 1024*2048 at 28, 14, 7 px, each 102,760,448) = 359,661,568.
    """
    assert _counts("resnet18")["params"] == 11_689_512
    assert _counts("resnet18", shortcut="zero_pad")["params"] == 11_689_512 - 173_824 == 11_515_688
    assert _counts("resnet50")["params"] == 25_557_032
    zero_pad = _counts("resnet50", shortcut="zero_pad")
    assert zero_pad["params"] == 25_557_032 - 2_776_576 == 22_780_456
    assert zero_pad["macs"] == _counts("resnet50")["macs"] - 359_661_568 == 3_729_522_688


def test_sparse_resnet18_with_zero_pad_shortcuts_by_hand():
    """Table 2.1's 2.96M: two weights per 3x3 / 7x7 kernel, BN and the fc in full.

    kernels (C_in x C_out): stem 3*64 = 192; stage 1 4*64*64 = 16,384; stage 2 64*128 + 3*128*128
    = 57,344; stage 3 128*256 + 3*256*256 = 229,376; stage 4 256*512 + 3*512*512 = 917,504; in all
    1,220,800 kernels x 2 = 2,441,600; BN 2*(64 + 4*(64 + 128 + 256 + 512)) = 7,808; fc 512*1000
    + 1000 = 513,000; total 2,962,408.
    """
    assert _counts("resnet18", shortcut="zero_pad", conv="maxmin")["nonzero_params"] == 2_962_408


def test_v1_stride_moves_three_quarters_of_each_first_1x1_s_macs():
    """Stride 2 on a stage's first 1x1 (He et al.'s original) instead of its 3x3: that 1x1 runs at the
    output's quarter of the positions. 256*128*56*56 + 512*256*28*28 + 1024*512*14*14 = 3 x 102,760,448
    MACs at the input's size, of which 3/4 go: 231,211,008."""
    assert _counts("resnet50", stride_at="1x1")["macs"] == _counts("resnet50")["macs"] - 231_211_008


def test_zero_pad_shortcut_subsamples_and_zero_fills():
    from harness.models.resnet import ZeroPadShortcut

    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    y = ZeroPadShortcut(3, 8, 2)(x)
    assert y.shape == (2, 8, 3, 3)
    assert torch.equal(y[:, :3], x[:, :, ::2, ::2]) and not y[:, 3:].any()


def test_resnet_rejects_an_unknown_shortcut_or_stride_place():
    with pytest.raises(ConfigError, match="zero_pad") as info:
        models.build("resnet18", shortcut="identity")
    assert info.value.key == "model.shortcut"
    with pytest.raises(ConfigError, match="1x1") as info:
        models.build("resnet50", stride_at="7x7")
    assert info.value.key == "model.stride_at"


def test_table_2_1_shows_the_closest_reading_that_counts_bn():
    from harness_analysis import jin_counts

    for name, tried in jin_counts.table_2_1_candidates().items():
        with_bn = [(total, reading.label) for reading, _, total in tried if reading.bn_params]
        assert min(with_bn)[1] == jin_counts.CHOSEN[name].label, name


def test_table_3_2_rule_by_hand():
    """Binary scales absorbed (Sec. 3.3), AlexNet at 224 with 1,000 classes.

    fc: 9216*4096 + 4096*4096 + 4096*1000 = 58,621,952 weights (and MACs) + 9,192 biases = 58,631,144;
    conv biases 64 + 192 + 384 + 256 + 256 = 1,152; output positions 55², 27², 13², 13², 13².
    binary sparse: no full-precision conv weight: 58,632,296 params, 58,621,952 MACs.
    local binary (256): + 1x1 convs 256 -> C_out, 256*1152 + 1152 biases = 296,064 params, MACs
    256*(64*3025 + 192*729 + 384*169 + 256*169 + 256*169) = 124,157,952: 182,779,904.
    channel-sparse (any width): 2 weights per 1x1 output channel + its bias, 3*1152 = 3,456 params;
    2*(64*3025 + 192*729 + 384*169 + 2*256*169) = 969,984 MACs: 59,591,936.
    """
    from harness_analysis import jin_counts

    table = jin_counts.make_table_3_2().frame.set_index("row (ours)")
    exact = table[["exact nonzero_params", "exact macs"]].astype(int)
    assert tuple(exact.loc["binary-heuristic"]) == (58_632_296, 58_621_952)
    assert tuple(exact.loc["local-binary-heuristic"]) == (58_631_144 + 296_064, 58_621_952 + 124_157_952)
    for width in (256, 2048):
        assert tuple(exact.loc[f"cs-local-binary-{width}"]) == (58_631_144 + 3_456, 58_621_952 + 969_984)
    assert table.loc["binary-heuristic", "FLOPs miss"] == "-55.4M"  # 58,621,952 - 114M
    assert table.loc["cs-local-binary-256", "FLOPs error"] == "-1.8 %"  # 59,591,936 / 60.7M - 1
