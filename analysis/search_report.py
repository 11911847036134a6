"""What a search sweep found beyond its front: which search did better, and which technique wins where.

  make_hypervolume_figure(runs)   hypervolume against trial_seconds, one line per search launch (its
                                  parent run's metrics, logged after every finished trial): searches of
                                  one space compared at equal compute
  make_win_map / make_win_map_figure(runs, cost="macs", accuracy="val_acc", buckets=5)
                                  per log-spaced bucket of the cost, the technique family with the best
                                  mean accuracy, with its 95 % CI, as a table and a figure

A technique family is the paper, or the papers joined by "+", that a configuration's choices tag
(``families``, the one place the mapping lives).
"""
from __future__ import annotations

import json
import math
from typing import Optional

import numpy as np
import pandas as pd

from harness import tracking
from harness.runs import all_runs

from .pareto import mean_ci, summarize
from .report import Figure, Table

# Which paper each choice of the cross-paper space comes from (sweeps/cross_paper_pareto.yaml's comments):
# config column -> value -> paper. A value not listed (resnet20, dense, none, full) is the shared baseline
# and tags no paper; a configuration tagging none is "baseline".
PAPER_OF = {
    "config.model.name": {"crnet_cb": "Jiang", "crnet_cib": "Jiang", "mobilenetv2": "Pöllot", "ensemble": "Pöllot",
                          "calli_cifar": "Çallı"},
    "config.model.options.conv": {"maxmin": "Jin", "binary_approx": "Jin", "separable": "Çallı",
                                  "winograd_relu": "Zheng"},
    "config.method.name": {"prune": "Zheng", "dbs": "Zheng"},
    "config.sampler.name": {"flat": "Jiang", "three_stage": "Jiang"},
}
BASELINE = "baseline"


def families(runs: pd.DataFrame) -> pd.Series:
    """Each run's technique family: its choices' papers, sorted and joined by "+", or "baseline"."""
    def family(row) -> str:
        papers = {PAPER_OF[c].get(str(row[c])) for c in PAPER_OF if c in row.index}
        return "+".join(sorted(p for p in papers if p)) or BASELINE

    return runs.apply(family, axis=1) if len(runs) else pd.Series(dtype=str)


# ---- the hypervolume curves ----

def _parents(runs: pd.DataFrame) -> list:
    uri, sweep = runs.attrs.get("tracking_uri"), runs.attrs.get("sweep")
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name(sweep) if sweep else None
    if experiment is None:
        return []
    profiles = set(runs["profile"].dropna()) if "profile" in runs else set()
    parents = all_runs(client, experiment.experiment_id, "tags.search_parent = 'true'")  # every page of them
    return [p for p in parents if not profiles or p.data.tags.get("profile") in profiles]


def search_progress(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (search launch, finished trial): parent run, its name, algorithm, scheduler, step,
    trial_seconds and hypervolume (NaN where the reference point was incomplete), reference point."""
    client = tracking.client(runs.attrs.get("tracking_uri"))
    rows = []
    for parent in _parents(runs):
        run_id, params = parent.info.run_id, parent.data.params
        seconds = {m.step: m.value for m in client.get_metric_history(run_id, "trial_seconds")}
        volume = {m.step: m.value for m in client.get_metric_history(run_id, "hypervolume")}
        scheduler = json.loads(params.get("search.scheduler", "{}") or "{}").get("name", "none")
        for step in sorted(seconds):
            rows.append({"parent_run_id": run_id, "launch": parent.info.run_name,
                         "algorithm": params.get("search.algorithm", ""), "seed": params.get("search.seed", ""),
                         "scheduler": scheduler, "step": step, "trial_seconds": seconds[step],
                         "hypervolume": volume.get(step, math.nan),
                         "reference_point": params.get("search.reference_point", ""),
                         "reference_source": params.get("search.reference_source", "")})
    return pd.DataFrame(rows, columns=["parent_run_id", "launch", "algorithm", "seed", "scheduler", "step",
                                       "trial_seconds", "hypervolume", "reference_point", "reference_source"])


def make_hypervolume_figure(runs: pd.DataFrame) -> Figure:
    """Hypervolume against the compute spent (summed trial wall seconds), one line per search launch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    progress = search_progress(runs)
    fig, ax = plt.subplots(figsize=(6, 4))
    launches = list(dict.fromkeys(progress["parent_run_id"]))
    for run_id in launches:
        line = progress[progress["parent_run_id"] == run_id].dropna(subset=["hypervolume"])
        if line.empty:
            continue
        first = line.iloc[0]
        ax.step(line["trial_seconds"], line["hypervolume"], where="post", marker="o", ms=3,
                label=f"{first['algorithm']} seed {first['seed']}, {first['scheduler']} ({run_id[:8]})")
    ax.set_xlabel("trial_seconds (compute spent: trials' wall seconds summed)")
    objectives = runs.attrs.get("objectives") or {}
    ax.set_ylabel("hypervolume" + (f" ({' x '.join(objectives)})" if objectives else ""))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    notes = [f"{len(launches)} search launches (parent runs) of this profile; each point is one finished trial "
             "(step = trials finished), its hypervolume over every finished trial's objectives as their last "
             "epoch left them. Higher at equal trial_seconds is the better search."]
    references = progress.drop_duplicates("parent_run_id")[["parent_run_id", "reference_point", "reference_source"]]
    for ref, group in references.groupby("reference_point", sort=False):
        sources = json.loads(group["reference_source"].iloc[0] or "{}")
        said = ", ".join(f"{k} = {v} ({sources.get(k, '')})" for k, v in json.loads(ref or "{}").items())
        notes.append(f"Reference point of {len(group)} launch(es): {said or 'not recorded (launched before issue 25)'}.")
    if references["reference_point"].nunique() > 1:
        notes.append("The launches used different reference points: their hypervolumes are not comparable.")
    if progress["hypervolume"].isna().all() and len(progress):
        notes.append("No hypervolume logged: a minimized objective has no reference value (declare "
                      "search.reference_point); trial_seconds is recorded all the same.")
    return Figure(fig, notes)


# ---- the win map ----

def win_map(runs: pd.DataFrame, cost: str = "macs", accuracy: str = "val_acc", buckets: int = 5) -> pd.DataFrame:
    """Per log-spaced bucket of ``cost`` (over the configurations' mean costs): the family whose best
    configuration has the highest mean ``accuracy``, with that configuration's mean ± 95 % CI, and the runner-up family."""
    if buckets < 1:
        raise ValueError(f"buckets {buckets!r}: an integer >= 1")
    tagged = runs.assign(family=families(runs))
    summary = summarize(tagged, {accuracy: "max", cost: "min"})
    family_of = tagged.set_index("run_id")["family"] if "run_id" in tagged else None
    summary["family"] = [family_of[ids[0]] if family_of is not None and ids else "" for ids in summary["run_ids"]]
    summary = summary.dropna(subset=[accuracy, cost])
    summary = summary[summary[cost] > 0]
    if summary.empty:
        return pd.DataFrame()
    low, high = summary[cost].min(), summary[cost].max()
    edges = np.geomspace(low, high, buckets + 1) if high > low else np.array([low, high])
    position = np.clip(np.searchsorted(edges, summary[cost], side="right") - 1, 0, len(edges) - 2)
    by_id = tagged.set_index("run_id") if "run_id" in tagged else None
    rows = []
    for b in range(len(edges) - 1):
        inside = summary[position == b]
        row = {"bucket": b, "low": edges[b], "high": edges[b + 1], "configurations": len(inside)}
        best = inside.sort_values(accuracy, ascending=False, kind="stable").drop_duplicates("family")
        for rank, prefix in ((0, "winner"), (1, "runner_up")):
            if len(best) > rank:
                r = best.iloc[rank]
                values = by_id.loc[r["run_ids"], accuracy] if by_id is not None else pd.Series([r[accuracy]])
                row.update({prefix: r["family"], f"{prefix}_mean": r[accuracy], f"{prefix}_ci": r[f"{accuracy}_ci"],
                            f"{prefix}_n": r["n"], f"{prefix}_text": mean_ci(values)})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs.update(cost=cost, accuracy=accuracy, families=sorted(set(summary["family"])), edges=list(edges))
    return frame


def _bucket_text(low: float, high: float) -> str:
    return f"{low:.3g} - {high:.3g}"


def make_win_map(runs: pd.DataFrame, cost: str = "macs", accuracy: str = "val_acc", buckets: int = 5) -> Table:
    """The win map as a table: one row per cost bucket."""
    wins = win_map(runs, cost, accuracy, buckets)
    rows = []
    for _, w in wins.iterrows():
        rows.append({f"{cost} bucket": _bucket_text(w["low"], w["high"]), "configurations": w["configurations"],
                     "best family": w.get("winner") if isinstance(w.get("winner"), str) else "-",
                     f"its best {accuracy} (mean ± CI)": w.get("winner_text", "-") if isinstance(w.get("winner"), str) else "-",
                     "runner-up family": w.get("runner_up") if isinstance(w.get("runner_up"), str) else "-",
                     f"runner-up {accuracy}": w.get("runner_up_text") if isinstance(w.get("runner_up"), str) else "-"})
    return Table(pd.DataFrame(rows), _win_notes(wins, cost, accuracy))


def _win_notes(wins: pd.DataFrame, cost: str, accuracy: str) -> list:
    notes = [f"Buckets: {len(wins)} log-spaced intervals of {cost} between the cheapest and the dearest configuration "
             "(a configuration: runs differing only in train.seed, its mean over them); in each, the technique family "
             f"whose best configuration has the highest mean {accuracy}, shown as mean ± 95 % t-interval (n seeds), "
             "and the runner-up family's best.",
             "Family: the papers a configuration's choices tag (harness_analysis.search_report.PAPER_OF: model, conv "
             f"kind, method, sampler), joined by '+'; '{BASELINE}' tags none. Families seen: "
             + ", ".join(wins.attrs.get("families", [])) + "."]
    overlap = [int(w["bucket"]) for _, w in wins.iterrows()
               if isinstance(w.get("runner_up"), str) and not math.isnan(w.get("winner_ci", math.nan))
               and not math.isnan(w.get("runner_up_ci", math.nan))
               and w["winner_mean"] - w["winner_ci"] <= w["runner_up_mean"] + w["runner_up_ci"]]
    if overlap:
        notes.append(f"In bucket(s) {', '.join(map(str, overlap))} the winner's and the runner-up's intervals overlap: "
                     "the seeds do not order them.")
    if not wins.empty and (wins[[c for c in ("winner_n",) if c in wins]].fillna(1) <= 1).all().all():
        notes.append("Every winner has a single seed: no CI; run seeds as an axis to order the families.")
    return notes


def make_win_map_figure(runs: pd.DataFrame, cost: str = "macs", accuracy: str = "val_acc", buckets: int = 5) -> Figure:
    """The win map drawn: each bucket a band on a log cost axis, its winner's best accuracy with its CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    wins = win_map(runs, cost, accuracy, buckets)
    names = wins.attrs.get("families", [])
    palette = plt.get_cmap("tab10")
    color = {f: palette(i % 10) for i, f in enumerate(names)}
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, w in wins.iterrows():
        if not isinstance(w.get("winner"), str):
            continue
        ax.axvspan(w["low"], w["high"], color=color[w["winner"]], alpha=0.15)
        middle = math.sqrt(w["low"] * w["high"])
        ci = 0 if math.isnan(w["winner_ci"]) else w["winner_ci"]
        ax.errorbar([middle], [w["winner_mean"]], yerr=[ci], fmt="o", color=color[w["winner"]], capsize=4)
        ax.annotate(w["winner"], (middle, w["winner_mean"]), fontsize=7, xytext=(0, 6), textcoords="offset points",
                    ha="center")
    if len(wins):
        ax.set_xscale("log")
    ax.set_xlabel(f"{cost} (log-spaced buckets)")
    ax.set_ylabel(f"best mean {accuracy} in the bucket (± 95 % CI)")
    ax.margins(y=0.15)
    ax.legend(handles=[Patch(color=color[f], alpha=0.4, label=f) for f in names], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.02, 1))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return Figure(fig, _win_notes(wins, cost, accuracy))
