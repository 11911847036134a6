"""Çallı's report functions on fabricated runs (the sweeps themselves run in tests/test_sweep.py at smoke)."""
import pandas as pd

from analysis import calli
from harness import catalog


def runs(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "digits", "status": "FINISHED", "profile": "quick", **r} for r in rows])


def test_every_calli_sweep_has_three_profiles_and_tiny_smoke_grids():
    sweeps = {n: s for n, s in catalog.all_sweeps().items() if s.paper == "calli"}
    assert set(sweeps) == {"calli_table_3_1", "calli_table_3_2", "calli_approximation", "calli_summation",
                           "calli_figure_3_1"}
    for sweep in sweeps.values():
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
    assert frame.loc["Our Model", "# params M (ours)"] == "0.089"  # 88,586 (tests/test_calli_layers.py)
    assert frame.loc["Our Model", "# layers (ours)"] == 26 and frame.loc["Our Model", "# params M (paper)"] == "0.12"


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
