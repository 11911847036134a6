"""Zheng, Wang & Gupta, *Efficient Ensemble Sparse CNNs with Dynamic Batch Size*: Tables 1-6, Figures 2-5.

From the sweeps (row labels ``<variant>-s<sparsity %>``, ``<variant>-b<batch>``, ``<variant>-dbs``):
  zheng_table_1   AlexNet (alexnet_fmnist) on Fashion-MNIST: Tables 1, 2, Figures 2a, 2b
  zheng_table_3   VGG-16 on CIFAR-10: Tables 3, 4, Figures 3a, 3b
  zheng_table_5   ResNet-32 on CIFAR-100: Tables 5, 6, Figures 4a, 4b, 5a; Figure 5b (analytic, no runs)
Builders: ``make_sparsity_table``, ``make_batch_table`` and ``make_accuracy_figure`` (``by``: sparsity
or batch) of one model and dataset, ``published`` (alexnet_fmnist, vgg16_cifar10, resnet32_cifar100: its
values in analysis/published/zheng.yaml); ``make_figure_5a``, ``make_figure_5b``.

Column mapping, paper -> ours:
  "C-CNN", "SC-CNN", "SWR-CNN", "SWR-CNN + DBS"
                  -> rows c_cnn, sc_cnn, swr_cnn, swr_cnn_dbs (see the sweep files)
  "Time"          -> mean training time per epoch, ``train_time_s`` / epochs (each epoch's
                     ``epoch_time_s``: batching, forward, backward, step; evaluation excluded), in
                     seconds, on the device and software named in the table's notes. The paper's
                     times are TensorFlow on an RTX 2080 Ti with the full datasets and models.
  "Speed"         -> time of the unpruned C-CNN at the paper's batch 128 (row c_cnn-s0, the paper's
                     "baseline ... without pruning", 17 / 26 / 54 s) divided by the row's time
  "Overall"       -> the mean time over the sparsities 20-80 %; its speed = baseline / that mean
                     (the paper's Overall rows match this: 17 / 11.42 = 1.49)
  (beyond the paper) "theoretical speed-up" -> MACs of the unpruned C-CNN / ``macs_nonzero`` of the
                     row (each layer's MACs times its fraction of nonzero weights; Winograd layers
                     count their 16 products per tile, harness.layers.winograd): what sparse kernels
                     could gain. Our dense kernels run the zeros anyway, so it is not a measured speed-up.
  Table 2/4/6 batch 128 -> the row ``<variant>-s<paper's sparsity>`` of the sparsity sweep (the same
                     config); "DBS" -> ``c_cnn-dbs``, ``sc_cnn-dbs``, and ``swr_cnn_dbs-s<sparsity>``
  Figures' "testing accuracy" -> ``test_acc`` of the last epoch (mean over seeds); the paper's
                     numbers quoted in its text are drawn as crosses.
  (beside the paper's Time) "Time ÷ C-CNN (paper)" -> the paper's time over its C-CNN's in the same
                     row (sparsity or batch), beside "MACs ÷ C-CNN (ours)": the run's ``macs`` (dense,
                     as built) over c_cnn-s0's. ``stack_costs`` builds the sweep's paper-profile models
                     (harness.measure on the meta device) for the notes: the members' MACs at their
                     ``member_width`` and the stack/base ratio beside the paper's time ratio.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness import runs as recorded
from harness.errors import ConfigError

from .published import load as published_file
from .published import table as published_table
from .report import Figure, Table, mean_std

VARIANTS = {"c_cnn": "C-CNN", "sc_cnn": "SC-CNN", "swr_cnn": "SWR-CNN", "swr_cnn_dbs": "SWR-CNN + DBS"}
SWEEPS = {"alexnet_fmnist": "zheng_table_1", "vgg16_cifar10": "zheng_table_3", "resnet32_cifar100": "zheng_table_5"}
SPARSITIES = (20, 30, 40, 50, 60, 70, 80)
BATCHES = (64, 128, 256, 512, 1024)


def _variants(record: dict) -> dict:
    """{variant: (time, speed)} of one printed row (the batch tables have no SWR-CNN + DBS column)."""
    return {v: (record[f"{v}_time"], record[f"{v}_speed"]) for v in VARIANTS if f"{v}_time" in record}


def published_values(key: str) -> dict:
    """One model/dataset of analysis/published/zheng.yaml (alexnet_fmnist, vgg16_cifar10,
    resnet32_cifar100): the baseline seconds, the batch tables' sparsity, the sparsity and batch
    tables, and the accuracies the text quotes, (variant, sparsity %) or (variant, batch or "DBS") -> %."""
    sparse, batch = published_table("zheng", f"{key}/sparsity"), published_table("zheng", f"{key}/batch")
    return dict(baseline=sparse["baseline_s"], sparsity=batch["sparsity"],
                sparse={r["sparsity"]: _variants(r) for r in sparse["rows"]},
                batch={r["batch"]: _variants(r) for r in batch["rows"]},
                acc_sparse={(r["variant"], r["sparsity"]): r["accuracy"]
                            for r in published_table("zheng", f"{key}/accuracy_sparsity")["rows"]},
                acc_batch={(r["variant"], r["batch"]): r["accuracy"]
                           for r in published_table("zheng", f"{key}/accuracy_batch")["rows"]})


def _num(runs: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(runs[column], errors="coerce") if column in runs else pd.Series(np.nan, index=runs.index)


def _prepare(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    runs["epoch_s"] = _num(runs, "train_time_s") / _num(runs, "config.train.epochs")
    return runs


def _of(runs: pd.DataFrame, row: str) -> pd.DataFrame:
    return runs[runs["row"] == row]


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _device_note(runs: pd.DataFrame) -> str:
    devices = ", ".join(sorted(set(runs.get("device", pd.Series(dtype=str)).dropna()))) or "unrecorded device"
    torch_versions = ", ".join(sorted(set(runs.get("torch_version", pd.Series(dtype=str)).dropna()))) or "?"
    return (f"Our times: mean epoch_time_s per epoch (train_time_s / epochs), measured on {devices} with PyTorch "
            f"{torch_versions} (concurrent trials and other jobs on the same machine share its cores and add "
            f"noise); the paper's: {published_file('zheng')['device']}. Absolute times are not comparable; "
            "compare the speed columns.")


def _speed_notes(runs: pd.DataFrame, baseline: float | None) -> list[str]:
    return [_device_note(runs),
            f"Speed (ours) = mean epoch time of c_cnn-s0 ({_fmt(baseline)} s) / the row's; speed (paper) = the "
            "paper's 'without pruning' baseline / the row's time, as printed.",
            "Theoretical speed-up = MACs of the unpruned C-CNN / the row's MACs of nonzero weights (macs_nonzero): "
            "what sparse kernels could save. Masked weights run as zeros in dense kernels, and our Winograd "
            "layer is plain PyTorch ops, so measured times need not follow it; no speed-up is claimed beyond "
            "the measured columns."]


def stack_costs(published: str, profile: str = "paper") -> dict:
    """MACs of the sweep's C-CNN (c_cnn-s0), its stack (sc_cnn-s0) and the stack's two Springenberg members,
    built as ``profile``'s cells build them for their dataset's registered shape (meta device, no data):
    {"base", "stack", "convpool_cnn", "all_cnn", "member_width", "ratio" (stack / base)}."""
    from harness import catalog, data, measure
    from harness.models.zheng import STACK_MEMBERS

    cells = {c.row: c.config for c in catalog.all_sweeps()[SWEEPS[published]].cells(profile)}
    base, stack = cells["c_cnn-s0"]["model"], cells["sc_cnn-s0"]["model"]
    d = cells["sc_cnn-s0"]["data"]
    shape, classes = data.nominal_shape(d["dataset"], d["image_size"], d["classes"])

    def macs(name: str, options: dict) -> int:
        return measure.profile_model(name, {**options, "num_classes": classes}, shape)["macs"]

    options = stack["options"]
    width = options.get("width", 1.0) * options.get("member_width", 1.0)
    costs = {m: macs(m, {**(options.get("member_options") or {}), "width": width}) for m in STACK_MEMBERS}
    costs.update(base=macs(base["name"], base["options"]), stack=macs(stack["name"], options),
                 member_width=options.get("member_width", 1.0))
    costs["ratio"] = costs["stack"] / costs["base"]
    return costs


def _stack_note(published: str) -> str:
    paper, costs = published_values(published), stack_costs(published)
    overall = paper["sparse"]["Overall"]
    ratio, to_baseline = overall["sc_cnn"][0] / overall["c_cnn"][0], overall["sc_cnn"][0] / paper["baseline"]
    return (f"Stack members: ConvPool-CNN-C and All-CNN-C at member_width {costs['member_width']:g} (Sec. 5.1: "
            "'considerably less complicated than VGG and ResNet but have similar perplexity as AlexNet'): "
            f"{costs['convpool_cnn'] / 1e6:.1f} M and {costs['all_cnn'] / 1e6:.1f} M MACs beside the C-CNN's "
            f"{costs['base'] / 1e6:.1f} M (the paper profile's models, built): the stack has "
            f"{costs['ratio']:.2f}x its base's MACs; the paper's SC-CNN takes {ratio:.2f}x its C-CNN's time "
            f"(Overall rows; {to_baseline:.2f}x the unpruned baseline's). The width is the one on a 1/16 grid "
            "whose MAC ratio is nearest that time ratio (docs/fidelity.md).")


def _ratio(value, base) -> str:
    return _fmt(value / base) if value is not None and base and not pd.isna(value) else "-"


LR_NOTE = ("Learning rate: every row without DBS trains with method warmup_plateau, DBS's own strategy at a fixed "
           "batch (warm-up 0.01 -> 0.02 over the first 10 % of the epochs, then x 0.1 after 5 epochs without a "
           "better validation accuracy), so fixed-batch and DBS rows differ in the batch policy alone.")


def make_sparsity_table(runs: pd.DataFrame, published: str) -> Table:
    """Tables 1, 3, 5: time per epoch and speed-up per sparsity, the paper's (``published``) beside ours."""
    paper = published_values(published)
    runs = _prepare(runs)
    base = _of(runs, "c_cnn-s0")
    base_time = base["epoch_s"].mean() if not base.empty else None
    base_macs = _num(base, "macs").mean() if not base.empty else None
    records = []
    for key in (0, *SPARSITIES, "Overall"):
        for variant, name in VARIANTS.items():
            if key == "Overall":
                sub = runs[runs["row"].isin([f"{variant}-s{s}" for s in SPARSITIES])]
                ours_time = sub.groupby("row")["epoch_s"].mean().mean() if not sub.empty else None
                time_text = _fmt(ours_time)
            else:
                sub = _of(runs, f"{variant}-s{key}")
                ours_time = sub["epoch_s"].mean() if not sub.empty else None
                time_text = mean_std(sub["epoch_s"]) if not sub.empty else "-"
            p_time, p_speed = paper["sparse"].get(key, {}).get(variant, (None, None))
            if key == 0 and variant == "c_cnn":
                p_time, p_speed = paper["baseline"], 1.0
            theo = (base_macs / _num(sub, "macs_nonzero").mean()) if base_macs and not sub.empty else None
            p_base = paper["baseline"] if key == 0 else paper["sparse"].get(key, {}).get("c_cnn", (None,))[0]
            records.append({
                "Sparsity": "Overall" if key == "Overall" else f"{key}%", "Model": name,
                "Time s (paper)": _fmt(p_time), "Speed (paper)": _fmt(p_speed),
                "Time ÷ C-CNN (paper)": _ratio(p_time, p_base),
                "MACs ÷ C-CNN (ours)": _ratio(_num(sub, "macs").mean() if not sub.empty else None, base_macs),
                "Time s (ours)": time_text,
                "Speed (ours)": _fmt(base_time / ours_time) if base_time and ours_time else "-",
                "Theoretical speed-up (ours)": _fmt(theo) if key != "Overall" else "-",
                "Sparsity achieved (ours)": _fmt(_num(sub, "sparsity").mean(), 3) if key != "Overall" else "-",
                "Test acc % (ours)": mean_std(sub["test_acc"]) if key != "Overall" and not sub.empty else "-"})
    notes = _speed_notes(runs, base_time) + [
        "The paper has no 0 % row: its C-CNN baseline (speed 1.00) is shown there; our 0 % rows of the other "
        "variants are unpruned.", _stack_note(published), LR_NOTE]
    return Table(pd.DataFrame(records), notes)


def _batch_rows(variant: str, key, sparsity: int) -> str:
    if key == 128:
        return f"{variant}-s{sparsity}"
    if key == "DBS":
        return f"swr_cnn_dbs-s{sparsity}" if variant == "swr_cnn" else f"{variant}-dbs"
    return f"{variant}-b{key}"


def make_batch_table(runs: pd.DataFrame, published: str) -> Table:
    """Tables 2, 4, 6: time per epoch and speed-up per batch size and with DBS, the paper's beside ours."""
    paper = published_values(published)
    runs = _prepare(runs)
    base = _of(runs, "c_cnn-s0")
    base_time = base["epoch_s"].mean() if not base.empty else None
    base_macs = _num(base, "macs").mean() if not base.empty else None
    records = []
    for key in (*BATCHES, "DBS"):
        for variant in ("c_cnn", "sc_cnn", "swr_cnn"):
            row = _batch_rows(variant, key, paper["sparsity"])
            sub = _of(runs, row)
            p_time, p_speed = paper["batch"][key][variant]
            batches = sorted(set(_num(sub, "config.train.batch_size").dropna().astype(int)))
            records.append({
                "Batch size": key, "Model": VARIANTS[variant] + (" + DBS" if key == "DBS" else ""),
                "Row (ours)": row, "Batch (ours, B0 for DBS)": ", ".join(map(str, batches)) or "-",
                "Time s (paper)": _fmt(p_time), "Speed (paper)": _fmt(p_speed),
                "Time ÷ C-CNN (paper)": _ratio(p_time, paper["batch"][key]["c_cnn"][0]),
                "MACs ÷ C-CNN (ours)": _ratio(_num(sub, "macs").mean() if not sub.empty else None, base_macs),
                "Time s (ours)": mean_std(sub["epoch_s"]) if not sub.empty else "-",
                "Speed (ours)": _fmt(base_time / sub["epoch_s"].mean()) if base_time and not sub.empty else "-",
                "Test acc % (ours)": mean_std(sub["test_acc"]) if not sub.empty else "-"})
    notes = _speed_notes(runs, base_time)[:2] + [
        f"All rows at {paper['sparsity']} % sparsity, as the paper's table. The speed of our DBS rows is their "
        "mean over all epochs, whose batch sizes follow Algorithm 1 (logged per epoch as batch_size).",
        _stack_note(published), LR_NOTE, *one_run_notes(published)]
    return Table(pd.DataFrame(records), notes)


def one_run_notes(published: str) -> list[str]:
    """Where the paper prints two values for what our harness fills from one run: its batch table's 128 and
    DBS rows against its sparsity table's row at the same sparsity, and the text's speed-ups against the table."""
    paper, raw = published_values(published), published_table("zheng", f"{published}/batch")
    sparsity, notes = paper["sparsity"], []
    same = {128: {v: v for v in ("c_cnn", "sc_cnn", "swr_cnn")},
            "DBS": {"c_cnn": None, "sc_cnn": None, "swr_cnn": "swr_cnn_dbs"}}
    for key, variants in same.items():
        for variant, in_sparse in variants.items():
            if in_sparse is None:
                continue
            batch_cell, sparse_cell = paper["batch"][key][variant], paper["sparse"][sparsity][in_sparse]
            if batch_cell != sparse_cell:
                row = _batch_rows(variant, key, sparsity)
                notes.append(f"The paper's {VARIANTS[variant]} at batch {key} ({batch_cell[0]:g} s, "
                             f"{batch_cell[1]:.2f}x) differs from its {VARIANTS[in_sparse]} at {sparsity} % in the "
                             f"sparsity table ({sparse_cell[0]:g} s, {sparse_cell[1]:.2f}x), the same configuration; "
                             f"ours fills both cells from the one row {row}.")
    for variant, quoted in (raw.get("text_dbs_speed") or {}).items():
        table_time, table_speed = paper["batch"]["DBS"][variant]
        if quoted != table_speed:
            notes.append(f"The text quotes DBS speeding up {VARIANTS[variant]} to {quoted:.2f}x; the table prints "
                         f"{table_speed:.2f}x (the paper's baseline / its time: {paper['baseline']:g} / "
                         f"{table_time:g} = {paper['baseline'] / table_time:.2f}). The Speed (paper) column shows "
                         "the table's.")
    return notes


def make_accuracy_figure(runs: pd.DataFrame, published: str, by: str) -> Figure:
    """Figures 2-4 (a: ``by`` sparsity, b: ``by`` batch): our test accuracy, the text's quoted ones as crosses."""
    import matplotlib.pyplot as plt

    if by not in ("sparsity", "batch"):
        raise ConfigError("options.by", by, "sparsity or batch")
    paper = published_values(published)
    runs = _prepare(runs)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = dict(zip(VARIANTS, "osD^"))
    if by == "sparsity":
        xs = (0, *SPARSITIES)
        for variant, name in VARIANTS.items():
            ys = [pd.to_numeric(_of(runs, f"{variant}-s{s}")["test_acc"], errors="coerce").mean() for s in xs]
            line, = ax.plot(xs, ys, marker=markers[variant], label=f"{name} (ours)")
            quoted = [(s, acc) for (v, s), acc in paper["acc_sparse"].items() if v == variant]
            if quoted:
                ax.scatter(*zip(*quoted), marker="x", s=60, color=line.get_color(), label=f"{name} (paper, quoted)")
        ax.set_xlabel("sparsity %")
    else:
        keys = (*BATCHES, "DBS")
        xs = np.arange(len(keys))
        for variant in ("c_cnn", "sc_cnn", "swr_cnn"):
            ys = [pd.to_numeric(_of(runs, _batch_rows(variant, k, paper["sparsity"]))["test_acc"],
                                errors="coerce").mean() for k in keys]
            line, = ax.plot(xs, ys, marker=markers[variant], label=f"{VARIANTS[variant]} (ours)")
            quoted = [(keys.index(k), acc) for (v, k), acc in paper["acc_batch"].items() if v == variant]
            ax.scatter(*zip(*quoted), marker="x", s=60, color=line.get_color(),
                       label=f"{VARIANTS[variant]} (paper, quoted)")
        ax.set_xticks(xs, [str(k) for k in keys])
        ax.set_xlabel(f"batch size (at {paper['sparsity']} % sparsity; DBS starts at 128)")
    ax.set_ylabel("test accuracy % (last epoch)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    notes = ["Lines: our test_acc of the last epoch, mean over seeds; crosses: the accuracies the paper's text "
             "quotes (its figures are not given as numbers).", LR_NOTE]
    return Figure(fig, notes)


def layer2_kernels(model, out_channels: int = 6, in_channels: int = 6):
    """The effective (masked) Winograd-domain kernels of the base member's second conv: (out, in, 4, 4)."""
    from torch import nn

    from harness.layers.winograd import WinogradConv2d

    base = model.members[0] if hasattr(model, "members") else model
    convs = [m for m in base.modules() if isinstance(m, (nn.Conv2d, WinogradConv2d))]
    layer = convs[1]
    if not isinstance(layer, WinogradConv2d):
        raise ValueError(f"layer 2 of this model is {type(layer).__name__}, not a Winograd layer")
    # a pruned layer's ``weight`` attribute is refreshed only by a forward pass: take orig x mask directly
    weight = layer.weight_orig * layer.weight_mask if hasattr(layer, "weight_mask") else layer.weight
    return weight.detach()[:out_channels, :in_channels].cpu().numpy()


def make_figure_5a(runs):
    import matplotlib.pyplot as plt

    uri = runs.attrs.get("tracking_uri")
    shown = [(s, _of(runs, f"swr_cnn_dbs-s{s}")) for s in (0, 60, 80)]
    shown = [(s, sub) for s, sub in shown if not sub.empty]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.4 * max(1, len(shown)), 3.6), squeeze=False)
    notes = ["Layer 2 = the second convolution of the stack's ResNet-32 member (layer1.0.conv1, 3x3 stride 1, a "
             "Winograd layer): its first 6 output x 6 input channels, each a 4x4 Winograd-domain kernel "
             "Prune(G g Gᵀ), zeros white. From the first seed's saved model (train.save_model)."]
    for ax, (s, sub) in zip(axes[0], shown):
        kernels = layer2_kernels(recorded.load_model(sub.sort_values("seed")["run_id"].iloc[0], uri))
        k_out, k_in = kernels.shape[:2]
        grid = np.full((k_out * 5 - 1, k_in * 5 - 1), np.nan)
        for o in range(k_out):
            for i in range(k_in):
                grid[o * 5:o * 5 + 4, i * 5:i * 5 + 4] = kernels[o, i]
        limit = np.nanmax(np.abs(grid)) or 1.0
        masked = np.where(grid == 0, np.nan, grid)
        ax.imshow(masked, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"sparsity {s} % (zeros: {np.mean(kernels == 0):.0%})", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        notes.append(f"{s} %: {np.mean(kernels == 0):.1%} of the shown Winograd weights are zero.")
    if not shown:
        axes[0][0].text(0.5, 0.5, "no swr_cnn_dbs-s0/-s60/-s80 runs", ha="center")
    return Figure(fig, notes)


K_VALUES = tuple(round(1.30 + 0.05 * i, 2) for i in range(10))  # 1.30 ... 1.75


def make_figure_5b(_runs=None):
    import matplotlib.pyplot as plt

    from harness.methods.dbs import K_SCALE, momentum_curve, peak_p

    p = np.linspace(0.0, 0.3, 301)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k in K_VALUES:
        ax.plot(p, momentum_curve(p, k), label=f"k = {k:.2f}", lw=2.0 if k == 1.6 else 1.0)
    ax.plot(p, np.minimum(0.9 + 0.5 * p, 1.0), "k--", lw=0.8, label="k = 0 (reaches 1.00 at 0.20)")
    ax.plot(p, momentum_curve(p, 1.6, k_scale=1.0), "k:", lw=1.0, label="k = 1.60, k_scale = 1")
    ax.set_xlabel("proportion of total epochs (since the momentum phase began)")
    ax.set_ylabel("momentum coefficient")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    peak = {k: (float(momentum_curve(10.0, k)), peak_p(k)) for k in (1.3, 1.6, 1.75)}
    literal = float(momentum_curve(10.0, 1.6, k_scale=1.0))
    notes = ["Analytic (no runs): eqs. 17-18, y'' y = k k_scale with y = 1 - m, y(0) = 0.10, y'(0) = -0.50 per unit "
             "proportion of epochs (Sec. 5.3: with k = 0 the momentum reaches 1.00 at 0.20, the dashed line), solved "
             "by scipy's solve_ivp (harness.methods.dbs.momentum_curve). After y' = 0 the repulsion would push the "
             "momentum down again; it is held at its peak.",
             f"k's unit: k_scale = {K_SCALE} makes k = 1.60 the k of 1.30 ... 1.75 whose un-held ODE curve has the "
             "highest momentum at p = 0.30, Sec. 5.3's choice. Peaks: "
             + ", ".join(f"{m:.4f} at p = {at:.3f} (k = {k})" for k, (m, at) in peak.items())
             + f". Read with k_scale = 1 (dotted) the rise stops at {literal:.4f} at p = {peak_p(1.6, k_scale=1.0):.3f}. "
             "The paper's Figure 5b is not given as numbers."]
    return Figure(fig, notes)
