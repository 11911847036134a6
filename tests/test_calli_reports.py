"""Çallı's report functions on fabricated runs, and the table sweeps' smoke reports (conftest's smoke_all)."""
import pandas as pd
import pytest

from harness_analysis import calli
from harness import catalog


def runs(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "digits", "status": "FINISHED", "profile": "quick", **r} for r in rows])


def test_every_calli_sweep_has_three_profiles_and_tiny_smoke_grids():
    sweeps = {n: s for n, s in catalog.all_sweeps().items() if s.paper == "calli"}
    # the thesis's tables and figure (the calli_section_* sweeps of the Sec. 3 text are tested with their studies)
    tables = {"calli_table_3_1", "calli_table_3_2", "calli_approximation", "calli_summation", "calli_figure_3_1"}
    assert tables <= set(sweeps)
    for sweep in (sweeps[name] for name in tables):
        assert set(sweep.profiles) == {"paper", "quick", "smoke"}
        smoke = sweep.cells("smoke")
        assert 1 <= len(smoke) <= 4
        assert {c.config["data"]["dataset"] for c in smoke} == {"digits"}


def test_table_3_1_puts_mean_and_max_beside_the_paper():
    frame = calli.make_table_3_1(runs([
        {"row": "convolution", "test_acc": 80.0, "params": 1, "macs": 10},
        {"row": "convolution", "test_acc": 82.0, "params": 1, "macs": 10},
        {"row": "separable", "test_acc": 70.0, "params": 1, "macs": 10},
    ])).frame.set_index("row (ours)")
    assert frame.loc["convolution", "Mean Accuracy % (paper)"] == "81.84"
    assert frame.loc["convolution", "Max Accuracy % (paper)"] == "82.56"
    assert frame.loc["convolution", "Mean Accuracy % (ours, digits)"] == "81.00"
    assert frame.loc["convolution", "Max Accuracy % (ours, digits)"] == "82.00"
    assert frame.loc["separable_nonlinear", "Mean Accuracy % (paper)"] == "82.16"
    assert frame.loc["separable_nonlinear", "Mean Accuracy % (ours, digits)"] == "-"


def test_table_3_2_counts_and_published_values():
    frame = calli.make_table_3_2(runs([{"row": "resnet20", "test_acc": 90.0}, {"row": "resnet20", "test_acc": 91.0}]))
    frame = frame.frame.set_index("Model")
    assert frame.loc["ResNet-20", "# params M (ours)"] == "0.270"  # 269,722 (tests/test_models.py)
    assert frame.loc["ResNet-20", "# layers (ours)"] == 20 and frame.loc["ResNet-20", "macs M (ours)"] == "40.6"
    assert frame.loc["ResNet-20", "top-1 % (paper)"] == "91.25"
    assert frame.loc["ResNet-20", "top-1 % max (ours, digits)"] == "91.00"
    assert frame.loc["Our Model", "# params M (ours)"] == "0.122"  # 121,802 (tests/test_calli_layers.py)
    assert frame.loc["Our Model", "# layers (ours)"] == 26 and frame.loc["Our Model", "# params M (paper)"] == "0.12"
    assert frame.loc["Our Model", "macs M (ours)"] == "13.9"
    assert frame.loc["Our Model", "macs M at 24x24 (ours)"] == "7.8"
    assert frame.loc["ResNet-20", "macs M at 24x24 (ours)"] == "22.8"  # 22,810,240 (He et al. train it at 32x32)
    notes = " ".join(calli.make_table_3_2(runs([{"row": "calli_cifar", "config.data.val_size": "0"}])).notes)
    assert "121,802 params against the thesis's 0.12 M" in notes and "26 weighted layers" in notes
    assert "13.93 M MACs at 32x32 and 7.84 M at the thesis's 24x24 crops (15.67 M FLOPs" in notes
    assert "against its ~13M" in notes and "2 / 2 / 2 (blocks: 2) gives 88,586 params" in notes
    assert "all 50,000 CIFAR-10 training images" in notes and "held out data.val_size = 0" in notes


def test_readings_table_puts_every_block_placement_beside_the_thesis():
    frame = calli.make_cifar_readings().frame
    assert len(frame) == 10 * 2  # 6 blocks in 3 non-empty stages: C(5, 2) = 10 placements; linear and non-linear
    ours = frame[frame["ours"] == "yes"].iloc[0]
    assert ours["blocks per stage"] == "1 / 2 / 3" and ours["params"] == 121_802 and ours["macs M at 32x32"] == "13.93"
    assert (frame["weighted layers"] == 26).all()  # no placement changes the layer count
    nonlinear = frame[frame["nonlinear"]].set_index("blocks per stage")
    assert nonlinear.loc["2 / 2 / 2", "params"] == 88_586 and nonlinear.loc["2 / 2 / 2", "macs M at 24x24"] == "8.09"
    # only 1 / 2 / 3 rounds to the thesis's 0.12 M with the non-linear separable convolutions
    assert list(nonlinear.index[nonlinear["params M"] == "0.12"]) == ["1 / 2 / 3"]


def test_table_3_1_notes_state_the_training_set_and_augmentation():
    recorded = {"row": "convolution", "test_acc": 80.0, "config.data.val_size": "0.1",
                "config.data.train_subset": "10000"}
    notes = " ".join(calli.make_table_3_1(runs([recorded])).notes)
    assert "all 50,000 CIFAR-10 training images" in notes and "data.val_size 0" in notes
    assert "held out data.val_size = 0.1 and kept data.train_subset = 10000 training images" in notes
    assert "Sec. 2.3.4 names none" in notes and "random 32x32 crop" in notes


def test_conv_counts_table_needs_no_runs():
    frame = calli.make_conv_counts().frame.set_index("conv")
    assert frame.loc["convolution", "macs"] == 28_673_280 and frame.loc["separable", "macs"] == 3_814_656
    assert frame.loc["separable", "macs / baseline"] == "0.133"


def test_summation_and_approximation_tables():
    summation = calli.make_summation(runs([
        {"row": "count-distortion", "config.method.options.criterion": "count",
         "config.method.options.distortion": "0.1", "nodes_1": 1.0, "one_node": 1.0, "cycles": 7.0,
         "converged": 1.0, "test_rmse": 0.01},
        {"row": "variance", "nodes_1": 40.0, "one_node": 0.0, "cycles": 3.0, "converged": 1.0, "test_rmse": 0.02},
    ])).frame.set_index("row")
    assert summation.loc["count-distortion", "reached one node (ours)"] == "1 of 1"
    assert summation.loc["count-distortion", "paper"].startswith("one node")
    assert summation.loc["variance", "distortion"] == "no" and summation.loc["variance", "criterion"] == "variance"
    assert summation.loc["variance", "regularization"] == "none"
    approximation = calli.make_approximation(runs([
        {"row": "p1-e0.1", "config.method.options.prune_threshold": "1.0", "config.method.options.error_threshold": "0.1",
         "fp32_test_acc": 90.0, "approx_test_acc": 85.0, "int8_test_acc": 89.5, "fp32_latency_s": 0.002,
         "int8_latency_s": 0.001, "int8_speedup": 2.0, "factorized_layers": 3.0, "factorizable_layers": 14.0,
         "macs": 100.0, "approx_macs": 80.0, "pruned_weights_frac": 0.5}])).frame.iloc[0]
    assert approximation["int8 latency ms"] == "1.000 (n=1)" and approximation["factorized / factorizable layers"] == "3.0 / 14"


def test_figure_3_1_draws_before_paper_and_ours():
    result = calli.make_figure_3_1(runs([{"row": "variance-l2", "nodes_1": 3.0, "nodes_2": 5.0, "nodes_3": 4.0,
                                          "cycles": 9.0, "test_rmse": 0.12,
                                          "config.method.options.widths": (16, 48, 24)}]))  # typed, as harness.runs reads config.yaml
    ax = result.figure.axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines["before pruning"] == [1, 16, 48, 24, 1]  # the widths the run recorded, not the default
    assert lines["thesis after pruning (MNIST, 10 ± 4 cycles)"] == [1, 2, 4, 3, 1]
    assert lines["ours: variance-l2 (9 cycles, RMSE 0.120, n=1)"] == [1, 3.0, 5.0, 4.0, 1]
    import matplotlib.pyplot as plt

    plt.close(result.figure)


@pytest.mark.slow
def test_table_sweeps_smoke_reports_print_our_counts_beside_the_thesis(smoke_all):
    for name in ("calli_table_3_1", "calli_table_3_2"):
        assert smoke_all.rc[name] == (0, 0), name
    table = pd.read_csv(smoke_all.reports / "calli-table-3-2.csv", dtype=str).set_index("Model")
    assert table.loc["Our Model", "# params M (ours)"] == "0.122" and table.loc["Our Model", "# layers (ours)"] == "26"
    assert table.loc["Our Model", "macs M at 24x24 (ours)"] == "7.8"
    assert table.loc["Our Model", "top-1 % mean ± std (ours, digits)"].endswith("(n=1)")
    text = (smoke_all.reports / "calli-table-3-2.md").read_text()
    assert "121,802 params against the thesis's 0.12 M" in text and "held out data.val_size = 64" in text
    readings = pd.read_csv(smoke_all.reports / "calli-table-3-2-readings.csv", dtype=str)
    assert len(readings) == 20 and list(readings.loc[readings["ours"] == "yes", "params"]) == ["121802"]
    text = (smoke_all.reports / "calli-table-3-1.md").read_text()
    assert "all 50,000 CIFAR-10 training images" in text and "Sec. 2.3.4 names none" in text
