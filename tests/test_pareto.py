"""harness_analysis.pareto: the front against a brute-force reference and a hand-derived case; the summary,
table and figure on runs shaped like harness.runs.load_runs' output."""
import itertools
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from harness_analysis.pareto import make_pareto_figure, make_pareto_table, p_dominated, pareto_front, summarize
from harness_analysis.published_points import published_points


def brute_force_front(frame: pd.DataFrame, objectives: dict) -> list:
    """Index labels of the non-dominated rows, by comparing every ordered pair in plain Python."""
    def better_or_equal(a, b, name):
        return a >= b if objectives[name] == "max" else a <= b

    def strictly_better(a, b, name):
        return a > b if objectives[name] == "max" else a < b

    rows = {label: {name: frame.at[label, name] for name in objectives} for label in frame.index}
    complete = [label for label, r in rows.items() if not any(math.isnan(v) for v in r.values())]
    dominated = set()
    for a, b in itertools.permutations(complete, 2):
        if (all(better_or_equal(rows[a][n], rows[b][n], n) for n in objectives)
                and any(strictly_better(rows[a][n], rows[b][n], n) for n in objectives)):
            dominated.add(b)
    return [label for label in complete if label not in dominated]


def random_frame(seed: int, n: int, names: list) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # few distinct values, so ties in one objective are common
    values = rng.integers(0, 5, size=(n, len(names))).astype(float)
    values[rng.random(values.shape) < 0.08] = np.nan
    frame = pd.DataFrame(values, columns=names)
    duplicates = frame.sample(n=n // 5, random_state=seed)
    return pd.concat([frame, duplicates], ignore_index=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("objectives", [
    {"a": "max", "b": "min"},
    {"a": "min", "b": "min"},
    {"a": "max", "b": "max", "c": "min"},
    {"a": "min", "b": "max", "c": "max"},
])
def test_front_matches_brute_force(seed, objectives):
    frame = random_frame(seed, 60, list(objectives))
    frame["other"] = np.arange(len(frame))
    front = pareto_front(frame, objectives)
    expected = brute_force_front(frame, objectives)
    assert list(front.index) == expected
    assert 0 < len(expected) < len(frame)
    assert list(front.columns) == list(frame.columns)


def test_front_hand_derived_case():
    # val_acc (max), macs (min):
    #   p (90, 10)  front: nothing has val_acc >= 90 with macs <= 10 except its duplicate q
    #   q (90, 10)  front: exact duplicate of p; equal rows do not dominate each other
    #   r (95, 40)  front: the best val_acc
    #   s (89, 10)  dominated by p (same macs, lower val_acc)
    #   t (95, 50)  dominated by r (same val_acc, more macs)
    #   u (80,  5)  front: the fewest macs
    #   v (nan, 1)  never on the front: a NaN objective
    #   w (93, 30)  front: between p and r
    #   x (92, 35)  dominated by w
    frame = pd.DataFrame({"val_acc": [90, 90, 95, 89, 95, 80, np.nan, 93, 92],
                          "macs": [10, 10, 40, 10, 50, 5, 1, 30, 35]},
                         index=list("pqrstuvwx"))
    assert list(pareto_front(frame, {"val_acc": "max", "macs": "min"}).index) == list("pqruw")
    # flipping macs to max: r and t tie on val_acc, t has more macs, so t dominates r; v is still NaN
    assert list(pareto_front(frame, {"val_acc": "max", "macs": "max"}).index) == ["t"]


def test_front_of_an_empty_or_all_nan_frame_is_empty():
    frame = pd.DataFrame({"val_acc": [np.nan, np.nan], "macs": [1.0, 2.0]})
    assert pareto_front(frame, {"val_acc": "max", "macs": "min"}).empty
    assert pareto_front(frame.iloc[:0], {"val_acc": "max", "macs": "min"}).empty


def test_bad_objectives_are_named():
    frame = pd.DataFrame({"val_acc": [1.0], "macs": [2.0]})
    with pytest.raises(ValueError, match=r"objective 'macs': direction 'minimize' is not one of max, min"):
        pareto_front(frame, {"val_acc": "max", "macs": "minimize"})
    with pytest.raises(ValueError, match=r"objective 'flops': no column 'flops'.*'macs'"):
        pareto_front(frame, {"val_acc": "max", "flops": "min"})
    with pytest.raises(ValueError, match="needs objectives"):
        pareto_front(frame, {})


# configurations of the synthetic sweep (model.name, width): per-seed val_acc, test_acc, macs
#   A resnet20 0.5: val 90, 91      macs 5e6   front (fewest macs)
#   B resnet20 1.0: val 92, 93, 94  macs 40e6  front
#   C crnet    0.5: val 89          macs 30e6  dominated by A; its one trial stopped early
#   D crnet    1.0: val 95, 96      macs 120e6 front (best val_acc); seed 1 stopped early
#   E crnet    2.0: infeasible, two samples, never trained
RUNS = [
    # id, model, width, seed, val_acc, test_acc, macs, stopped_early, infeasible
    ("a1", "resnet20", "0.5", "1", 91.0, 90.0, 5e6, None, None),
    ("a0", "resnet20", "0.5", "0", 90.0, 89.0, 5e6, None, None),
    ("b2", "resnet20", "1.0", "2", 94.0, 93.0, 40e6, None, None),
    ("b0", "resnet20", "1.0", "0", 92.0, 91.0, 40e6, None, None),
    ("b1", "resnet20", "1.0", "1", 93.0, 92.5, 40e6, None, None),
    ("c0", "crnet", "0.5", "0", 89.0, 88.0, 30e6, "true", None),
    ("d0", "crnet", "1.0", "0", 95.0, 94.0, 120e6, None, None),
    ("d1", "crnet", "1.0", "1", 96.0, 95.0, 120e6, "true", None),
    ("e0", "crnet", "2.0", "0", np.nan, np.nan, 480e6, None, "true"),
    ("e1", "crnet", "2.0", "1", np.nan, np.nan, 480e6, None, "true"),
]
OBJECTIVES = {"val_acc": "max", "macs": "min"}


def make_runs() -> pd.DataFrame:
    rows = []
    for run_id, model, width, seed, val_acc, test_acc, macs, stopped, infeasible in RUNS:
        row = {"run_id": f"{run_id}{'f' * 30}", "status": "FINISHED", "profile": "smoke", "seed": int(seed),
               "val_acc": val_acc, "test_acc": test_acc, "macs": macs, "params": macs / 100,
               "config.model.name": model, "config.model.options.width": width, "config.train.seed": seed,
               "config.train.epochs": "10", "config.data.dataset": "cifar10"}
        if stopped:
            row["stopped_early"] = stopped
        if infeasible:
            row["infeasible"] = infeasible
        rows.append(row)
    runs = pd.DataFrame(rows)
    runs["seed"] = runs["seed"].astype("Int64")
    return runs


def test_summarize_collapses_seeds():
    summary = summarize(make_runs(), OBJECTIVES)
    assert summary.attrs["infeasible"] == 2 and summary.attrs["runs"] == 8
    assert summary.attrs["config_keys"] == ["model.name", "model.options.width"]
    # the constant epochs/dataset and the seed are not configuration columns of the summary
    assert list(summary.columns) == ["model.name", "model.options.width", "val_acc", "val_acc_std", "val_acc_ci",
                                     "macs", "macs_std", "macs_ci", "n", "seeds", "run_ids", "stopped_early"]
    rows = {(r["model.name"], r["model.options.width"]): r for _, r in summary.iterrows()}
    assert set(rows) == {("resnet20", "0.5"), ("resnet20", "1.0"), ("crnet", "0.5"), ("crnet", "1.0")}
    b = rows[("resnet20", "1.0")]
    # 92, 93, 94: mean 93, sample std sqrt(((-1)^2 + 0 + 1^2) / 2) = 1
    assert (b["val_acc"], b["val_acc_std"], b["n"], b["seeds"]) == (93.0, 1.0, 3, [0, 1, 2])
    # 95 % t-interval: t(0.975, 2) = 4.302653 (a t table) x 1 / sqrt(3)
    assert b["val_acc_ci"] == pytest.approx(4.302653 / math.sqrt(3), abs=1e-5)
    assert sorted(b["run_ids"]) == [f"b{i}{'f' * 30}" for i in range(3)]
    a = rows[("resnet20", "0.5")]
    # 90, 91: mean 90.5, sample std sqrt(0.25 + 0.25) = sqrt(0.5)
    assert a["val_acc"] == 90.5 and a["val_acc_std"] == pytest.approx(math.sqrt(0.5)) and a["macs_std"] == 0
    c = rows[("crnet", "0.5")]
    assert c["n"] == 1 and math.isnan(c["val_acc_std"]) and math.isnan(c["val_acc_ci"]) and c["stopped_early"] == 1
    assert rows[("crnet", "1.0")]["stopped_early"] == 1 and b["stopped_early"] == 0


def test_summarize_without_tag_columns_or_config_keys():
    runs = make_runs().drop(columns=["stopped_early", "infeasible"]).iloc[:5]
    summary = summarize(runs, OBJECTIVES)
    assert summary.attrs["infeasible"] == 0 and summary["stopped_early"].tolist() == [0, 0]
    only_seeds = runs[["run_id", "val_acc", "macs", "config.train.seed"]]
    summary = summarize(only_seeds, OBJECTIVES)
    # nothing but the seed differs: all five runs are one configuration
    assert summary["n"].tolist() == [5] and summary["seeds"].tolist() == [[0, 0, 1, 1, 2]]
    assert summary.attrs["config_keys"] == []


def test_table_lists_the_front_best_first_with_counts():
    table = make_pareto_table(make_runs(), OBJECTIVES)
    frame = table.frame
    assert list(frame.columns) == ["model.name", "model.options.width", "val_acc", "macs", "test_acc",
                                   "p_dominated", "stopped_early", "run_ids"]
    assert list(zip(frame["model.name"], frame["model.options.width"])) == [
        ("crnet", "1.0"), ("resnet20", "1.0"), ("resnet20", "0.5")]
    # mean ± 95 % CI: n=2, s=sqrt(0.5): t(0.975, 1) = 12.7062 x sqrt(0.5) / sqrt(2) = 6.35;
    # n=3, s=1: t(0.975, 2) = 4.3027 / sqrt(3) = 2.48
    assert frame["val_acc"].tolist() == ["95.50 ± 6.35 (n=2)", "93.00 ± 2.48 (n=3)", "90.50 ± 6.35 (n=2)"]
    assert frame["macs"].tolist() == ["120000000 ± 0 (n=2)", "40000000 ± 0 (n=3)", "5000000 ± 0 (n=2)"]
    # 91, 92.5, 93: s = sqrt((1.1667^2 + 0.3333^2 + 0.8333^2) / 2) = 1.0408; 4.3027 x 1.0408 / sqrt(3) = 2.59
    assert frame["test_acc"].iloc[1] == "92.17 ± 2.59 (n=3)"
    # no resample can reorder them: D's worst seed (95) beats B's best (94), B's worst (92) A's best (91),
    # and each is the cheapest at its accuracy
    assert frame["p_dominated"].tolist() == ["0.000", "0.000", "0.000"]
    assert frame["stopped_early"].tolist() == [1, 0, 0]
    assert frame["run_ids"].iloc[0] == "d0ffffff, d1ffffff"
    notes = " ".join(table.notes)
    assert "val_acc (max), macs (min)" in notes
    assert "4 configurations from 8 runs considered" in notes and "3 on the front" in notes
    assert "2 infeasible samples excluded" in notes
    assert "2 trials stopped early" in notes and "(1 in front configurations)" in notes
    assert "validation metrics only" in notes


def test_table_reads_objectives_from_attrs_and_keeps_published_apart():
    runs = make_runs()
    runs.attrs["objectives"] = OBJECTIVES
    published = [{"label": "Jiang CRnet-CB exp=4", "source": "003 Table 4-1", "val_acc": 99.0, "macs": 1e6}]
    table = make_pareto_table(runs, published=published)
    frame = table.frame
    assert frame["source"].tolist() == ["ours", "ours", "ours", "003 Table 4-1"]
    # the published point would dominate every one of ours; ours stay as without it
    ours = frame[frame["source"] == "ours"].drop(columns=["label", "source"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, make_pareto_table(runs).frame, check_dtype=False)
    last = frame.iloc[-1]
    assert (last["label"], last["val_acc"], last["macs"], last["test_acc"]) == (
        "Jiang CRnet-CB exp=4", "99.00", "1000000", "-")
    assert "1 published points" in " ".join(table.notes)


def test_missing_objectives_are_an_error():
    runs = make_runs()
    with pytest.raises(ValueError, match="a pareto report needs objectives"):
        make_pareto_table(runs)
    with pytest.raises(ValueError, match="a pareto report needs objectives"):
        make_pareto_figure(runs)
    with pytest.raises(ValueError, match="objective 'latency_ms': no column"):
        make_pareto_table(runs, {"val_acc": "max", "latency_ms": "min"})
    with pytest.raises(ValueError, match="objective 'val_acc': direction 'up'"):
        summarize(runs, {"val_acc": "up"})
    with pytest.raises(ValueError, match="color_by 'method.name'.*'model.name'"):
        make_pareto_figure(runs, OBJECTIVES, color_by="method.name")


def front_line(ax):
    lines = [line for line in ax.get_lines() if line.get_label() == "Pareto front (2-D)"]
    assert len(lines) == 1
    return lines[0]


def test_figure_of_two_objectives():
    published = [{"label": "Jiang CRnet-CB exp=4", "source": "003 Table 4-1", "val_acc": 99.0, "macs": 1e6}]
    figure = make_pareto_figure(make_runs(), OBJECTIVES, published=published)
    try:
        (ax,) = figure.figure.axes[:1]
        assert len(figure.figure.axes) == 1
        # macs (min) against val_acc (max): the cost goes on x
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("macs (min)", "val_acc (max)")
        assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
        line = front_line(ax)
        assert list(line.get_xdata()) == [5e6, 40e6, 120e6]
        assert list(line.get_ydata()) == [90.5, 93.0, 95.5]
        assert line.get_drawstyle() == "steps-post"
        assert [t.get_text() for t in ax.texts] == ["1"]  # numbered; the notes name each number
        assert any("numbered: 1 = Jiang CRnet-CB exp=4" in n for n in figure.notes)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "model.name=resnet20" in legend and "model.name=crnet" in legend and "stopped early" in legend
        assert any("2-D projection" in n for n in figure.notes)
    finally:
        plt.close(figure.figure)


def test_figure_of_three_objectives_draws_each_pairs_front():
    runs = make_runs()
    # params breaks the tie between macs and params so that the pairs' fronts differ
    runs.loc[runs["run_id"].str.startswith("c"), "params"] = 1e4
    objectives = {"val_acc": "max", "macs": "min", "params": "min"}
    figure = make_pareto_figure(runs, objectives, color_by="model.options.width")
    try:
        axes = figure.figure.axes
        assert len(axes) == 3
        summary = summarize(runs, objectives)
        for ax, (x, y) in zip(axes, [("macs", "val_acc"), ("params", "val_acc"), ("macs", "params")]):
            assert (ax.get_xlabel(), ax.get_ylabel()) == (f"{x} ({objectives[x]})", f"{y} ({objectives[y]})")
            expected = pareto_front(summary, {x: objectives[x], y: objectives[y]}).sort_values(x)
            line = front_line(ax)
            assert list(line.get_xdata()) == list(expected[x]) and list(line.get_ydata()) == list(expected[y])
        # params: crnet 0.5 at 1e4 is cheapest, so it is on the (params, val_acc) front but not (macs, val_acc)
        assert 1e4 in list(front_line(axes[1]).get_xdata())
        assert 30e6 not in list(front_line(axes[0]).get_xdata())
        legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
        assert "model.options.width=0.5" in legend and "on the front of all objectives" in legend
    finally:
        plt.close(figure.figure)


def bootstrap_runs() -> pd.DataFrame:
    """Five configurations x 3 seeds (val_acc %, macs), objectives {val_acc: max, macs: min}:
      A 91, 91, 91      @ 100   on the front by means (best accuracy)
      C1 80, 80, 100    @ 50    on the front (cheapest); mean 86.67
      C2, C3 as C1      @ 60, 70  dominated by C1 (same accuracies, dearer)
      B 70, 70, 70      @ 200   dominated by everyone
    A is dominated in a resample when any of C1, C2, C3 (each cheaper) resamples to a mean >= 91:
    with k draws of 100 among 3, (240 + 20 k) / 3 >= 91 needs k >= 2, P = 3 (1/3)^2 (2/3) + (1/3)^3
    = 7/27 each, independently; so p_dominated(A) = 1 - (20/27)^3 = 0.5935. C1: nothing is as cheap,
    0. B: A (constant, 91 @ 100) dominates it in every resample, 1."""
    spec = {"A": ([91, 91, 91], 100), "C1": ([80, 80, 100], 50), "C2": ([80, 80, 100], 60),
            "C3": ([80, 80, 100], 70), "B": ([70, 70, 70], 200)}
    rows = [{"run_id": f"{name}{seed}", "val_acc": float(acc), "macs": float(macs), "config.model.name": name,
             "config.train.seed": str(seed)}
            for name, (accs, macs) in spec.items() for seed, acc in enumerate(accs)]
    return pd.DataFrame(rows)


def test_p_dominated_by_bootstrap_matches_hand_derived_probabilities():
    summary = summarize(bootstrap_runs(), OBJECTIVES)
    by_name = dict(zip(summary["model.name"], summary.index))
    assert set(pareto_front(summary, OBJECTIVES)["model.name"]) == {"A", "C1"}
    p = p_dominated(summary, OBJECTIVES)
    assert p[by_name["C1"]] == 0.0 and p[by_name["B"]] == 1.0
    # 1000 resamples: the estimate's std is sqrt(0.5935 x 0.4065 / 1000) = 0.016; the generator is fixed
    assert p[by_name["A"]] == pytest.approx(1 - (20 / 27) ** 3, abs=0.05)
    assert p_dominated(summary, OBJECTIVES).equals(p)  # the same runs give the same numbers in every report
    table = make_pareto_table(bootstrap_runs(), OBJECTIVES)
    assert table.frame["model.name"].tolist() == ["A", "C1"]
    assert table.frame["p_dominated"].tolist() == [f"{p[by_name['A']]:.3f}", "0.000"]
    assert table.frame["val_acc"].tolist()[0] == "91.00 ± 0.00 (n=3)"
    assert any("1000 bootstrap resamples" in n for n in table.notes)


def test_figure_draws_a_doubtful_front_member_hollow():
    figure = make_pareto_figure(bootstrap_runs(), OBJECTIVES)
    try:
        ax = figure.figure.axes[0]
        from matplotlib.collections import PathCollection

        hollow = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_facecolor()) == 0]
        # only A (p_dominated 0.59 > 0.5) is hollow
        assert [list(c.get_offsets()[0]) for c in hollow] == [[100.0, 91.0]]
        assert any("Hollow markers: the 1 front configurations" in n for n in figure.notes)
    finally:
        plt.close(figure.figure)


def test_a_front_over_single_seeds_says_so():
    runs = bootstrap_runs()
    table = make_pareto_table(runs[runs["config.train.seed"] == "0"], OBJECTIVES)
    assert any("this front is over single samples" in n for n in table.notes)
    assert table.frame["val_acc"].tolist() == ["91.00 (n=1)", "80.00 (n=1)"]
    assert table.frame["p_dominated"].tolist() == ["0.000", "0.000"]


def test_published_points_map_the_papers_pairs_onto_the_objectives():
    points = published_points({"val_acc": "max", "macs": "min"})
    by_label = {p["label"]: p for p in points}
    # analysis/published/jiang.yaml, Table 4-1's first row: 28.17 M FLOPs (multiply-adds), 90.72 %
    jiang = by_label["Jiang T4-1 crnet_cb exp4 g2 a0.5 c1dw-c1dw (CIFAR-10)"]
    assert (jiang["val_acc"], jiang["macs"], jiang["dataset"]) == (90.72, 28.17e6, "cifar10")
    assert "measured elsewhere" in jiang["source"]
    # calli.yaml Table 3.2: "~13M" ops, 91.1 %; jin.yaml Tables 3.1/3.2 dense AlexNet: 715M, 89.93 %
    assert by_label["Çallı T3.2 Our Model (CIFAR-10)"]["macs"] == 13e6
    assert by_label["Jin T3.1/3.2 AlexNet dense (CIFAR-10)"]["macs"] == 715e6
    # Tables 4-1 ... 4-8 have 12 rows each (one lost FLOPs value), Jin 3.1/3.2 share 8 rows, Tables 2.1/2.2
    # 10 models x 2 datasets, Çallı 2 rows
    assert len(points) == 8 * 12 - 1 + 8 + 20 + 2
    # Jin's "# params" is nonzero_params, not params: a params front gets no Jin point
    assert not [p for p in published_points({"test_acc": "max", "params": "min"}) if p["paper"] == "Jin"]
    assert published_points({"val_acc": "max", "epoch_time_s": "min"}) == []
    table = make_pareto_table(make_runs(), OBJECTIVES, published="papers")
    assert (table.frame["source"] != "ours").sum() == len(points)


def test_published_points_on_another_dataset_say_so():
    table = make_pareto_table(make_runs().assign(dataset="cifar10"), OBJECTIVES, published="papers")
    labels = table.frame.loc[table.frame["source"] != "ours", "label"].tolist()
    assert "Jiang T4-1 crnet_cb exp4 g2 a0.5 c1dw-c1dw (CIFAR-10)" in labels
    assert "Jiang T4-3 crnet_cb exp4 g2 a0.5 c1dw-c1dw (CIFAR-100) [not our dataset: ours cifar10]" in labels
    assert any("measured elsewhere" in n for n in table.notes)
