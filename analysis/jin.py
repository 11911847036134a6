"""Jin, *Discriminative Sparsification and Binarization of CNNs* (MS thesis, 2018): Max-Min kernels.

Tables 2.1, 2.2, 3.1, 3.2, Figures 2.4, 2.5, 3.2, 3.3, 3.4, 3.6, and (beyond the paper) the
measured latency of every kernel variant, from the sweeps
  jin_table_2_2           MNIST column of Table 2.2, Figure 2.4; Table 2.1 (no runs)
  jin_table_2_2_cifar10   CIFAR-10 column of Table 2.2, Figure 2.5
  jin_table_3_1           AlexNet on CIFAR-10: Table 3.1, Figures 3.2-3.6; Table 3.2 (no runs)
  jin_latency             the latency table, from trials that time each variant (harness/methods/latency.py)
Every accuracy figure is one builder, ``make_curve_figure(published, dataset, panels)``; the thesis's
numbers are analysis/published/jin.yaml's.
The count tables (2.1, 3.2) are analysis/jin_counts.py's.

Column mapping, paper -> ours:
  "Test Accuracy"    -> ``test_acc`` of the last epoch (the thesis states no selection rule), mean ±
                        std over seeds; ``test_acc_at_best_val`` is logged beside it
"""
from __future__ import annotations

import math

import pandas as pd

from harness.errors import ConfigError
from harness.runs import config_text

from .jin_counts import MODEL_NAMES, fmt_count
from .published import table as published_table
from .report import Figure, Table, mean_std

# The thesis's accuracy tables, from analysis/published/jin.yaml.
# Table 2.2: (model, type) -> (MNIST %, CIFAR10 %)
TABLE_2_2 = {(r["model"], r["type"]): (r["mnist"], r["cifar10"]) for r in published_table("jin", "2.2")["rows"]}
# Table 3.1: our row label -> (the thesis's model type, CIFAR10 test accuracy %)
TABLE_3_1 = {r["row"]: (r["type"], r["cifar10"]) for r in published_table("jin", "3.1")["rows"]}


# ---- accuracy tables ----------------------------------------------------------------------------

def _profile_of(runs: pd.DataFrame) -> str | None:
    profiles = sorted(set(runs.get("profile", pd.Series(dtype=str)).dropna()))
    return profiles[0] if len(profiles) == 1 else None


def _other_runs(sweep_name: str, runs: pd.DataFrame) -> pd.DataFrame:
    """Finished runs of another sweep, same tracking store and profile as ``runs``."""
    from harness import runs as recorded

    uri = runs.attrs.get("tracking_uri")
    other = recorded.load_runs(sweep_name, uri, profile=_profile_of(runs), status="FINISHED")
    other.attrs = dict(runs.attrs)
    return other


def _datasets(runs: pd.DataFrame) -> str:
    found = sorted(set(runs.get("dataset", pd.Series(dtype=str)).dropna()))
    return "/".join(found) if found else "-"


def _acc(runs: pd.DataFrame, label: str):
    g = runs[runs["row"] == label] if "row" in runs else runs.iloc[0:0]
    if g.empty:
        return None, "-"
    return pd.to_numeric(g["test_acc"]).mean(), mean_std(g["test_acc"])


def _fmt(x, digits=2, signed=False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _mean(runs: pd.DataFrame, label: str, column: str):
    g = runs[runs["row"] == label] if "row" in runs else runs.iloc[0:0]
    if g.empty or column not in g:
        return None
    values = pd.to_numeric(g[column], errors="coerce").dropna()
    return values.mean() if not values.empty else None


def make_table_2_2(runs: pd.DataFrame) -> Table:
    """Table 2.2: test accuracy of the five models, dense vs sparse; MNIST column from these runs,
    CIFAR-10 column from sweep jin_table_2_2_cifar10 (same store and profile) when it has runs."""
    cifar = _other_runs("jin_table_2_2_cifar10", runs)
    columns = [("MNIST", 0, runs), ("CIFAR10", 1, cifar)]
    frame_rows = []
    for (name, kind), published in TABLE_2_2.items():
        label = f"{name}-{kind}"
        r = {"Model Name": MODEL_NAMES[name], "Model Type": kind}
        for title, index, source in columns:
            ours, text = _acc(source, label)
            dense, _ = _acc(source, f"{name}-dense")
            r[f"{title} % (paper)"] = _fmt(published[index])
            r[f"{title}: ours ({_datasets(source)})"] = text
            paper_gap = published[index] - TABLE_2_2[(name, "dense")][index]
            r[f"{title}: sparse - dense (paper)"] = _fmt(paper_gap, signed=True) if kind == "sparse" else ""
            r[f"{title}: sparse - dense (ours)"] = (_fmt(ours - dense, signed=True) if kind == "sparse"
                                                    and ours is not None and dense is not None else "")
        macs = _mean(runs, label, "macs")
        r["macs (ours)"] = fmt_count(macs) if macs is not None else "-"
        speed = _mean(runs, label, "images_per_s")
        r["train images/s (ours)"] = _fmt(speed, 0)
        frame_rows.append(r)
    notes = [f"MNIST column: these runs ({_datasets(runs)}); CIFAR10 column: sweep jin_table_2_2_cifar10 "
             f"({_datasets(cifar)}; `harness run jin-figure-2.5` fills it).",
             "Test accuracy of the last epoch, mean ± std over seeds (n); the thesis reports one number per cell. "
             "Compare the sparse - dense gaps when the dataset or profile differs from the paper's.",
             "`macs` and images/s are ours at the runs' input size and width: the 2/k² saving in multiplications "
             "does not make a dense-hardware convolution faster (see jin-latency)."]
    widths = _widths(runs)
    if widths:
        notes.append(f"Model width multiplier in these runs: {', '.join(widths)} (the paper's models are full width).")
    return Table(pd.DataFrame(frame_rows), notes)


def _widths(runs: pd.DataFrame) -> list[str]:
    """The model width multipliers the runs used (MLflow params are text)."""
    return sorted(set(runs.get("config.model.options.width", pd.Series(dtype=str)).dropna().astype(str)))


def make_table_3_1(runs: pd.DataFrame) -> Table:
    """Table 3.1: AlexNet CIFAR-10 test accuracy of every kernel variant, the paper's beside ours."""
    dense, _ = _acc(runs, "dense")
    frame_rows = []
    for label, (paper_type, published) in TABLE_3_1.items():
        ours, text = _acc(runs, label)
        macs = _mean(runs, label, "macs")
        frame_rows.append({
            "Model Type (paper)": paper_type, "row (ours)": label, "Test Accuracy % (paper)": _fmt(published),
            f"ours ({_datasets(runs)})": text,
            "vs dense (paper)": _fmt(published - TABLE_3_1["dense"][1], signed=True) if label != "dense" else "",
            "vs dense (ours)": _fmt(ours - dense, signed=True) if label != "dense" and ours is not None
            and dense is not None else "",
            "macs (ours)": fmt_count(macs) if macs is not None else "-",
            "train images/s (ours)": _fmt(_mean(runs, label, "images_per_s"), 0)})
    notes = ["Test accuracy of the last epoch, mean ± std over seeds (n). `macs`: full-precision multiplications "
             "of the trained model at the runs' input (binary scales counted); images/s: measured training "
             "throughput, where every binary and zero-filled kernel still runs densely."]
    widths = _widths(runs)
    if widths:
        notes.append(f"AlexNet width multiplier in these runs: {', '.join(widths)}; the internal widths 256 ... 2048 "
                     "are the paper's.")
    return Table(pd.DataFrame(frame_rows), notes)


# ---- curves -------------------------------------------------------------------------------------

COLORS = ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown"]


def _history(runs: pd.DataFrame, sweep_name: str) -> pd.DataFrame:
    """Per-epoch train_acc and test_acc of exactly ``runs`` (one profile, finished)."""
    from harness import runs as recorded

    history = recorded.load_history(sweep_name, runs.attrs.get("tracking_uri"), profile=_profile_of(runs),
                                    metrics=("train_acc", "test_acc"))
    return history[history["run_id"].isin(set(runs["run_id"]))]


def curve_figure(runs: pd.DataFrame, sweep_name: str, panels: list, published: dict, paper_dataset: str,
                 ylabel: str = "accuracy %") -> Figure:
    """One panel per (title, [row labels]): test (solid) and train (dashed) accuracy per epoch, mean over
    seeds, one colour per row; the paper's final test accuracy of each row as a dotted line when the runs
    are on the paper's dataset, else in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = _history(runs, sweep_name)
    on_paper_data = _datasets(runs) == paper_dataset
    columns = min(len(panels), 3)
    grid_rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(4.2 * columns, 3.2 * grid_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, labels) in zip(axes.flat, panels):
        for color, label in zip(COLORS, labels):
            paper_value = published.get(label)
            legend = label + (f" (paper {paper_value:.2f})" if paper_value is not None else "")
            for metric, style in (("test_acc", "-"), ("train_acc", "--")):
                h = history[(history["row"] == label) & (history["metric"] == metric)]
                if h.empty:
                    continue
                mean = h.groupby("step")["value"].mean()
                ax.plot(mean.index, mean.values, style, color=color, lw=1.2,
                        label=legend if metric == "test_acc" else None)
            if paper_value is not None and on_paper_data:
                ax.axhline(paper_value, color=color, ls=":", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:  # a panel whose rows have no runs stays empty
            ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout(rect=(0, 0, 1, 0.94))  # room for the report's title
    notes = [f"Solid: test accuracy, dashed: training accuracy (augmented, train mode), per epoch, mean over seeds; "
             f"runs on {_datasets(runs)}.",
             "The paper's curves are not published as numbers: its final test accuracy of each row is given "
             + ("as a dotted line." if on_paper_data else
                f"in the legend (measured on {paper_dataset}, so not drawn against ours).")]
    return Figure(fig, notes)


def make_curve_figure(runs: pd.DataFrame, published: str, dataset: str, panels: list | None = None) -> Figure:
    """Figures 2.4, 2.5 (``published`` 2.2) and 3.2-3.6 (3.1): per-epoch accuracy of the rows of each
    panel ({title, rows}), beside the thesis's final test accuracy on ``dataset`` (mnist or cifar10).
    Without ``panels``, one per model of Table 2.2 with its dense and sparse rows."""
    if published == "2.2":
        values = {f"{name}-{kind}": v for (name, kind), v in zip(TABLE_2_2, published_table("jin", "2.2")["rows"])}
    elif published == "3.1":
        values = {r["row"]: r for r in published_table("jin", "3.1")["rows"]}
    else:
        raise ConfigError("options.published", published, "2.2 or 3.1 (the thesis's accuracy tables)")
    if dataset not in ("mnist", "cifar10") or any(dataset not in r for r in values.values()):
        raise ConfigError("options.dataset", dataset,
                          f"a column of Table {published}: mnist or cifar10 (2.2), cifar10 (3.1)")
    if panels is None:
        panels = [{"title": MODEL_NAMES[name], "rows": [f"{name}-dense", f"{name}-sparse"]} for name in MODEL_NAMES]
    for i, panel in enumerate(panels):
        if not isinstance(panel, dict) or set(panel) != {"title", "rows"}:
            raise ConfigError(f"options.panels[{i}]", panel, "a mapping of title and rows (row labels)")
    return curve_figure(runs, runs.attrs["sweep"], [(p["title"], p["rows"]) for p in panels],
                        {label: r[dataset] for label, r in values.items()}, dataset)


# ---- beyond the paper: latency ------------------------------------------------------------------

def _ms(run: pd.Series, metric: str) -> float:
    return float(run[metric]) * 1e3


def _conv_label(options: dict) -> str:
    """The variant as the table names it: conv and, when set, its conv_options (as the sweep row gives them)."""
    conv, conv_options = options.get("conv") or "dense", options.get("conv_options")
    return conv + (f" {conv_options}" if conv_options else "")


def make_latency(runs: pd.DataFrame, batch: int = 4) -> Table:
    """Beyond the paper: forward latency of every kernel variant, as the trials of sweep jin_latency
    recorded it (harness/methods/latency.py), beside its counted MACs."""
    from harness import catalog

    rows = catalog.resolve(runs.attrs["sweep"])[0].rows  # the rows' order and model options, as the sweep gives them
    options = {r["label"]: ((r.get("config") or {}).get("model") or {}).get("options") or {} for r in rows}
    order = runs["row"].map({label: i for i, label in enumerate(options)})
    runs = runs.assign(_order=order).sort_values(["_order", "row"])
    key = f"_b{batch}"
    frame_rows = []
    for name, group in runs.groupby("config.model.name", sort=False):
        dense = group[group["config.model.options.conv"].fillna("dense") == "dense"] \
            if "config.model.options.conv" in group else group
        dense = dense.iloc[0] if not dense.empty else None
        for _, run in group.iterrows():
            lowest, highest = (_ms(run, f"cached_{m}{key}") / batch for m in ("latency_min_s", "latency_max_s"))
            frame_rows.append({
                "model": name, "conv": _conv_label(options.get(run["row"], {})),
                "macs": fmt_count(float(run["macs"])), "nonzero_params": fmt_count(float(run["nonzero_params"])),
                "binary_adds": fmt_count(float(run["binary_adds"])) if float(run["binary_adds"]) else "0",
                "MAC saving (x)": _fmt(float(dense["macs"]) / float(run["macs"]), 2) if dense is not None else "-",
                "ms/image, kernel cached": _fmt(_ms(run, f"cached_per_image_s{key}"), 2),
                "range": f"{lowest:.2f}-{highest:.2f}",
                "ms/image, re-derived": _fmt(_ms(run, f"per_image_s{key}"), 2),
                "measured speed-up (x)": _fmt(_ms(dense, f"cached_per_image_s{key}")
                                              / _ms(run, f"cached_per_image_s{key}"), 2) if dense is not None else "-"})
    devices = ", ".join(sorted(set(runs.get("device", pd.Series(dtype=str)).dropna()))) or "an unrecorded device"
    threads = ", ".join(sorted({str(int(float(t)))
                                for t in runs.get("latency_threads", pd.Series(dtype=float)).dropna()}))
    torch_versions = ", ".join(sorted(set(runs.get("torch_version", pd.Series(dtype=str)).dropna()))) or "?"
    repeats = ", ".join(sorted({config_text(r) for r in runs.get("config.method.options.repeats",
                                                                    pd.Series(dtype=object)).dropna()})) or "?"
    shapes = ", ".join(sorted(set(runs.get("dataset", pd.Series(dtype=str)).dropna())))
    notes = [f"Forward latency per image at batch {batch}, each model built at the nominal input of {shapes}, "
             f"{threads or '?'} CPU thread(s), on {devices}, torch {torch_versions}: recorded by the trials of sweep "
             f"jin_latency (harness/methods/latency.py), the median (and range) of {repeats} timed passes after "
             "warm-up, one trial per variant. 'cached': the re-derived weight computed once "
             "(torch.nn.utils.parametrize.cached), i.e. the deployed model, a dense conv with a zero-filled or "
             "±scale kernel; 're-derived': computed at every forward, as in training. A quick measurement: "
             "raise method.options.repeats before citing a difference under ~20 %.",
             "MAC saving = dense macs / the variant's macs (full-precision multiplications); measured speed-up = "
             "dense ms/image / the variant's (cached). Dense convolution libraries do not skip zeros, so a "
             "2-sparse or binary kernel runs about as fast as the dense one however many multiplications it "
             "saves, and the local binary variants, whose wide internal layer runs in full, run slower.",
             "resnet20 and mobilenetv2 are the other papers' models: the `conv` option applies to every registered "
             "model, so e.g. `harness run jiang-table-4-9 --set model.options.conv=maxmin` trains the Max-Min "
             "variant in another paper's protocol."]
    return Table(pd.DataFrame(frame_rows), notes)
