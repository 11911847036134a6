"""Çallı, *Faster and Lighter Convolutional Neural Networks* (MSc thesis, 2017): pruning,
approximation and convolution alternatives.

Artifacts, from the sweeps
  calli_table_3_1      Table 3.1 (conv alternatives on the baseline model) and the count table of
                       the alternatives (no runs)
  calli_table_3_2      Table 3.2 (the separable residual model vs ResNet-20) and the count table of
                       the block placements the thesis's Figure 2.12 leaves open (no runs)
  calli_approximation  Secs. 3.3.3-3.3.4 as a table: connection pruning, rounding, SVD, int8
  calli_summation      Sec. 3.1.1 as a table: does 2-1000-1 prune to one hidden node?
  calli_figure_3_1     Figure 3.1: autoencoder nodes per layer before and after pruning

Column mapping, paper -> ours:
  "Mean / Max Accuracy" (Table 3.1)  -> ``test_acc`` of the last epoch over seeds (the thesis
                                        reports the CIFAR-10 validation set, i.e. the 10,000 test
                                        images, and names no selection rule)
  "# params" (Table 3.2, millions)   -> ``params`` of the built model at 32x32x3, 10 classes
  "# ops" (Table 3.2)                -> ``macs`` (multiply-accumulates of conv and linear layers):
                                        ResNet-20's 40.6 M MACs match the thesis's "~40M"; ours at
                                        32x32 and at the thesis's 24x24 crops side by side
  "# layers"                         -> weighted layers (conv, depthwise, pointwise, dense)
  "top-1 ac."                        -> max ``test_acc`` over seeds, as the thesis's "maximum of
                                        91.1 % ... in 10 training sessions" (mean ± std beside it)
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from .published import table as published_table
from .report import Figure, Table, mean_std

# The thesis's numbers, from analysis/published/calli.yaml.
# Table 3.1: our row -> (the thesis's operation, mean %, max %)
TABLE_3_1 = {r["row"]: (r["operation"], r["mean"], r["max"]) for r in published_table("calli", "3.1")["rows"]}
# Table 3.2: our row -> (model, # params in millions, # layers, # blocks, # ops, top-1 %)
TABLE_3_2 = {r["row"]: (r["model"], r["params_m"], r["layers"], r["blocks"], r["ops"], r["top1"])
             for r in published_table("calli", "3.2")["rows"]}
BLOCKS = {"calli_cifar": 6, "resnet20": 9}  # residual blocks of each architecture
# Figure 3.1: hidden nodes of the autoencoder before pruning and after (the thesis's best setting)
_FIGURE_3_1 = {r["row"]: tuple(r["nodes"]) for r in published_table("calli", "figure-3.1")["rows"]}
AUTOENCODER_BEFORE, AUTOENCODER_PAPER = _FIGURE_3_1["before"], _FIGURE_3_1["after"]


def _dataset_note(runs: pd.DataFrame, paper_dataset: str) -> str:
    used = sorted(set(runs["dataset"].dropna())) if "dataset" in runs else []
    return ", ".join(used) if used else paper_dataset


def _value(runs: pd.DataFrame, metric: str, how: str = "mean_std", digits: int = 2) -> str:
    if runs.empty or metric not in runs:
        return "-"
    values = pd.to_numeric(runs[metric], errors="coerce").dropna()
    if values.empty:
        return "-"
    if how == "max":
        return f"{values.max():.{digits}f}"
    if how == "mean":
        return f"{values.mean():.{digits}f}"
    return mean_std(values, digits)


# ---- Table 3.1 --------------------------------------------------------------------------------------

def make_table_3_1(runs: pd.DataFrame) -> Table:
    dataset = _dataset_note(runs, "cifar10")
    rows = []
    for label, (operation, mean, best) in TABLE_3_1.items():
        r = runs[runs["row"] == label]
        rows.append({"Model (paper)": operation, "row (ours)": label,
                     "Mean Accuracy % (paper)": f"{mean:.2f}", "Max Accuracy % (paper)": f"{best:.2f}",
                     f"Mean Accuracy % (ours, {dataset})": _value(r, "test_acc", "mean"),
                     f"Max Accuracy % (ours, {dataset})": _value(r, "test_acc", "max"),
                     "ours mean ± std (n)": _value(r, "test_acc"),
                     "params (ours)": _value(r, "params", "mean", 0), "macs (ours)": _value(r, "macs", "mean", 0)})
    notes = ["Accuracy: last-epoch test_acc over seeds (the thesis: 10 runs on the CIFAR-10 validation set, "
             "i.e. its 10,000 test images).",
             "The 2nd and 3rd convolutions are replaced; the first (3 input channels) stays dense, as in the thesis.",
             "Baseline widths 32/64/128 are our reading (the thesis gives them only in Figure 2.9).",
             f"{TRAINING_SET_NOTE} {_held_out_note(runs)}".strip(),
             "Augmentation: Sec. 2.3.4 names none for these runs (its 24x24 crop / flip / brightness-contrast "
             "recipe is stated for the Table 3.2 model only); ours is the harness's CIFAR-10 default, zero-pad 4 "
             "and a random 32x32 crop, a horizontal flip with p = 1/2, per-channel mean/std normalization."]
    return Table(pd.DataFrame(rows), notes)


TRAINING_SET_NOTE = ("Training set: the thesis trains on all 50,000 CIFAR-10 training images (Sec. 2.4.1: '50.000 "
                     "training images and 10.000 validation images') and reports the 10,000 test images; the paper "
                     "profile does the same (data.val_size 0: no held-out split, nothing selected on one).")


def _held_out_note(runs: pd.DataFrame) -> str:
    """What these runs held out of the training split, from their recorded config."""
    held = runs.get("config.data.val_size", pd.Series(dtype=str)).dropna().astype(str)
    subset = runs.get("config.data.train_subset", pd.Series(dtype=str)).dropna().astype(str)
    clauses = [f"these runs held out data.val_size = {', '.join(sorted(set(held)))}" if not held.empty else ""]
    if not subset.empty and set(subset) - {"None", ""}:
        clauses.append(f"kept data.train_subset = {', '.join(sorted(set(subset) - {'None', ''}))} training images")
    text = " and ".join(c for c in clauses if c)
    return (text[0].upper() + text[1:] + ".") if text else ""


def _conv_counts(conv: str, input_shape=(3, 32, 32)) -> dict:
    from harness import measure, models

    model = models.build("calli_baseline", num_classes=10, in_channels=input_shape[0], image_size=input_shape[1],
                         conv=conv)
    return measure.profile(model, input_shape)


def make_conv_counts(_runs=None) -> Table:
    """Params and MACs of the baseline with each alternative (the thesis's cost formulas, Sec. 2.3)."""
    dense = _conv_counts("dense")
    rows = []
    for label, (operation, _, _) in TABLE_3_1.items():
        counts = dense if label == "convolution" else _conv_counts(label)
        rows.append({"Model (paper)": operation, "conv": label, "params": counts["params"], "macs": counts["macs"],
                     "macs / baseline": f"{counts['macs'] / dense['macs']:.3f}"})
    return Table(pd.DataFrame(rows), ["Built at 3x32x32 with 10 classes; macs = multiply-accumulates of conv and "
                                      "linear layers (harness.measure); the thesis tabulates no counts for these."])


# ---- Table 3.2 --------------------------------------------------------------------------------------

def weighted_layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


THESIS_CROP = 24  # Sec. 2.4.1: "We start by taking 24 x 24 random crops" (train and test see 24 x 24)


def _model_counts(name: str, **options) -> dict:
    """params, weighted layers and MACs at 32x32 and at the thesis's 24x24 crops, from the built model."""
    from harness import measure, models

    model = models.build(name, num_classes=10, in_channels=3, image_size=32, **options)
    at32, at24 = measure.profile(model, (3, 32, 32)), measure.profile(model, (3, THESIS_CROP, THESIS_CROP))
    return {"params": at32["params"], "layers": weighted_layers(model), "macs32": at32["macs"], "macs24": at24["macs"]}


def make_table_3_2(runs: pd.DataFrame) -> Table:
    dataset = _dataset_note(runs, "cifar10")
    rows, counts = [], {}
    for label, (name, params, layers, blocks, ops, top1) in TABLE_3_2.items():
        c = counts[label] = _model_counts(label)
        r = runs[runs["row"] == label]
        rows.append({"Model": name, "# params M (paper)": params, "# params M (ours)": f"{c['params'] / 1e6:.3f}",
                     "# layers (paper)": layers, "# layers (ours)": c["layers"],
                     "# blocks (paper)": blocks, "# blocks (ours)": BLOCKS[label],
                     "# ops (paper)": ops, "macs M (ours)": f"{c['macs32'] / 1e6:.1f}",
                     f"macs M at {THESIS_CROP}x{THESIS_CROP} (ours)": f"{c['macs24'] / 1e6:.1f}",
                     "top-1 % (paper)": f"{top1:.2f}", f"top-1 % max (ours, {dataset})": _value(r, "test_acc", "max"),
                     f"top-1 % mean ± std (ours, {dataset})": _value(r, "test_acc")})
    ours, paper = counts["calli_cifar"], TABLE_3_2["calli_cifar"]
    two_each = _model_counts("calli_cifar", blocks=2)
    notes = [f"Counts at 3x32x32 (and 3x{THESIS_CROP}x{THESIS_CROP}, the thesis's crops) with 10 classes whatever the "
             "runs' dataset; '# ops' read as multiply-accumulates.",
             f"Our model (blocks 1 / 2 / 3 per stage, widths 32 / 64 / 128): {ours['params']:,} params against the "
             f"thesis's {paper[1]} M; {ours['layers']} weighted layers (conv, depthwise, pointwise, dense: "
             f"1 + 6 x 4 + 1, the count that gives ResNet-20 its 20) against its {paper[2]}, which no reading of the "
             f"text reaches without a layer it does not describe; {ours['macs32'] / 1e6:.2f} M MACs at 32x32 and "
             f"{ours['macs24'] / 1e6:.2f} M at the thesis's {THESIS_CROP}x{THESIS_CROP} crops "
             f"({2 * ours['macs24'] / 1e6:.2f} M FLOPs = 2 x MACs) against its {paper[4]}.",
             "Block placement: only Figure 2.12's caption is in our copy; 1 / 2 / 3 is the placement of the two "
             f"widening blocks that gives 0.12 M; 2 / 2 / 2 (blocks: 2) gives {two_each['params']:,} params and "
             f"{two_each['macs32'] / 1e6:.2f} M / {two_each['macs24'] / 1e6:.2f} M MACs at 32x32 / "
             f"{THESIS_CROP}x{THESIS_CROP} (table calli-table-3-2-readings).",
             f"{TRAINING_SET_NOTE} {_held_out_note(runs)}".strip(),
             "Augmentation: the thesis takes 24x24 random crops, flips, random brightness and contrast and "
             "per-image standardization (the TensorFlow CIFAR-10 tutorial); ours zero-pads 4 and takes a random "
             "32x32 crop, flips, and normalizes per channel, so our model sees 32x32 images (the MACs above)."]
    return Table(pd.DataFrame(rows), notes)


def _placements(total: int = 6, stages: int = 3):
    """Every way to put ``total`` blocks in ``stages`` stages, each stage at least one block."""
    if stages == 1:
        yield (total,)
        return
    for first in range(1, total - stages + 2):
        for rest in _placements(total - first, stages - 1):
            yield (first, *rest)


def make_cifar_readings(_runs=None) -> Table:
    """Params, layers and MACs of every placement of the six blocks (the widening ones start stages 2
    and 3), linear and non-linear separable, from the built models, beside Table 3.2's counts."""
    _, params, layers, _, ops, _ = TABLE_3_2["calli_cifar"]
    rows = []
    for blocks in _placements():
        for nonlinear in (True, False):
            c = _model_counts("calli_cifar", blocks=list(blocks), nonlinear=nonlinear)
            rows.append({"blocks per stage": " / ".join(map(str, blocks)), "nonlinear": nonlinear,
                         "params": c["params"], "params M": f"{c['params'] / 1e6:.2f}",
                         "weighted layers": c["layers"], "macs M at 32x32": f"{c['macs32'] / 1e6:.2f}",
                         f"macs M at {THESIS_CROP}x{THESIS_CROP}": f"{c['macs24'] / 1e6:.2f}",
                         "ours": "yes" if blocks == (1, 2, 3) and nonlinear else ""})
    return Table(pd.DataFrame(rows), [
        f"Thesis (Table 3.2): {params} M params, {layers} layers, {ops} ops. Widths 32 / 64 / 128; the first block of "
        "stages 2 and 3 halves the map and doubles the channels (Figure 2.12's 'light green blocks').",
        "Built at 3x32x32 and 3x24x24 with 10 classes; macs = multiply-accumulates of conv and linear layers "
        "(harness.measure). Readings outside the model's options (biases, projections, a second dense layer) "
        "are measured in docs/fidelity.md."])


# ---- approximation (Secs. 3.3.3-3.3.4) --------------------------------------------------------------

def make_approximation(runs: pd.DataFrame) -> Table:
    rows = []
    for label in sorted(runs["row"].unique()):
        r = runs[runs["row"] == label]
        rows.append({"row": label,
                     "prune threshold (x std)": _option(r, "prune_threshold", "0.0"),
                     "error threshold": _option(r, "error_threshold", "0.1"),
                     "fp32 test %": _value(r, "fp32_test_acc"), "approximated test %": _value(r, "approx_test_acc"),
                     "pruned weights": _value(r, "pruned_weights_frac", digits=3),
                     "factorized / factorizable layers": f"{_value(r, 'factorized_layers', 'mean', 1)} / "
                                                         f"{_value(r, 'factorizable_layers', 'mean', 0)}",
                     "macs": _value(r, "macs", "mean", 0), "approximated macs": _value(r, "approx_macs", "mean", 0),
                     "int8 test %": _value(r, "int8_test_acc"),
                     "fp32 latency ms": _ms(r, "fp32_latency_s"), "int8 latency ms": _ms(r, "int8_latency_s"),
                     "int8 speed-up": _value(r, "int8_speedup")})
    notes = ["The thesis (Sec. 3.3.3): 'we could not find any factorization that would make this model faster "
             "while preserving the accuracy'; (Sec. 3.3.4) 8-bit quantization 'slowed down the inference speed by "
             "almost half' with no significant change in accuracy (TensorFlow 1.2).",
             "Error threshold: relative squared error of the low-rank weight; a layer is factorized only when the "
             "rank it needs saves MACs (eq. 2.1). Latency: CPU, one thread, median of 10 passes of a batch of "
             "method.options.latency_batch images; int8 = torch.ao.quantization FX post-training static (x86).",
             "Test accuracies of the approximated models are measured on the CPU in fp32 (int8 for the quantized one)."]
    return Table(pd.DataFrame(rows), notes)


def _ms(runs: pd.DataFrame, metric: str) -> str:
    if metric not in runs:
        return "-"
    values = pd.to_numeric(runs[metric], errors="coerce").dropna() * 1000
    return mean_std(values, 3) if not values.empty else "-"


# ---- summation pruning (Sec. 3.1.1) -------------------------------------------------------------------

SUMMATION_PAPER = {r["row"]: r["result"] for r in published_table("calli", "summation")["rows"]}


def make_summation(runs: pd.DataFrame) -> Table:
    rows = []
    for label in sorted(runs["row"].unique()):
        r = runs[runs["row"] == label]
        distorted = float(_option(r, "distortion", "0")) > 0
        reached = pd.to_numeric(r.get("one_node", pd.Series(dtype=float)), errors="coerce").dropna()
        rows.append({"row": label, "criterion": _option(r, "criterion", "variance"),
                     "distortion": "yes" if distorted else "no",
                     "regularization": _option(r, "regularization", "none"),
                     "paper": SUMMATION_PAPER["distortion" if distorted else "none"],
                     "hidden nodes at the end (ours)": _value(r, "nodes_1", "mean_std", 1),
                     "reached one node (ours)": f"{int(reached.sum())} of {len(reached)}" if len(reached) else "-",
                     "cycles": _value(r, "cycles", "mean_std", 1), "converged (a cycle pruned nothing)":
                         _value(r, "converged", "mean", 2),
                     "test RMSE": _value(r, "test_rmse", "mean_std", 4)})
    notes = ["2 -> hidden -> 1 with ReLU, y = x1 + x2 with inputs uniform in [0, 1); RMSE; momentum optimizer "
             "(lr and momentum from train.*); pruning bound 'zero' (never active / zero variance), as the thesis's "
             "fixed threshold of 0.",
             "'converged' is 1 when a cycle pruned nothing (the thesis's stop rule); otherwise the run hit train.epochs "
             "cycles. Distortion: Gaussian noise of method.options.distortion x std of each weight tensor between "
             "cycles (our reading)."]
    return Table(pd.DataFrame(rows), notes)


def _option(runs: pd.DataFrame, key: str, default: str) -> str:
    """A method option as recorded (MLflow params hold the options a sweep sets; absent ones have their default)."""
    values = runs.get(f"config.method.options.{key}", pd.Series(dtype=str)).dropna()
    return str(values.iloc[0]) if not values.empty else default


# ---- Figure 3.1 ------------------------------------------------------------------------------------------

def make_figure_3_1(runs: pd.DataFrame) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(runs["row"].unique())
    fig, ax = plt.subplots(figsize=(7, 3.5))
    layers = ["input", "conv 1", "conv 2", "deconv 3", "output"]
    before = [1, *(_initial_widths(runs)), 1]
    ax.plot(layers, before, "k--o", label="before pruning")
    ax.plot(layers, [1, *AUTOENCODER_PAPER, 1], "r-s", label="thesis after pruning (MNIST, 10 ± 4 cycles)")
    for label in labels:
        r = runs[runs["row"] == label]
        nodes = [pd.to_numeric(r.get(f"nodes_{i}", pd.Series(dtype=float)), errors="coerce").mean() for i in (1, 2, 3)]
        cycles = pd.to_numeric(r.get("cycles", pd.Series(dtype=float)), errors="coerce").mean()
        rmse = pd.to_numeric(r.get("test_rmse", pd.Series(dtype=float)), errors="coerce").mean()
        ax.plot(layers, [1, *nodes, 1], "-^", label=f"ours: {label} ({cycles:.0f} cycles, RMSE {rmse:.3f}, n={len(r)})")
    ax.set_yscale("log", base=2)
    ax.set_ylabel("nodes (channels)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    dataset = _dataset_note(runs, "mnist")
    return Figure(fig, [f"Ours on {dataset}; nodes after the last cycle, mean over seeds.",
                        "Before pruning: the widths the runs started from (method.options.widths)."])


def _initial_widths(runs: pd.DataFrame) -> tuple:
    values = runs.get("config.method.options.widths", pd.Series(dtype=object)).dropna()
    widths = values.iloc[0] if not values.empty else None  # typed: the run's config.yaml (harness.runs)
    return tuple(widths) if isinstance(widths, (list, tuple)) and len(widths) == 3 else AUTOENCODER_BEFORE
