"""Pöllot, Zhang, Kaup, *An efficient alternative to network pruning through ensemble learning*
(ICASSP 2020 slides): ensembles of slim networks (soft voting, stacking, ComboNet).

The accuracy table (slide 12), the validation-accuracy figure (slide 13) and the timing table
(slide 13), from the sweeps
  poellot_accuracy   rows <dataset>-<setting> (α, N, combination) x base (vgg16, mobilenetv2, wrn28_10):
                     the slides' nine settings and two ComboNets of mixed widths of ours (MIXED)
  poellot_timing     rows a<α>-n<N> x base, each run timing one batch (harness/methods/poellot.py)

Column mapping, slides -> ours:
  accuracy difference  -> mean over seeds of ``test_acc_at_best_val`` (the test accuracy at the epoch
                          of best validation accuracy; the slides state no selection rule) of the
                          row minus that of the full-size row (α = 1, N = 1) of the same base and
                          dataset, in points; with several seeds on both sides ± is the standard
                          error of that difference, sqrt(s1²/n1 + s2²/n2)
  "ms" per batch       -> ``train_batch_ms`` (one training step: forward, backward, SGD step) and
                          ``infer_batch_ms`` (one forward pass), medians, batch ``timing_batch``; the
                          slides do not say which of the two they timed nor the batch size
  "validation accuracy during training" -> ``val_acc`` per epoch of one seed (the lowest recorded)
"""
from __future__ import annotations

import math

import pandas as pd

from .published import table as published_table
from .report import Figure, Table

BASE_NAMES = {"vgg16": "VGG-16", "mobilenetv2": "MobileNetV2", "wrn28_10": "WRN"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "pet": "Oxford-Pet"}
SQRT_HALF = "√0.5"
# The slides' numbers, from analysis/published/poellot.yaml.
_ACCURACY = published_table("poellot", "accuracy")
_TIMING = published_table("poellot", "timing")
# The accuracy table's rows in the slides' order: our setting label -> (α, N, method as printed)
SETTINGS = {r["row"]: (r["alpha"], r["n"], r["method"]) for r in _ACCURACY["rows"]}
FULL = "full"
# Ours, not on the slides: ComboNets of mixed widths, poellot_accuracy.yaml's reading of slide 11's "the
# proposed ComboNet consists of networks with different values for α" (no slide gives the values).
MIXED = {"a0.71_0.25-n2-combonet": ("√0.5, 0.25", 2, "ComboNet, mixed α (ours)"),
         "a0.5_0.25x4-n5-combonet": ("0.5, 4 x 0.25", 5, "ComboNet, mixed α (ours)")}
# The table's rows: the slides' in their order, the mixed ComboNets right after the uniform α = 0.5, N = 2
# ComboNet whose parameter budget (Σα² = 0.5) they are drawn to.
_AFTER = list(SETTINGS).index("a0.5-n2-combonet") + 1
ROWS = {**dict(list(SETTINGS.items())[:_AFTER]), **MIXED, **dict(list(SETTINGS.items())[_AFTER:])}
# Slide 12, difference to the full-size network in points: (setting, base, dataset) -> value; blank cells absent
_PAPER_COLUMNS = [tuple(c.split("/")) for c in _ACCURACY["columns"]]
PAPER_ACCURACY = {(r["row"], *column): r[name] for r in _ACCURACY["rows"]
                  for column, name in zip(_PAPER_COLUMNS, _ACCURACY["columns"]) if r[name] is not None}
# Slide 13, milliseconds per batch of 224x224x3 images on one GTX 1080 Ti: (α, N) row -> per base
TIMING_ROWS = {r["row"]: (r["alpha"], r["n"]) for r in _TIMING["rows"]}
PAPER_TIMING = {r["row"]: {base: r[base] for base in BASE_NAMES if base in r} for r in _TIMING["rows"]}
PAPER_DEVICE = _TIMING["device"]
BASE_COLUMN = "config.model.options.base"


def _fmt(value: float, digits: int = 2, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _split_label(row: str) -> tuple[str, str]:
    dataset, _, setting = row.partition("-")
    return dataset, setting


def _measured(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(set(runs["dataset"].dropna()))) if "dataset" in runs else "?"


def _difference(values: pd.Series, full: pd.Series) -> str:
    """'+0.41 ± 0.20 (n=3)': mean difference and its standard error; one seed a side: no spread."""
    values, full = pd.to_numeric(values, errors="coerce").dropna(), pd.to_numeric(full, errors="coerce").dropna()
    if values.empty or full.empty:
        return "-"
    delta = values.mean() - full.mean()
    if len(values) > 1 and len(full) > 1:
        error = math.sqrt(values.var(ddof=1) / len(values) + full.var(ddof=1) / len(full))
        return f"{delta:+.2f} ± {error:.2f} (n={len(values)})"
    return f"{delta:+.2f} (n={len(values)})"


def _columns(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(base, dataset label) pairs to show: the slides' seven, then any others our runs cover."""
    ours = []
    for _, run in runs.iterrows():
        pair = (run.get(BASE_COLUMN), _split_label(run["row"])[0])
        if pair not in ours and pair not in _PAPER_COLUMNS:
            ours.append(pair)
    return _PAPER_COLUMNS + sorted(ours, key=str)


def make_accuracy_table(runs: pd.DataFrame) -> Table:
    """Slide 12: accuracy of each slim network / ensemble minus the full-size network's, paper beside ours."""
    runs = runs.copy()
    runs["dataset_label"] = runs["row"].map(lambda r: _split_label(r)[0])
    runs["setting"] = runs["row"].map(lambda r: _split_label(r)[1])
    measured = _measured(runs)
    columns = _columns(runs)
    frame_rows = []
    for setting, (alpha, members, method) in ROWS.items():
        entry = {"α": alpha, "N": members, "Ensemble Method": method}
        for base, dataset in columns:
            head = f"{BASE_NAMES.get(base, base)} {DATASET_NAMES.get(dataset, dataset)}"
            cell = runs[(runs[BASE_COLUMN] == base) & (runs["dataset_label"] == dataset)]
            if (base, dataset) in _PAPER_COLUMNS:
                entry[f"{head} (paper)"] = _fmt(PAPER_ACCURACY.get((setting, base, dataset)), sign=True)
            entry[f"{head}: ours ({measured})"] = _difference(
                cell.loc[cell["setting"] == setting, "test_acc_at_best_val"],
                cell.loc[cell["setting"] == FULL, "test_acc_at_best_val"])
        frame_rows.append(entry)
    full_row = {"α": "1", "N": 1, "Ensemble Method": "full-size: test accuracy %"}
    for base, dataset in columns:
        head = f"{BASE_NAMES.get(base, base)} {DATASET_NAMES.get(dataset, dataset)}"
        cell = runs[(runs[BASE_COLUMN] == base) & (runs["dataset_label"] == dataset) & (runs["setting"] == FULL)]
        if (base, dataset) in _PAPER_COLUMNS:
            full_row[f"{head} (paper)"] = "-"
        values = pd.to_numeric(cell["test_acc_at_best_val"], errors="coerce").dropna()
        full_row[f"{head}: ours ({measured})"] = (f"{values.mean():.2f} (n={len(values)})" if len(values) else "-")
    frame_rows.append(full_row)
    frame = pd.DataFrame(frame_rows)
    # Columns with neither a published value nor a run of ours carry no information.
    keep = [c for c in frame.columns if c in ("α", "N", "Ensemble Method") or (frame[c] != "-").any()]
    frame = frame[keep]
    ratios = runs.dropna(subset=["macs_ratio"]) if "macs_ratio" in runs else runs.iloc[0:0]
    ratio_text = "; ".join(
        f"{BASE_NAMES.get(base, base)} {setting}: {group['macs_ratio'].astype(float).mean():.3f} MACs, "
        f"{group['params_ratio'].astype(float).mean():.3f} params"
        for (base, setting), group in ratios.groupby([BASE_COLUMN, "setting"]) if setting != FULL)
    notes = [f"Our cells: mean test accuracy at the best validation epoch minus the full-size network's (α = 1, "
             f"N = 1, same base and dataset), in points, runs on {measured}; ± is the standard error of the "
             "difference when both sides have several seeds. The last row is the full-size network's own accuracy.",
             "Row labels <dataset>-<setting> of poellot_accuracy.yaml map onto the slides' rows; the slides' "
             "blank cells are '-'. Oxford-Pet keeps its first 10 breeds (data.classes: 10).",
             "Mixed-α ComboNet rows are ours: slide 11 says the ComboNet \"consists of networks with different "
             "values for α\" but no slide gives them, and slide 12 prints ComboNet at one α. We draw the members from "
             "the slides' α values at the α = 0.5, N = 2 row's budget: √0.5 + 0.25 (N = 2, Σα² = 0.5625) and "
             "0.5 + 4 x 0.25 (N = 5, Σα² = 0.5); no published value, '-' in the paper columns.",
             "Cost against the full-size network (flop_budget's macs_ratio and params_ratio, at the runs' input "
             "size): " + (ratio_text or "not recorded") + ". The slides' α² per network: 0.5 (√0.5), 0.25 "
             "(0.5), 0.0625 (0.25), times N for an ensemble."]
    return Table(frame, notes)


def make_validation_figure(runs: pd.DataFrame) -> Figure:
    """Slide 13 (left): validation accuracy per epoch of one run of each ensemble method and the references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.runs import load_history

    profile = runs["profile"].iloc[0]
    history = load_history("poellot_accuracy", runs.attrs.get("tracking_uri"), profile=profile, metrics=("val_acc",))
    history = history[history["run_id"].isin(set(runs["run_id"]))]
    runs = runs.copy()
    runs["dataset_label"] = runs["row"].map(lambda r: _split_label(r)[0])
    runs["setting"] = runs["row"].map(lambda r: _split_label(r)[1])
    shown = [FULL, "a0.5-n1", "a0.5-n2-stacking", "a0.5-n2-soft_voting", "a0.5-n2-combonet", *MIXED,
             "a0.25-n4-stacking", "a0.25-n4-soft_voting", "a0.25-n4-combonet"]
    panels = [pair for pair in _columns(runs)
              if not runs[(runs[BASE_COLUMN] == pair[0]) & (runs["dataset_label"] == pair[1])].empty]
    columns = min(len(panels), 3) or 1
    grid_rows = max(1, math.ceil(len(panels) / columns))
    fig, axes = plt.subplots(grid_rows, columns, figsize=(4.4 * columns, 3.3 * grid_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    styles = {FULL: ("black", "-"), "a0.5-n1": ("grey", "--"),
              "a0.71_0.25-n2-combonet": ("tab:olive", "-."), "a0.5_0.25x4-n5-combonet": ("tab:purple", "-.")}
    colors = {"stacking": "tab:blue", "soft_voting": "tab:orange", "combonet": "tab:green"}
    for ax, (base, dataset) in zip(axes.flat, panels):
        cell = runs[(runs[BASE_COLUMN] == base) & (runs["dataset_label"] == dataset)]
        seed = cell["seed"].min()
        for setting in shown:
            run = cell[(cell["setting"] == setting) & (cell["seed"] == seed)]
            if run.empty:
                continue
            h = history[(history["run_id"] == run["run_id"].iloc[0]) & (history["metric"] == "val_acc")]
            if setting in styles:
                color, style = styles[setting]
            else:
                color, style = colors[setting.rsplit("-", 1)[-1]], "-" if setting.startswith("a0.5") else ":"
            ax.plot(h["step"], h["value"], style, color=color, lw=1.2, label=setting)
        title = f"{BASE_NAMES.get(base, base)}, {DATASET_NAMES.get(dataset, dataset)} row (seed {seed})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy %")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    notes = [f"Validation accuracy per epoch (val_acc, the held-out part of the training split) of one run (the "
             f"lowest seed) per row, runs on {_measured(runs)}. Black: the full-size network; grey dashed: one slim "
             "network at α = 0.5; solid colours: α = 0.5, N = 2; dotted: α = 0.25, N = 4 (blue stacking, orange "
             "soft voting, green ComboNet); dash-dot: the mixed-α ComboNets (olive √0.5 + 0.25, purple "
             "0.5 + 4 x 0.25).",
             "The slides' figure is not published as numbers and its network and dataset are not named."]
    return Figure(fig, notes)


def make_timing_table(runs: pd.DataFrame) -> Table:
    """Slide 13 (right): milliseconds per batch, paper beside ours, and each relative to its α = 1 row."""
    frame_rows = []
    for base in list(BASE_NAMES) + sorted(set(runs[BASE_COLUMN].dropna()) - set(BASE_NAMES)):
        cell = runs[runs[BASE_COLUMN] == base]
        if cell.empty and base not in BASE_NAMES:
            continue

        def median(row: str, metric: str) -> float:
            values = pd.to_numeric(cell.loc[cell["row"] == row, metric], errors="coerce").dropna() \
                if metric in cell else pd.Series(dtype=float)
            return values.median() if len(values) else math.nan

        full_train, full_infer = median("a1-n1", "train_batch_ms"), median("a1-n1", "infer_batch_ms")
        for row, (alpha, members) in TIMING_ROWS.items():
            paper = PAPER_TIMING[row].get(base)
            paper_full = PAPER_TIMING["a1-n1"].get(base)
            train, infer = median(row, "train_batch_ms"), median(row, "infer_batch_ms")
            devices = sorted(set(cell.loc[cell["row"] == row, "device"].dropna())) if "device" in cell else []
            batch = median(row, "timing_batch")
            frame_rows.append({
                "network": BASE_NAMES.get(base, base), "α": alpha, "N": members,
                "ms (paper)": _fmt(paper), "x full (paper)": _fmt(paper / paper_full if paper else None),
                "train step ms (ours)": _fmt(train), "train x full (ours)": _fmt(train / full_train),
                "forward ms (ours)": _fmt(infer), "forward x full (ours)": _fmt(infer / full_infer),
                "batch (ours)": "-" if math.isnan(batch) else int(batch),
                "device (ours)": ", ".join(devices) or "-"})
    frame = pd.DataFrame(frame_rows)
    inputs = sorted(set(runs["dataset"].dropna())) if "dataset" in runs else []
    notes = [f"Paper: {PAPER_DEVICE}; batch size not given. Ours: the device in the last column, one batch of the "
             "run's images (224x224 at the paper profile; the smoke profile times tiny digits models, "
             f"runs on {', '.join(inputs) or '?'}), float32, median of timing_repeats after timing_warmup untimed "
             "passes, device synchronized (harness/methods/poellot.py). 'x full': relative to the same network's "
             "α = 1, N = 1 row, the comparison that carries across devices.",
             "Ensemble members run one after another in one process, as a plain PyTorch ensemble does."]
    return Table(frame, notes)
