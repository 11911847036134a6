"""Jin's sweeps end to end at their smoke profiles: Ray Tune trials, MLflow runs, every rendered artifact.

The three sweeps run once per test session, with every other sweep, into one MLflow store (conftest's
smoke_all; Table 2.2 reads its CIFAR-10 column from the second sweep's runs); each test then checks
one sweep or one artifact in depth.
The count tables need no runs and are checked for their numbers; the latency table reads the timed
trials of jin_latency (harness/methods/latency.py).
"""
from pathlib import Path

import pandas as pd
import pytest

from harness import runs as recorded, catalog

pytestmark = pytest.mark.slow

JIN_SWEEPS = ("jin_table_2_2_cifar10", "jin_table_2_2", "jin_table_3_1", "jin_latency")  # the CIFAR-10 column first


@pytest.fixture(scope="module")
def jin_smoke(smoke_all):
    """The Jin sweeps as conftest's smoke_all ran and reported them: (tracking uri, reports folder)."""
    for sweep_name in JIN_SWEEPS:
        assert smoke_all.rc[sweep_name] == (0, 0), sweep_name
    return smoke_all.store, smoke_all.reports


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


def test_sparse_runs_log_two_of_k_squared_macs(jin_smoke):
    store, _ = jin_smoke
    runs = recorded.load_runs("jin_table_2_2_cifar10", store).set_index("row")
    dense, sparse = runs.loc["alexnet-dense"], runs.loc["alexnet-sparse"]
    assert sparse["params"] == dense["params"]  # the dense weight is what training stores
    assert sparse["macs"] < 0.5 * dense["macs"]  # 11x11, 5x5 and 3x3 kernels keep 2 weights each


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


def test_table_3_1_beside_the_paper(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-table-3-1.csv", dtype=str).fillna("")
    assert len(table) == 10
    row = table[table["row (ours)"] == "binary-approx"].iloc[0]
    assert row["Test Accuracy % (paper)"] == "79.69" and row["vs dense (paper)"] == "-10.24"
    assert row["ours (digits)"].endswith("(n=1)")
    assert table[table["row (ours)"] == "cs-local-binary-2048"].iloc[0]["ours (digits)"] == "-"


def test_table_2_1_reproduces_alexnet_and_vgg19_and_explains_the_rest(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-table-2-1.csv", dtype=str)
    rows = {(r["Model Name"], r["Model Type"]): r for _, r in table.iterrows()}
    for key in [("AlexNet", "dense"), ("AlexNet", "sparse"), ("VGG19", "dense"), ("VGG19", "sparse")]:
        assert rows[key]["params"] == "=", key
    assert rows[("VGG19", "dense")]["FLOPs"] == "=" and rows[("VGG19", "sparse")]["FLOPs"] == "="
    assert rows[("AlexNet", "dense")]["FLOPs"].startswith("≈")
    assert int(rows[("AlexNet", "sparse")]["exact macs"]) == 157_997_440
    text = (reports / "jin-table-2-1.md").read_text()
    # every mismatch is explained: Inception-v3's sparse FLOPs match at its native 299 px; the
    # ResNets' reductions match; the rest is named as unmatched
    assert "at 299x299 input" in text and "matching the paper's sparse FLOPs" in text
    assert "Max-Min removes 8.81M parameters" in text and "8.8M" in text
    assert "sparse FLOPs (ours 158M vs 163M)" in text


def test_table_3_2_says_which_reading_of_the_binary_scale_each_row_matches(jin_smoke):
    _, reports = jin_smoke
    table = pd.read_csv(reports / "jin-table-3-2.csv", dtype=str).set_index("row (ours)")
    assert table.loc["binary-heuristic", "params"] == "= with scales"
    assert table.loc["local-binary-heuristic", "FLOPs"] == "= scales absorbed"
    assert table.loc["local-binary-heuristic", "macs, scales absorbed (ours)"] == "182.8M"
    for width in (256, 512, 1024, 2048):
        assert table.loc[f"cs-local-binary-{width}", "params"] == "= scales absorbed"
    assert table.loc["cs-local-binary-2048", "binary_adds (ours)"] == "804.2M"  # 8 x the 256 row's


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


def test_reports_name_the_dataset_the_runs_used(jin_smoke):
    _, reports = jin_smoke
    for figure in ("jin-figure-2.4", "jin-figure-2.5", "jin-figure-3.2", "jin-figure-3.6"):
        text = (reports / f"{figure}.md").read_text()
        assert "runs on digits" in text and "in the legend" in text, figure
