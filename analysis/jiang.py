"""Jiang, *Faster Convolutional Neural Networks Training* (PhD dissertation), Sec. 4.2: data reduction.

Tables 4-9 ... 4-14 and Figures 4.1 ... 4.6 from the runs of the sweeps ``jiang_table_4_9``
(CIFAR-10), ``jiang_table_4_11`` (CIFAR-100) and ``jiang_table_4_13`` (ImageNet), by three builders
whose ``published`` option names the table (4-9, 4-11, 4-13 of analysis/published/jiang.yaml):
``make_performance_table`` (4-9, 4-11, 4-13), ``make_analysis_table`` (4-10, 4-12, 4-14) and
``make_tradeoff_figure`` (``top``: 1 or 5; Figures 4.1 ... 4.6).

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

from .published import table as published_table
from .report import Figure, Table, mean_std

BASELINE = "Re-impl."


def _seconds(text: str, time_format: str) -> float:
    """'42/47' as minutes/seconds or hours/minutes (the tables' "Time" column) -> seconds."""
    a, b = text.split("/")
    return int(a) * 60 + int(b) if time_format == "min/s" else int(a) * 3600 + int(b) * 60


def published_rows(key: str) -> tuple[dict, dict]:
    """Table ``key`` (4-9, 4-11, 4-13) of analysis/published/jiang.yaml: (its block, row label ->
    (setting as printed, top-1 %, top-5 %, time in seconds, Flat/B-neck))."""
    block = published_table("jiang", key)
    rows = {r["row"]: (r["setting"], r["top1"], r["top5"], _seconds(r["time"], block["time_format"]), r["kind"])
            for r in block["rows"]}
    return block, rows


def _model_label(runs: pd.DataFrame, paper_label: str, model_key: str) -> str:
    """The paper's label when the runs used the paper's model, else the model they did use."""
    used = sorted(set(runs.get("config.model.name", pd.Series(dtype=str)).dropna()))
    return paper_label if used in ([], [model_key]) else "/".join(used)


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


def make_performance_table(runs: pd.DataFrame, published: str) -> Table:
    """Tables 4-9, 4-11, 4-13 (``published``: which): accuracy and time per setting, the paper's beside ours."""
    block, rows = published_rows(published)
    model, dataset = block["model"], block["dataset"]
    s = summary(runs, rows)
    label = _model_label(runs, model, block["model_key"])
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
             "Published reference row not re-run: " + block.get("reference", "none") + "."]
    return Table(frame, notes)


def make_analysis_table(runs: pd.DataFrame, published: str) -> Table:
    """Tables 4-10, 4-12, 4-14 (of ``published`` 4-9, 4-11, 4-13): relative changes to the
    re-implementation, with Corollary 2's prediction."""
    block, rows = published_rows(published)
    s = summary(runs, rows)
    get = lambda col: s[col] if col in s else pd.Series([None] * len(s))  # noqa: E731
    label = _model_label(runs, block["model"], block["model_key"])
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


def make_tradeoff_figure(runs: pd.DataFrame, published: str, top: int) -> Figure:
    """Figures 4.1-4.6: relative training-time change vs relative top-``top`` accuracy change, for the
    rows of table ``published`` (4-9, 4-11, 4-13)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(runs, published_rows(published)[1])
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
