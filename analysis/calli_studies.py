"""Çallı (MSc thesis, 2017): the studies the thesis reports in its text, without a table of their own.

Artifacts, from the sweeps
  calli_section_3_2_1  Sec. 3.2.1: the four convolution alternatives on MNIST ("99 ± 0.3 %" for all)
  calli_section_3_3_1  Sec. 3.3.1 (ImageNet): the separable ResNet-34 (63 % top-1) against ResNet-34
  calli_section_3_3_2  Sec. 3.3.2: pruning the small CIFAR-10 model in training cycles

Column mapping, paper -> ours: top-1 accuracy -> ``test_acc`` of the last epoch (Sec. 3.2.1: mean ±
std and max over seeds; Sec. 3.3.1: the one run); "# ops" -> ``macs`` (multiply-accumulates) of the
built model; the pruning study's "significant amount of nodes" -> ``nodes_frac`` (nodes kept over
the initial ones) and ``params`` / ``macs`` after the last cycle, its "recover the accuracy" ->
``test_acc`` after a cycle's training against ``first_test_acc`` (cycle 1, nothing pruned yet).
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from .published import table as published_table
from .report import Table, mean_std

OPERATIONS = {"convolution": "Convolution (Baseline)", "kernel_composing": "Kernel Composing Conv.",
              "separable": "Separable Convolution", "separable_nonlinear": "Separable Convolution with non-linearity"}
_MNIST = published_table("calli_studies", "3.2.1")["rows"][0]
MNIST_TOP1, MNIST_SPREAD = _MNIST["top1"], _MNIST["spread"]  # 99 ± 0.3 %, every operation
_IMAGENET = {r["row"]: r for r in published_table("calli_studies", "3.3.1")["rows"]}
PRUNING_RESULT = published_table("calli_studies", "3.3.2")["rows"][0]["result"]


def _numbers(runs: pd.DataFrame, metric: str) -> pd.Series:
    return pd.to_numeric(runs[metric], errors="coerce").dropna() if metric in runs else pd.Series(dtype=float)


def _fmt(values: pd.Series, how: str, digits: int = 2) -> str:
    if values.empty:
        return "-"
    return f"{getattr(values, how)():.{digits}f}"


def _datasets(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(set(runs["dataset"].dropna()))) if "dataset" in runs else "-"


def _option(runs: pd.DataFrame, key: str, default: str) -> str:
    values = runs.get(f"config.method.options.{key}", pd.Series(dtype=str)).dropna()
    if values.empty:
        return default
    value = values.iloc[0]  # typed as the run's config.yaml holds it: a list option is a tuple
    return " / ".join(str(v) for v in value) or "none" if isinstance(value, (list, tuple)) else str(value)


# ---- Sec. 3.2.1 ---------------------------------------------------------------------------------------

def make_section_3_2_1(runs: pd.DataFrame) -> Table:
    dataset = _datasets(runs)
    rows, means = [], []
    for label, operation in OPERATIONS.items():
        r = runs[runs["row"] == label]
        acc = _numbers(r, "test_acc")
        if not acc.empty:
            means.append(acc.mean())
        rows.append({"Operation": operation, "row (ours)": label,
                     "top-1 % (paper, MNIST)": f"{MNIST_TOP1} ± {MNIST_SPREAD}",
                     f"top-1 % mean ± std (ours, {dataset})": mean_std(acc),
                     f"top-1 % max (ours, {dataset})": _fmt(acc, "max"),
                     "params (ours)": _fmt(_numbers(r, "params"), "mean", 0),
                     "macs (ours)": _fmt(_numbers(r, "macs"), "mean", 0)})
    notes = [f"The thesis ran MNIST (10 runs per operation, every one {MNIST_TOP1} ± {MNIST_SPREAD} % top-1, 'no "
             f"clearly visible difference'); these runs ran {dataset}."
             + ("" if dataset == "mnist" else " MNIST is not on this machine; Fashion-MNIST (quick profile) is a "
                "harder 28x28 10-class set, so its accuracies sit below 99 % whatever the operation: compare the "
                "spread between operations, not the level."),
             "Spread between operations (max - min of the row means, ours): "
             + (f"{max(means) - min(means):.2f} points over {len(means)} operations" if len(means) > 1 else "-")
             + f"; the thesis's whole range is ± {MNIST_SPREAD}.",
             "Accuracy: last-epoch test_acc. The 2nd and 3rd convolutions are replaced; the first (1 input channel) "
             "stays dense, as in the thesis."]
    return Table(pd.DataFrame(rows), notes)


# ---- Sec. 3.3.1 (ImageNet) --------------------------------------------------------------------------------

def _weighted_layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


def imagenet_counts() -> dict:
    """params, macs, weighted layers and input-layer MACs of both models at 3x224x224, 1,000 classes."""
    import torchvision

    from harness import measure, models

    ours = models.build("calli_resnet34", num_classes=1000, in_channels=3, image_size=224)
    resnet = torchvision.models.resnet34()
    shape = (3, 224, 224)
    stems = {"calli_resnet34": ours.stem, "resnet34": nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu,
                                                                       resnet.maxpool)}
    counts = {}
    for label, model in (("calli_resnet34", ours), ("resnet34", resnet)):
        profile = measure.profile(model, shape)
        counts[label] = {"params": profile["params"], "macs": profile["macs"], "layers": _weighted_layers(model),
                         "stem_macs": measure.profile(stems[label], shape)["macs"]}
    return counts


def make_section_3_3_1(runs: pd.DataFrame) -> Table:
    dataset = _datasets(runs)
    counts = imagenet_counts()
    mine = runs[runs["row"] == "calli_resnet34"]
    acc, acc5 = _numbers(mine, "test_acc"), _numbers(mine, "test_acc5")
    paper_error = _IMAGENET["resnet34"]["top1_error"]
    rows = []
    for label, published in _IMAGENET.items():
        c = counts[label]
        ours = label == "calli_resnet34"
        rows.append({"Model": published["model"], "params M (ours, built)": f"{c['params'] / 1e6:.2f}",
                     "macs G (ours, built)": f"{c['macs'] / 1e9:.3f}", "weighted layers": c["layers"],
                     "input layers macs M": f"{c['stem_macs'] / 1e6:.1f}",
                     "top-1 % (paper)": f"{published['top1']}" if ours else f"{100 - paper_error:.1f} "
                                                                              f"({paper_error} % error)",
                     f"top-1 % (ours, {dataset})": _fmt(acc, "max") if ours else "not trained",
                     f"top-5 % (ours, {dataset})": _fmt(acc5, "max") if ours else "not trained"})
    ratio = counts["resnet34"]["stem_macs"] / counts["calli_resnet34"]["stem_macs"]
    notes = ["Counts at 3x224x224 with 1,000 classes whatever the runs' dataset; ResNet-34 is torchvision's "
             "(He et al.'s 7x7 / 2 stem and max pooling); macs = multiply-accumulates of conv and linear layers.",
             f"Input layers: ours take {ratio:.1f} times fewer MACs than ResNet-34's 7x7 convolution (the thesis: "
             "'about four times'); their widths and strides are our reading (harness/models/calli_resnet.py).",
             "The thesis trained its model once ('a maximum of 63 %') and did not train ResNet-34; its 25.3 % "
             "top-1 error is He et al.'s, quoted in Sec. 2.4.1. Our top-1 is the last epoch's test_acc "
             "(ImageNet's val/ as the test split).",
             "Protocol, our reading of Sec. 2.4.1 (sweep file): SGD without momentum ('gradient descent'), 30 epochs "
             "of 9,931 steps (the thesis's 300k), lr 0.01 / 10 after epochs 15 and 20 (its unassigned steps "
             "200k-250k at 0.0001), weight decay 0.002; RandomResizedCrop with area [0.05, 1] (the Inception "
             "crop's range) and a flip, no brightness / saturation jitter, mean / std normalization in place of "
             "[-1, 1]."]
    if dataset != "imagenet":
        notes.append(f"These runs ran {dataset}, not ImageNet" + (": a generated layout of 4 classes of textures "
                     "that tests the streaming path; its accuracy says nothing of the model's."
                     if "imagenet_generated" in dataset else "."))
    return Table(pd.DataFrame(rows), notes)


# ---- Sec. 3.3.2 ---------------------------------------------------------------------------------------------

def make_section_3_3_2(runs: pd.DataFrame) -> Table:
    dataset = _datasets(runs)
    rows = []
    for label in sorted(runs["row"].unique()):
        r = runs[runs["row"] == label]
        first, final = _numbers(r, "first_test_acc"), _numbers(r, "test_acc_pruned")
        params, initial = _numbers(r, "params"), _numbers(r, "initial_params")
        rows.append({"row": label, "criterion": _option(r, "criterion", "variance"),
                     "band kept": _option(r, "keep", "inside"), "paper": PRUNING_RESULT,
                     "cycles": mean_std(_numbers(r, "cycles"), 1),
                     "converged": _fmt(_numbers(r, "converged"), "mean"),
                     f"test % unpruned (ours, {dataset})": mean_std(first),
                     f"test % as it ends (ours, {dataset})": mean_std(final),
                     "test % after the last retraining": mean_std(_numbers(r, "test_acc")),
                     "nodes kept (fraction)": mean_std(_numbers(r, "nodes_frac"), 3),
                     "params before -> after": f"{_fmt(initial, 'mean', 0)} -> {_fmt(params, 'mean', 0)}",
                     "macs after": _fmt(_numbers(r, "macs"), "mean", 0)})
    notes = ["'test % unpruned': cycle 1's model after training, before any pruning. 'as it ends': the model after "
             "the last cycle's pruning (no retraining after it; equal to the retrained one when that cycle "
             "pruned nothing). 'after the last retraining': the last cycle's model before its pruning.",
             "Nodes: the residual stream's channels (one set per stage: directly connected blocks share them) plus "
             "each block's inner channels; statistics on the validation hold-out (method.options.stats_samples).",
             "The thesis gives no numbers for this study, only its outcome (quoted in 'paper').",
             "A cycle (our reading; the thesis defines none): training from the full learning rate for "
             f"epochs_per_cycle = {_option(runs, 'epochs_per_cycle', '1')} epochs (lr / 10 after cycle epochs "
             f"{_option(runs, 'cycle_milestones', 'none')}), then one pruning; the paper profile restarts the whole "
             "Table 3.2 protocol (227 epochs) each cycle."]
    return Table(pd.DataFrame(rows), notes)
