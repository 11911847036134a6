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
The analysis tables' "(paper)" columns print the values Tables 4-10/4-12/4-14 print (published
``top1_rel``, ``top5_rel``, ``time_rel``), not a recomputation from Tables 4-9/4-11/4-13; where the
recomputation rounds otherwise (Table 4-14 R1_0.8 Top1↑: printed -0.74, (71.62 / 72.15 - 1) x 100
= -0.7346) the table's notes say so.
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


RELATIVE = (("top1", "Top1↑"), ("top5", "Top5↑"), ("time", "Time↑"))  # published key stem, column


def printed_relatives(key: str) -> dict:
    """The relative changes (%) the analysis table of ``key`` (4-9 -> 4-10, 4-11 -> 4-12, 4-13 -> 4-14)
    prints: row label -> {"top1": ..., "top5": ..., "time": ...}, None where it prints "-"."""
    rows = published_table("jiang", key)["rows"]
    return {r["row"]: {stem: r.get(f"{stem}_rel") for stem, _ in RELATIVE} for r in rows}


def analysis_table_number(key: str) -> str:
    """4-9 -> 4-10: each performance table's analysis table follows it."""
    chapter, number = key.split("-")
    return f"{chapter}-{int(number) + 1}"


def recomputation_mismatches(key: str) -> list[str]:
    """Each printed relative change that the recomputation from the performance table's printed
    values does not reproduce at the printed 2 decimals, as 'R1_0.8 Top1↑: printed -0.74, ...'."""
    _, rows = published_rows(key)
    base = rows[BASELINE]
    found = []
    for label, printed in printed_relatives(key).items():
        if label == BASELINE:
            continue
        recomputed = {"top1": _rel(rows[label][1], base[1]), "top5": _rel(rows[label][2], base[2]),
                      "time": _rel(rows[label][3], base[3])}
        for stem, column in RELATIVE:
            if printed[stem] is not None and round(recomputed[stem], 2) != round(printed[stem], 2):
                found.append(f"{label} {column}: printed {printed[stem]:+.2f}, recomputed {recomputed[stem]:+.4f}")
    return found


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
        # paper_*_rel: recomputed from the printed values (the analysis tables print printed_relatives)
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
    schedule_note = _schedule_note(runs)
    if schedule_note:
        notes.append(schedule_note)
    return Table(frame, notes)


def per_epoch_cosine_gap(epochs: int, batches: int) -> tuple[float, float, float]:
    """The epoch-stepped cosine against the per-iteration one over ``epochs`` of ``batches`` steps:
    (largest lr gap, mean lr gap, the last epoch's lr) as shares of the base lr."""
    from harness.schedules import cosine_factor

    gaps = [cosine_factor(e, epochs) - cosine_factor(e + i / batches, epochs) for e in range(epochs)
            for i in range(batches)]
    return max(gaps), sum(gaps) / len(gaps), cosine_factor(epochs - 1, epochs)


def _schedule_note(runs: pd.DataFrame) -> str | None:
    """What the runs' cosine schedule did with Sec. 2.2's "The cosine decay method gradually drops the
    learning rate based on the iteration number and epoch number", with the per-epoch gap at their length."""
    schedules = set(runs.get("config.train.schedule", pd.Series(dtype=str)).dropna())
    if not schedules & {"cosine", "cosine_iter"} or "batches" not in runs:
        return None
    epochs, batches = int(pd.to_numeric(runs["config.train.epochs"]).max()), int(runs["batches"].max())
    largest, mean, last = per_epoch_cosine_gap(epochs, batches)
    gap = (f"over these {epochs} epochs of up to {batches} steps the epoch-stepped lr sits up to {largest * 100:.2f} % "
           f"of the base lr (mean {mean * 100:.2f} %) above the per-iteration one, and its last epoch trains at "
           f"{last:.2g} × lr throughout where the per-iteration lr decays from there toward 0")
    if schedules == {"cosine_iter"}:
        return ("Learning rate: cosine decay set before every iteration at its fractional epoch (train.schedule "
                "cosine_iter, Sec. 2.2: \"based on the iteration number\"), so a reduced epoch of fewer batches "
                f"spans a whole epoch of the curve; {gap}. The logged `lr` is each epoch's last step's (its first "
                "step's in runs before issue 23).")
    return ("Learning rate: cosine decay stepped once per epoch (train.schedule cosine), not per iteration as Sec. "
            f"2.2 says (\"based on the iteration number\"): {gap}.")


def make_analysis_table(runs: pd.DataFrame, published: str) -> Table:
    """Tables 4-10, 4-12, 4-14 (of ``published`` 4-9, 4-11, 4-13): relative changes to the
    re-implementation, with Corollary 2's prediction."""
    block, rows = published_rows(published)
    s = summary(runs, rows)
    get = lambda col: s[col] if col in s else pd.Series([None] * len(s))  # noqa: E731
    label = _model_label(runs, block["model"], block["model_key"])
    printed = printed_relatives(published)
    paper = {stem: [_fmt(printed[r][stem], signed=True) for r in s["row"]] for stem, _ in RELATIVE}
    frame = pd.DataFrame({
        "Method": [f"{label} {r}" for r in s["row"]],
        "Top1↑ % (paper)": paper["top1"],
        "Top1↑ % (ours)": get("top1_rel").map(lambda v: _fmt(v, signed=True)),
        "Top5↑ % (paper)": paper["top5"],
        "Top5↑ % (ours)": get("top5_rel").map(lambda v: _fmt(v, signed=True)),
        "Time↑ % (paper)": paper["time"],
        "Time↑ % (ours)": get("time_rel").map(lambda v: _fmt(v, signed=True)),
        "Time↑ % (Corollary 2)": get("predicted_time_rel").map(lambda v: _fmt(v, signed=True)),
        "Flat/B-neck": s["kind"],
    })
    mismatches = recomputation_mismatches(published)
    notes = ["Relative changes to the re-implementation row, (x / x_baseline - 1) x 100, as the paper's columns.",
             f"(paper): the values Table {analysis_table_number(published)} prints. Recomputed from Table "
             f"{published}'s printed accuracies and times they round to the same 2 decimals"
             + (", except " + "; ".join(mismatches) + "." if mismatches else " in every cell."),
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
    printed = printed_relatives(published)
    for stem, _ in RELATIVE:  # the paper's points where the analysis table prints them
        s[f"paper_{stem}_rel"] = [p if (p := printed[r][stem]) is not None else v
                                  for r, v in zip(s["row"], s[f"paper_{stem}_rel"])]
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
