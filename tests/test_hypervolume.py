"""The hypervolume of a front (harness.pareto.hypervolume) against hand-computed areas and Optuna's plot."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.pareto import hypervolume

OBJECTIVES = {"val_acc": "max", "macs": "min"}


def test_two_objective_hypervolume_by_hand():
    # reference (val_acc 50, macs 4). Boxes from each point toward the reference, drawn on (macs, val_acc):
    #   (3, 90): [3, 4] x [50, 90] = 1 x 40 = 40
    #   (2, 80): adds [2, 3] x [50, 80] = 30
    #   (1, 60): adds [1, 2] x [50, 60] = 10
    #   (3.5, 70) is dominated by (3, 90): adds 0;  (5, 99) is past the reference's macs: adds 0
    frame = pd.DataFrame({"val_acc": [90, 80, 60, 70, 99], "macs": [3, 2, 1, 3.5, 5]})
    reference = {"val_acc": 50, "macs": 4}
    assert hypervolume(frame, OBJECTIVES, reference) == 80.0
    assert hypervolume(frame.iloc[:1], OBJECTIVES, reference) == 40.0
    assert hypervolume(frame.iloc[4:], OBJECTIVES, reference) == 0.0
    # without (2, 80) (a NaN objective adds nothing): 40 + (1, 60)'s [1, 3] x [50, 60] = 20
    assert hypervolume(frame.assign(val_acc=[90, float("nan"), 60, 70, 99]), OBJECTIVES, reference) == 60.0


def test_three_objective_hypervolume_by_hand():
    # two boxes toward the reference (0, 0, 0) of three maximized objectives: [0,2]x[0,1]x[0,1] (volume 2)
    # and [0,1]x[0,2]x[0,1] (2), overlapping in [0,1]x[0,1]x[0,1] (1): union 3
    frame = pd.DataFrame({"a": [2, 1], "b": [1, 2], "c": [1, 1]})
    assert hypervolume(frame, {"a": "max", "b": "max", "c": "max"}, {"a": 0, "b": 0, "c": 0}) == 3.0


def test_hypervolume_equals_optunas(monkeypatch):
    """Optuna computes hypervolumes publicly only inside its history plot: the plot's last value is ours."""
    import warnings

    import matplotlib
    import numpy as np
    import optuna

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"val_acc": rng.uniform(10, 99, 40), "macs": rng.uniform(1e5, 3e7, 40)})
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, macs in zip(frame["val_acc"], frame["macs"]):
        study.add_trial(optuna.trial.create_trial(values=[acc, macs]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plot is experimental
        ax = optuna.visualization.matplotlib.plot_hypervolume_history(study, reference_point=[0.0, 3e7])
    try:
        assert hypervolume(frame, OBJECTIVES, {"val_acc": 0.0, "macs": 3e7}) == pytest.approx(
            ax.get_lines()[0].get_ydata()[-1], rel=1e-9)
    finally:
        plt.close("all")


def test_a_missing_reference_value_is_an_error():
    with pytest.raises(ValueError, match=r"no reference value for \['macs'\]"):
        hypervolume(pd.DataFrame({"val_acc": [1.0], "macs": [1.0]}), OBJECTIVES, {"val_acc": 0})
