"""Pareto fronts of a multi-objective search: a table of the non-dominated configurations and a figure.

``pareto_front(frame, objectives)`` keeps the rows no other row dominates, as Optuna's
``Study.best_trials``; ``summarize(runs, objectives)`` collapses the runs of one configuration (runs
that differ only in ``train.seed``) into one row of means, sample stds and 95 % t-intervals;
``p_dominated`` bootstraps over seeds how likely another configuration dominates one; ``make_pareto_table`` and
``make_pareto_figure`` are the report functions a multi-objective sweep names. ``objectives`` maps a
metric column to "max" or "min" (e.g. ``{"val_acc": "max", "macs": "min"}``); a report called with
none reads them from ``runs.attrs["objectives"]``, which the caller sets from the sweep's search block.
Published points (a paper's numbers) are drawn and listed beside ours and never take part in the front.
"""
from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np
import pandas as pd

from harness.pareto import check_objectives as _check
from harness.pareto import pareto_front
from harness.runs import config_text

from .published_points import published_points
from .report import Figure, Table, mean_std

SEED_KEY = "config.train.seed"
# a reader wants to see which technique (model family, conv kind, method, sampler) sits where on the front
DEFAULT_COLOR_KEYS = ("model.name", "model.options.conv", "method.name", "sampler.name")
LOG_SUFFIXES = ("macs", "flops", "params")
MAX_LABELLED = 12  # more published points than this are drawn by paper, their labels left to the table
PUBLISHED_MARKERS = ("*", "P", "X", "D", "h")


def _is_true(runs: pd.DataFrame, tag: str) -> pd.Series:
    if tag not in runs.columns:
        return pd.Series(False, index=runs.index)
    return runs[tag].astype("string").str.lower().eq("true").fillna(False).astype(bool)


def _seed(value):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return value


def _sorted_seeds(values) -> list:
    seeds = [_seed(v) for v in values if not pd.isna(v)]
    return sorted(seeds, key=lambda s: (isinstance(s, str), s))


def summarize(runs: pd.DataFrame, objectives: dict) -> pd.DataFrame:
    """One row per configuration: the objectives' means and sample stds over its runs (its seeds).

    Columns: the config keys that vary over the summarized runs (without the ``config.`` prefix,
    "" where a run lacks the key), ``<objective>``, ``<objective>_std`` and ``<objective>_ci`` (the
    half-width of the 95 % t-interval on the mean, ``ci95``) for each objective, ``n``,
    ``seeds``, ``run_ids`` and ``stopped_early`` (how many of its runs an early-stopping scheduler
    ended). Runs tagged ``infeasible`` never trained; they are left out and counted in
    ``attrs["infeasible"]``; ``attrs["runs"]`` is the number of runs summarized and
    ``attrs["config_keys"]`` the varying keys.
    """
    objectives = _check(runs, objectives)
    infeasible = _is_true(runs, "infeasible")
    feasible = runs[~infeasible]
    keys = [c for c in feasible.columns if str(c).startswith("config.") and c != SEED_KEY]
    settings = feasible[keys].map(config_text) if keys else pd.DataFrame(index=feasible.index)
    varying = [k for k in keys if settings[k].nunique() > 1]
    seeds = feasible[SEED_KEY] if SEED_KEY in feasible.columns else feasible.get("seed", pd.Series(pd.NA, index=feasible.index))
    stopped = _is_true(feasible, "stopped_early")
    metrics = {name: pd.to_numeric(feasible[name], errors="coerce") for name in objectives}

    # without any config column every run is the same configuration
    group_of = settings.groupby(keys, sort=False).ngroup() if keys else pd.Series(0, index=feasible.index)
    rows, member_values = [], []
    for _, members in feasible.groupby(group_of, sort=False).groups.items():
        member_values.append(np.column_stack([metrics[name][members].to_numpy(dtype=float) for name in objectives]))
        first = members[0]
        row = {k[len("config."):]: settings.at[first, k] for k in varying}
        for name in objectives:
            row[name] = metrics[name][members].mean()
            row[f"{name}_std"] = metrics[name][members].std(ddof=1)
            row[f"{name}_ci"] = ci95(metrics[name][members])
        row.update(n=len(members), seeds=_sorted_seeds(seeds[members]),
                   run_ids=list(feasible.loc[members, "run_id"]) if "run_id" in feasible else [],
                   stopped_early=int(stopped[members].sum()))
        rows.append(row)
    columns = ([k[len("config."):] for k in varying]
               + [c for name in objectives for c in (name, f"{name}_std", f"{name}_ci")]
               + ["n", "seeds", "run_ids", "stopped_early"])
    summary = pd.DataFrame(rows, columns=columns)
    summary.attrs.update(infeasible=int(infeasible.sum()), runs=len(feasible),
                         config_keys=[k[len("config."):] for k in varying])
    # each row's runs x objectives, for the bootstrap over seeds (p_dominated)
    summary.attrs["run_values"] = member_values
    return summary


def ci95(values) -> float:
    """Half-width of the 95 % Student-t confidence interval on the mean: t(0.975, n-1) x s / sqrt(n)
    with s the sample std; NaN for fewer than two values (no spread to estimate)."""
    from scipy import stats

    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if len(v) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def mean_ci(values, digits: int = 2) -> str:
    """'92.41 ± 0.30 (n=3)': the mean ± the 95 % t-interval's half-width (``ci95``); one value has none."""
    return mean_std(values, digits, spread=ci95)


BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # a fixed generator: the same runs give the same p_dominated in every report


def p_dominated(summary: pd.DataFrame, objectives: dict, rows=None, resamples: int = BOOTSTRAP_RESAMPLES,
                seed: int = BOOTSTRAP_SEED) -> pd.Series:
    """For each of ``rows`` (labels of ``summary``, default all): the fraction of bootstrap resamples in which
    another configuration dominates it. A resample draws, for every configuration, as many of its runs
    as it has, with replacement (a run's objectives stay together), and compares the resampled means.
    A configuration with one run is the same in every resample. Written here: no library in the lock
    bootstraps a dominance relation (scipy.stats.bootstrap resamples one statistic of one sample)."""
    rows = list(summary.index if rows is None else rows)
    values = summary.attrs["run_values"]  # per row: runs x objectives, in summarize's objective order
    sign = np.array([-1.0 if objectives[name] == "max" else 1.0 for name in objectives])
    rng = np.random.default_rng(seed)
    means = np.empty((resamples, len(values), len(objectives)))
    for i, v in enumerate(values):
        draws = rng.integers(0, len(v), size=(resamples, len(v)))
        means[:, i, :] = v[draws].mean(axis=1) * sign  # minimized: smaller is better in every column
    positions = [summary.index.get_loc(r) for r in rows]
    out = {}
    for label, i in zip(rows, positions):
        mine = means[:, i:i + 1, :]
        no_worse = (means <= mine).all(axis=2)
        better = (means < mine).any(axis=2)
        beaten = no_worse & better  # NaN compares False: a run without the objective never dominates
        out[label] = float(beaten.any(axis=1).mean())
    return pd.Series(out, dtype=float)


def _objectives(runs: pd.DataFrame, objectives: Optional[dict]) -> dict:
    objectives = objectives if objectives is not None else runs.attrs.get("objectives")
    if not objectives:
        raise ValueError("a pareto report needs objectives (metric -> 'max' or 'min'): pass objectives= "
                         "or set runs.attrs['objectives'] from the sweep's search block")
    return _check(runs, objectives)


def _digits(values) -> int:
    # counts (macs, params) read as integers; accuracies and seconds with two decimals
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").abs()
    return 0 if v.notna().any() and v.max() >= 1000 else 2


def _check_published(published, objectives: dict, runs: Optional[pd.DataFrame] = None) -> list:
    """The points as given, or with ``published="papers"`` every published pair that fits ``objectives``,
    each labelled "not our dataset" where the runs measured another one; ``{"papers": [...], "tables": [...],
    "datasets": [...]}`` keeps those of some papers, tables (harness_analysis.published_points) or datasets."""
    if published == "papers" or isinstance(published, dict):
        where = {} if published == "papers" else published
        unknown = set(where) - {"papers", "tables", "datasets"}
        if unknown:
            raise ValueError(f"published {published!r}: filter by papers, tables or datasets, not {sorted(unknown)}")
        ours = set(runs["dataset"].dropna()) if runs is not None and "dataset" in runs else set()
        return [{**p, "label": p["label"] + (f" [not our dataset: ours {', '.join(sorted(ours))}]"
                                             if ours and p["dataset"] not in ours else "")}
                for p in published_points(objectives, **{k: tuple(v) for k, v in where.items()})]
    if isinstance(published, str):
        raise ValueError(f"published {published!r}: a list of points, 'papers' or a mapping of filters")
    published = list(published or [])
    for point in published:
        if "label" not in point:
            raise ValueError(f"published point {point!r} has no 'label'")
    return published


def _front_order(front: pd.DataFrame, objectives: dict) -> pd.DataFrame:
    names = list(objectives)
    return front.sort_values(names, ascending=[objectives[n] == "min" for n in names], kind="stable")


def make_pareto_table(runs: pd.DataFrame, objectives: Optional[dict] = None,
                      published: Optional[list] = None) -> Table:
    """The non-dominated configurations (by their means over seeds), best first in the first objective,
    as mean ± 95 % CI (n), with ``p_dominated``: the bootstrap probability that another configuration
    dominates it.

    ``published`` is a list of ``{"label", "source", <objective>: value, ...}`` or "papers" (every
    published pair that fits the objectives, ``published_points``); those rows are appended after ours
    with their ``source`` (ours: "ours") and do not change the front.
    """
    objectives = _objectives(runs, objectives)
    published = _check_published(published, objectives, runs)
    summary = summarize(runs, objectives)
    front = _front_order(pareto_front(summary, objectives), objectives)
    chance = p_dominated(summary, objectives, front.index)
    keys = summary.attrs["config_keys"]
    by_id = runs.set_index("run_id") if "run_id" in runs.columns else None
    # test accuracy is shown beside a validation-selected front, never used to choose it
    reported = ["test_acc"] if "val_acc" in objectives and "test_acc" not in objectives and "test_acc" in runs else []
    shown = list(objectives) + reported
    digits = {name: _digits(list(pd.to_numeric(runs[name], errors="coerce"))
                            + [p.get(name) for p in published]) for name in shown}

    def values(ids: list, name: str) -> pd.Series:
        return by_id.loc[ids, name] if by_id is not None else pd.Series(dtype=float)

    # a search names each sampled configuration (its trials' row tag: sample007): show it first
    sample_of = (runs.set_index("run_id")["row"] if {"run_id", "row"} <= set(runs.columns)
                 and runs["row"].astype(str).str.startswith("sample").all() else None)
    rows = []
    for label, r in front.iterrows():
        row = {"sample": sample_of[r["run_ids"][0]]} if sample_of is not None else {}
        row.update({k: r[k] for k in keys})
        row.update({name: mean_ci(values(r["run_ids"], name), digits[name]) for name in shown})
        row.update(p_dominated=f"{chance[label]:.3f}", stopped_early=r["stopped_early"],
                   run_ids=", ".join(i[:8] for i in r["run_ids"]))
        rows.append(row)
    columns = ((["sample"] if sample_of is not None else []) + keys + shown
               + ["p_dominated", "stopped_early", "run_ids"])
    if published:
        for row in rows:
            row.update(label="", source="ours")
        for point in published:
            row = {k: "" for k in (["sample"] if sample_of is not None else []) + keys}
            row.update({name: "-" if pd.isna(point.get(name, np.nan)) else f"{point[name]:.{digits[name]}f}"
                        for name in shown})
            row.update(p_dominated="", stopped_early="", run_ids="", label=point["label"],
                       source=point.get("source", "published"))
            rows.append(row)
        columns = ["label"] + columns + ["source"]
    frame = pd.DataFrame(rows, columns=columns)
    return Table(frame, _notes(objectives, summary, front, published))


def _notes(objectives: dict, summary: pd.DataFrame, front: pd.DataFrame, published: list) -> list:
    directions = ", ".join(f"{n} ({d})" for n, d in objectives.items())
    notes = [f"Pareto front over {directions}: a configuration is on it when no other is at least as good "
             "in every objective and strictly better in one (Optuna's best_trials), compared on means over seeds.",
             f"{len(summary)} configurations from {summary.attrs['runs']} runs considered (runs differing only in "
             f"train.seed are one configuration); {len(front)} on the front.",
             f"{summary.attrs['infeasible']} infeasible samples excluded (tagged infeasible: never trained).",
             f"{int(summary['stopped_early'].sum())} trials stopped early by the early-stopping scheduler "
             f"({int(front['stopped_early'].sum())} in front configurations); their objectives are from the "
             "last epoch they ran."]
    if "val_acc" in objectives and "test_acc" not in objectives:
        notes.append("Selection is on validation metrics only (val_acc); any test_acc shown is reported, "
                     "never used to choose the front.")
    if "test_acc" in objectives:
        notes.append("test_acc is an objective: this front is chosen on the test set, so its accuracies are "
                     "optimistic; select on val_acc and report test_acc.")
    notes += uncertainty_notes(summary, front)
    if published:
        notes.append(f"{len(published)} published points (label and source columns: paper, table, row, dataset) "
                     "are shown beside ours: measured elsewhere, by their authors, on their protocol and hardware, "
                     "and mapped onto our objectives as the source column says; they take no part in the front.")
    return notes


def uncertainty_notes(summary: pd.DataFrame, front: pd.DataFrame) -> list:
    """How to read mean ± CI and p_dominated, and what a front over single seeds lacks."""
    notes = ["mean ± CI (n): the mean over a configuration's n runs (its seeds) ± the half-width of the 95 % "
             "Student-t confidence interval, t(0.975, n-1) x s / sqrt(n) with s the sample std; no ± where n = 1.",
             f"p_dominated: in {BOOTSTRAP_RESAMPLES} bootstrap resamples over seeds (each configuration's runs drawn "
             f"with replacement, generator seed {BOOTSTRAP_SEED}), the fraction in which another configuration's "
             "resampled means dominate this one's; above 0.5 its place on the front is more likely than not "
             "an accident of the seeds."]
    single = int((summary["n"] == 1).sum())
    if len(summary) and single == len(summary):
        notes.append("Every configuration has a single seed: this front is over single samples, with no CI, and "
                     "p_dominated is 0 for every member (one run resamples to itself); run seeds as an axis "
                     "(train.seed) to see the spread.")
    elif single:
        notes.append(f"{single} of {len(summary)} configurations have a single seed "
                     f"({int((front['n'] == 1).sum())} on the front): no CI, and the bootstrap holds them fixed.")
    return notes


def _color_key(summary: pd.DataFrame, color_by: Optional[str]) -> Optional[str]:
    varying = summary.attrs["config_keys"]
    if color_by is not None:
        if color_by not in varying:
            raise ValueError(f"color_by {color_by!r} is not a varying config key; varying keys are {varying}")
        return color_by
    return next((k for k in varying if k in DEFAULT_COLOR_KEYS), None)


def _wants_log(name: str, values) -> bool:
    if not name.lower().endswith(LOG_SUFFIXES):
        return False
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").dropna()
    return bool(len(v)) and bool((v > 0).all()) and v.max() / v.min() > 10


def make_pareto_figure(runs: pd.DataFrame, objectives: Optional[dict] = None, published: Optional[list] = None,
                       color_by: Optional[str] = None) -> Figure:
    """One scatter per pair of objectives: every configuration (± one std over seeds), its 2-D front as a step line.

    Each pair is drawn in the objectives' order, except that a "min" objective paired with a "max"
    one goes on x. ``color_by`` is a varying config key without the ``config.`` prefix; by default the first of
    model.name, model.options.conv, method.name, sampler.name that varies.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    objectives = _objectives(runs, objectives)
    if len(objectives) < 2:
        raise ValueError(f"a Pareto figure needs at least two objectives; got {list(objectives)}")
    published = _check_published(published, objectives, runs)
    summary = summarize(runs, objectives)
    full_front = pareto_front(summary, objectives).index
    chance = p_dominated(summary, objectives, full_front)
    paper_marker = {paper: PUBLISHED_MARKERS[i % len(PUBLISHED_MARKERS)]
                    for i, paper in enumerate(dict.fromkeys(p.get("paper") for p in published))}
    doubtful = summary.index.isin(chance[chance > 0.5].index)  # front members drawn hollow
    key = _color_key(summary, color_by)
    categories = list(dict.fromkeys(summary[key])) if key else [None]
    palette = plt.get_cmap("tab10")
    color = {c: palette(i % 10) for i, c in enumerate(categories)}

    # a cost against a quality reads as the usual trade-off plot: cost on x, quality on y
    pairs = [(y, x) if (objectives[x], objectives[y]) == ("max", "min") else (x, y)
             for x, y in itertools.combinations(objectives, 2)]
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4 * nrows), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        fig.delaxes(ax)
    logged = []
    for ax, (x, y) in zip(axes.flat, pairs):
        for category in categories:
            members = summary if key is None else summary[summary[key] == category]
            for early, marker in ((False, "o"), (True, "v")):
                part = members[(members["stopped_early"] > 0) == early]
                if part.empty:
                    continue
                hollow = doubtful[part.index.map(summary.index.get_loc)]
                ax.scatter(part[x][~hollow], part[y][~hollow], color=color[category], marker=marker, s=30, zorder=3)
                if hollow.any():
                    ax.scatter(part[x][hollow], part[y][hollow], facecolors="none", edgecolors=color[category],
                               marker=marker, s=30, zorder=3)
                spread = part[part["n"] > 1]
                if not spread.empty:
                    ax.errorbar(spread[x], spread[y], xerr=spread[f"{x}_ci"].fillna(0),
                                yerr=spread[f"{y}_ci"].fillna(0), fmt="none", ecolor=color[category],
                                elinewidth=0.8, alpha=0.6, zorder=2)
        if len(objectives) > 2:
            ring = summary.loc[full_front]
            ax.scatter(ring[x], ring[y], facecolors="none", edgecolors="black", s=90, zorder=4)
        front = pareto_front(summary, {x: objectives[x], y: objectives[y]}).sort_values(x, kind="stable")
        # the attained region's edge: the best y reachable at no worse an x
        ax.step(front[x], front[y], where="post" if objectives[x] == "min" else "pre", color="black",
                lw=1, label="Pareto front (2-D)", zorder=1)
        points = [p for p in published if not pd.isna(p.get(x, np.nan)) and not pd.isna(p.get(y, np.nan))]
        for p in points:
            ax.scatter(p[x], p[y], marker=paper_marker.get(p.get("paper"), "*"), s=60, color="black", zorder=5)
            if len(published) <= MAX_LABELLED:  # numbered here, each number's label in the notes
                ax.annotate(str(published.index(p) + 1), (p[x], p[y]), fontsize=7, xytext=(4, 4),
                            textcoords="offset points")
        for name, set_scale, set_label in ((x, ax.set_xscale, ax.set_xlabel), (y, ax.set_yscale, ax.set_ylabel)):
            set_label(f"{name} ({objectives[name]})")
            if _wants_log(name, list(summary[name]) + [p[name] for p in points]):
                set_scale("log")
                logged.append(name)

    handles = [Line2D([], [], marker="o", ls="", color=color[c], label=f"{key}={c or '(unset)'}")
               for c in categories if key is not None]
    handles += [Line2D([], [], marker="o", ls="", color="gray", label="trained to the end"),
                Line2D([], [], marker="v", ls="", color="gray", label="stopped early"),
                Line2D([], [], marker="o", ls="", mfc="none", mec="gray", label="on the front, p_dominated > 0.5"),
                Line2D([], [], color="black", lw=1, label="Pareto front of the pair (2-D)")]
    if len(objectives) > 2:
        handles.append(Line2D([], [], marker="o", ls="", mfc="none", mec="black", ms=9,
                              label="on the front of all objectives"))
    for paper, marker in paper_marker.items():
        datasets = sorted({p["dataset"] for p in published if p.get("paper") == paper and p.get("dataset")})
        handles.append(Line2D([], [], marker=marker, ls="", color="black", ms=7,
                              label=f"published: {paper or 'other'}" + (f" ({', '.join(datasets)})" if datasets else "")))
    if len(pairs) == 1:  # beside the panel: the published points may fill any corner of it
        axes.flat[0].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    else:
        axes.flat[0].legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()

    directions = ", ".join(f"{n} ({d})" for n, d in objectives.items())
    notes = [f"Each point is one configuration: the mean over its seeds, error bars the 95 % t-interval on the mean "
             f"where it has more than one run; {len(summary)} configurations, {summary.attrs['infeasible']} "
             "infeasible samples excluded.",
             f"Hollow markers: the {int(doubtful.sum())} front configurations (front of all objectives) whose "
             "p_dominated is above 0.5."] + uncertainty_notes(summary, summary.loc[full_front]) + [
             "The step line in each panel is the Pareto front of that panel's two objectives alone (its 2-D "
             "projection)" + (f", not of all of {directions}." if len(objectives) > 2 else "."),
             f"Triangles: configurations with a trial stopped early by the scheduler "
             f"({int(summary['stopped_early'].sum())} trials); their objectives are from the last epoch they ran."]
    if len(objectives) > 2:
        notes.append(f"Black rings: the {len(full_front)} configurations on the front of all objectives.")
    if logged:
        notes.append(f"Log scale for {', '.join(dict.fromkeys(logged))} (values span more than 10x).")
    if published:
        drawn = ("numbered: " + "; ".join(f"{i + 1} = {p['label']}" for i, p in enumerate(published))
                 if len(published) <= MAX_LABELLED else
                 "one black marker per paper (legend); the table of this front lists each with paper, table, row "
                 "and dataset")
        notes.append(f"Black markers: {len(published)} published points, {drawn}; measured elsewhere, by their "
                     "authors on their dataset, protocol and hardware, and mapped onto our objectives "
                     "(harness_analysis.published_points); they take no part in any front.")
    return Figure(fig, notes)
