"""Jiang, *Faster Convolutional Neural Networks Training* (PhD dissertation), Sec. 4.2: data reduction.

Tables 4-9 ... 4-14 and Figures 4.1 ... 4.6 from the runs of the sweeps ``jiang_table_4_9``
(CIFAR-10), ``jiang_table_4_11`` (CIFAR-100) and ``jiang_table_4_13`` (ImageNet).

Column mapping, paper -> ours:
  "Top1 %" / "Top5 %"   -> ``test_acc`` / ``test_acc5`` of the last epoch (the paper reports the
                           final model on the test set, ImageNet's validation set standing in for it)
  "Time"                -> ``train_time_s``: the sum of the epochs' training-loop times (evaluation
                           excluded); the paper's wall time on 2 Quadro RTX 5000 (CIFAR) is not
                           comparable across machines, so the tables also give the ratio to the
                           baseline row, which is
  "Time↑ %"             -> (train_time_s(row) / train_time_s(Re-impl.) - 1) x 100, beside Corollary
                           2's prediction (``predicted_time_ratio`` logged by each trial)
  "Top1↑ %", "Top5↑ %"  -> relative change to the baseline row: (acc(row) / acc(Re-impl.) - 1) x 100,
                           as the paper computes them (92.20 vs 92.53 -> -0.36)
Ours are means over seeds (± std, n); the paper ran each setting once with one seed.
"""
from __future__ import annotations

import pandas as pd

from .report import Figure, Table, mean_std

BASELINE = "Re-impl."


def _mmss(text: str) -> float:
    a, b = text.split("/")
    return int(a) * 60 + int(b)


def _hhmm(text: str) -> float:
    a, b = text.split("/")
    return int(a) * 3600 + int(b) * 60


# row label -> (setting as printed, top-1 %, top-5 %, time in seconds, Flat/B-neck)
CIFAR10 = {
    "Re-impl.": ("-", 92.53, 99.78, _mmss("42/47"), "-"),
    "R1_0.8": ("α = 0.8", 92.20, 99.77, _mmss("33/47"), "Flat"),
    "R1_0.618": ("α = 0.618", 91.52, 99.78, _mmss("26/30"), "Flat"),
    "R2": ("α = 0.8·[1,1,1], γ = [1/3,1/3,1/3], se = 0.8", 92.41, 99.76, _mmss("32/26"), "B-neck"),
    "R2_1": ("α = [0.8,1.0,0.8], γ = [1/3,1/3,1/3], se = 0.8", 91.89, 99.73, _mmss("34/38"), "B-neck"),
    "R3": ("α = [0.8,0.8,0.25], γ = [1/3,1/2,1/6], se = 0.8", 92.34, 99.75, _mmss("29/09"), "B-neck"),
}
CIFAR100 = {
    "Re-impl.": ("-", 70.58, 91.65, _mmss("42/47"), "-"),
    "R1_0.8": ("α = 0.8", 70.02, 91.49, _mmss("34/53"), "Flat"),
    "R1_0.618": ("α = 0.618", 69.41, 91.41, _mmss("26/36"), "Flat"),
    "R2": ("α = 0.8·[1,1,1], γ = [1/3,1/3,1/3], se = 0.8", 69.76, 91.66, _mmss("32/39"), "B-neck"),
    "R2_1": ("α = [0.8,1.0,0.8], γ = [1/3,1/3,1/3], se = 0.8", 70.07, 91.55, _mmss("34/26"), "B-neck"),
    "R3": ("α = [0.8,0.8,0.25], γ = [1/3,1/2,1/6], se = 0.8", 70.45, 91.69, _mmss("28/13"), "B-neck"),
}
IMAGENET = {
    "Re-impl.": ("-", 72.15, 90.42, _hhmm("180/09"), "-"),
    "R1_0.8": ("α = 0.8", 71.62, 90.23, _hhmm("144/45"), "Flat"),
    "R1_0.618": ("α = 0.618", 71.20, 90.21, _hhmm("112/04"), "Flat"),
    "R2_2": ("α = [0.8,0.8,0.5], γ = [1/3,1/3,1/3], se = 0.625", 71.29, 90.15, _hhmm("112/18"), "B-neck"),
}
# The rows the paper prints above the re-implementation (the original papers' own numbers).
REFERENCE = {"cifar10": "ResNet56 [32]: 93.03 % top-1", "imagenet": "M-Net v2 [31]: 72.00 % top-1"}


MODEL_KEYS = {"ResNet56": "resnet56", "M-Net v2": "mobilenetv2"}  # the paper's label -> our registry name


def _model_label(runs: pd.DataFrame, paper_label: str) -> str:
    """The paper's label when the runs used the paper's model, else the model they did use."""
    used = sorted(set(runs.get("config.model.name", pd.Series(dtype=str)).dropna()))
    return paper_label if used in ([], [MODEL_KEYS[paper_label]]) else "/".join(used)


def _rel(value: float, base: float) -> float:
    return (value / base - 1.0) * 100.0


def summary(runs: pd.DataFrame, published: dict) -> pd.DataFrame:
    """One row per paper row: published values and our means, stds and relative changes."""
    ours = runs.groupby("row")
    base = ours.get_group(BASELINE) if BASELINE in ours.groups else None
    rows = []
    for label, (setting, top1, top5, time_s, kind) in published.items():
        p_base = published[BASELINE]
        r = {"row": label, "setting": setting, "kind": kind, "paper_top1": top1, "paper_top5": top5,
             "paper_time_s": time_s, "paper_top1_rel": _rel(top1, p_base[1]), "paper_top5_rel": _rel(top5, p_base[2]),
             "paper_time_rel": _rel(time_s, p_base[3])}
        g = ours.get_group(label) if label in ours.groups else None
        if g is not None:
            r.update({"top1": g["test_acc"].mean(), "top1_text": mean_std(g["test_acc"]),
                      "top5": g["test_acc5"].mean(), "top5_text": mean_std(g["test_acc5"]),
                      "time_s": g["train_time_s"].mean(), "time_text": mean_std(g["train_time_s"], 1),
                      "n": len(g), "predicted_time_rel": (g["predicted_time_ratio"].mean() - 1) * 100})
            if base is not None:
                r.update({"top1_rel": _rel(r["top1"], base["test_acc"].mean()),
                          "top5_rel": _rel(r["top5"], base["test_acc5"].mean()),
                          "time_rel": _rel(r["time_s"], base["train_time_s"].mean())})
        rows.append(r)
    return pd.DataFrame(rows)


def _fmt(x, digits=2, signed=False) -> str:
    if x is None or pd.isna(x):
        return "-"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def performance_table(runs: pd.DataFrame, published: dict, model: str, dataset: str) -> Table:
    """Tables 4-9, 4-11, 4-13: accuracy and time per setting, the paper's beside ours."""
    s = summary(runs, published)
    label = _model_label(runs, model)
    frame = pd.DataFrame({
        "Method": [f"{label} {r}" for r in s["row"]],
        "Setting": s["setting"],
        "Top1 % (paper)": s["paper_top1"].map(_fmt),
        "Top1 % (ours)": s.get("top1_text", pd.Series(["-"] * len(s))).fillna("-"),
        "ΔTop1 (ours - paper)": [_fmt(o - p, signed=True) for o, p in zip(s.get("top1", [None] * len(s)), s["paper_top1"])],
        "Top5 % (paper)": s["paper_top5"].map(_fmt),
        "Top5 % (ours)": s.get("top5_text", pd.Series(["-"] * len(s))).fillna("-"),
        "ΔTop5 (ours - paper)": [_fmt(o - p, signed=True) for o, p in zip(s.get("top5", [None] * len(s)), s["paper_top5"])],
        "Time s (paper)": s["paper_time_s"].map(lambda v: _fmt(v, 0)),
        "train_time_s (ours)": s.get("time_text", pd.Series(["-"] * len(s))).fillna("-"),
    })
    notes = [f"Paper: {model} on {dataset}; the paper's time is wall time on its GPUs, ours `train_time_s` on "
             f"the machine named in the runs' `device` tag; compare the relative Time↑ of the analysis table.",
             "Published reference row not re-run: " + REFERENCE.get(dataset, "none") + "."]
    return Table(frame, notes)


def analysis_table(runs: pd.DataFrame, published: dict, model: str) -> Table:
    """Tables 4-10, 4-12, 4-14: relative changes to the re-implementation, with Corollary 2's prediction."""
    s = summary(runs, published)
    get = lambda col: s[col] if col in s else pd.Series([None] * len(s))  # noqa: E731
    label = _model_label(runs, model)
    frame = pd.DataFrame({
        "Method": [f"{label} {r}" for r in s["row"]],
        "Top1↑ % (paper)": s["paper_top1_rel"].map(lambda v: _fmt(v, signed=True)),
        "Top1↑ % (ours)": get("top1_rel").map(lambda v: _fmt(v, signed=True)),
        "Top5↑ % (paper)": s["paper_top5_rel"].map(lambda v: _fmt(v, signed=True)),
        "Top5↑ % (ours)": get("top5_rel").map(lambda v: _fmt(v, signed=True)),
        "Time↑ % (paper)": s["paper_time_rel"].map(lambda v: _fmt(v, signed=True)),
        "Time↑ % (ours)": get("time_rel").map(lambda v: _fmt(v, signed=True)),
        "Time↑ % (Corollary 2)": get("predicted_time_rel").map(lambda v: _fmt(v, signed=True)),
        "Flat/B-neck": s["kind"],
    })
    notes = ["Relative changes to the re-implementation row, (x / x_baseline - 1) x 100, as the paper's columns.",
             "Corollary 2 predicts T_B/T = Σ α_e / N for the run's own epochs; the paper's rows are for N = "
             "120 (CIFAR) or 150 (ImageNet) epochs."]
    return Table(frame, notes)


def tradeoff_figure(runs: pd.DataFrame, published: dict, top: int) -> Figure:
    """Figures 4.1-4.6: relative training-time change vs relative top-k accuracy change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(runs, published)
    s = s[s["row"] != BASELINE]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    colors = {"Flat": "tab:red", "B-neck": "tab:green"}
    key = f"top{top}_rel"
    for _, r in s.iterrows():
        c = colors.get(r["kind"], "gray")
        ax.scatter(r["paper_time_rel"], r[f"paper_{key}"], facecolors="none", edgecolors=c, s=60, marker="o")
        if key in r and not pd.isna(r.get(key)):
            ax.scatter(r["time_rel"], r[key], color=c, s=60, marker="s")
            ax.annotate(r["row"], (r["time_rel"], r[key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.annotate(r["row"], (r["paper_time_rel"], r[f"paper_{key}"]), fontsize=7, color="gray",
                    xytext=(3, -9), textcoords="offset points")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("relative training time change, Time↑ %")
    ax.set_ylabel(f"relative top-{top} accuracy change, Top{top}↑ %")
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], marker="o", ls="", mfc="none", mec="k", label="paper"),
                       Line2D([], [], marker="s", ls="", color="k", label="ours (mean over seeds)"),
                       Line2D([], [], marker="s", ls="", color="tab:red", label="flat"),
                       Line2D([], [], marker="s", ls="", color="tab:green", label="B-neck (three-stage)")],
              fontsize=7, loc="best")
    return Figure(fig, ["Hollow circles: the paper's rows; filled squares: ours. Red: flat reduced sampling; "
                        "green: three-stage bottleneck sampling (the paper's colours)."])


def make_table_4_9(runs):
    return performance_table(runs, CIFAR10, "ResNet56", "cifar10")


def make_table_4_10(runs):
    return analysis_table(runs, CIFAR10, "ResNet56")


def make_figure_4_1(runs):
    return tradeoff_figure(runs, CIFAR10, 1)


def make_figure_4_2(runs):
    return tradeoff_figure(runs, CIFAR10, 5)


def make_table_4_11(runs):
    return performance_table(runs, CIFAR100, "ResNet56", "cifar100")


def make_table_4_12(runs):
    return analysis_table(runs, CIFAR100, "ResNet56")


def make_figure_4_3(runs):
    return tradeoff_figure(runs, CIFAR100, 1)


def make_figure_4_4(runs):
    return tradeoff_figure(runs, CIFAR100, 5)


def make_table_4_13(runs):
    return performance_table(runs, IMAGENET, "M-Net v2", "imagenet")


def make_table_4_14(runs):
    return analysis_table(runs, IMAGENET, "M-Net v2")


def make_figure_4_5(runs):
    return tradeoff_figure(runs, IMAGENET, 1)


def make_figure_4_6(runs):
    return tradeoff_figure(runs, IMAGENET, 5)
