"""Jiang's architecture-reduction artifacts (dissertation Sec. 3.1 and 4.1): CRnet-CB and CRnet-CIB.

Produces (builders named by the sweep files, their parameters the artifacts' ``options``)
  make_results_table(published)       Tables 4-1 ... 4-8: params, MACs and accuracy per setting x
                                      strategy, the published values beside ours
  make_table_3_1, make_table_3_2      the two architectures, regenerated from the built models
                                      (``runs: false``), with params and MACs per stage or block
  make_figure_3_1                     feature maps of the first convolution of a trained ResNet-56
  make_tradeoff_figure(dataset)       beyond the paper: accuracy vs MACs and vs latency (batch 1 and
                                      256) of every strategy and setting on cifar10 or cifar100; the
                                      latency is read from the timed trials of sweep jiang_crnet_latency
  make_table_crnet_exp_g, make_figure_crnet_exp_g
                                      beyond the paper: the strategies over exp {2,4,6,8} x g {2,4,8}
  PUBLISHED                           Tables 4-1 ... 4-8 as analysis/published/jiang.yaml holds them:
                                      (params M, FLOPs M, top-1 %)

How the paper's columns map onto ours
  "Parameter (M)"  -> ``params`` / 1e6: every parameter, BN's affine ones included (Sec. 4.1.2
                      counts "trainable elements")
  "FLOPs (M)"      -> ``macs`` / 1e6: Sec. 4.1.2 defines FLOPs as multiply-adds of one forward pass
                      of one image (after ShuffleNet [31]); ``macs`` counts the multiply-accumulates
                      of conv and linear layers (BN, activations, pooling and additions excluded).
                      Ours are computed from the built model at the paper's input, 3x32x32 with 10
                      (CIFAR-10) or 100 (CIFAR-100) classes, so they do not depend on the runs.
                      They are within 0.06 % (at most 10 k MACs, mostly below) of the published values
                      in all 47 printed profiles of Tables 4-1, 4-3, 4-5 and 4-7 (4-2, 4-4, 4-6, 4-8
                      print the same counts), the gap growing with exp in both networks as if the
                      paper's counter also counted about 15 operations per channel of the last 8x8
                      feature map (its pooling, say); differences between strategies of one setting
                      agree to the tables' rounding (tests/test_crnet.py).
  "Acc. (%)"       -> ``test_acc``: top-1 on the test split after the last epoch (the paper reports
                      the end of training); ours as mean ± std over seeds (n).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from harness import models
from harness.errors import ConfigError
from harness.measure import profile

from .published import table as published_table
from .report import Figure, Table, mean_std

SETTINGS = ((4, 2, 0.5), (6, 2, 0.5), (4, 4, 0.25))  # (exp, g, alpha) in the tables' order
ORDER = {"crnet_cb": ("c1dw-c1dw", "gc-c1dw", "gc-gc", "c1dw-gc"),  # the tables' row order
         "crnet_cib": ("c1dw-c1dw", "c1dw-gc", "gc-gc", "gc-c1dw")}
# The tables' "Compression Strategy" column: which mixed strategy is the CR module depends on the
# block (a bottleneck reduces first, an inverted bottleneck expands first).
ROLE = {"crnet_cb": {"c1dw-c1dw": "Ghost module", "gc-c1dw": "CR module", "gc-gc": "Group Convolution",
                     "c1dw-gc": "Inverse CR"},
        "crnet_cib": {"c1dw-c1dw": "Ghost module", "c1dw-gc": "CR module", "gc-gc": "Group Convolution",
                      "gc-c1dw": "Inverse CR"}}
ROLE_COLORS = {"Ghost module": "tab:blue", "CR module": "tab:red", "Group Convolution": "tab:gray",
               "Inverse CR": "tab:orange"}
NETWORK_LABEL = {"crnet_cb": "CRnet-CB", "crnet_cib": "CRnet-CIB"}
NETWORK_MARKER = {"crnet_cb": "o", "crnet_cib": "s"}
PAPER_INPUT = (3, 32, 32)
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def row_label(exp, g, alpha, strategy) -> str:
    """The sweep files' row label of one (setting, strategy) cell, e.g. exp4_g2_a0.5_gc-c1dw."""
    return f"exp{exp}_g{g}_a{alpha}_{strategy}"


@dataclass(frozen=True)
class Published:
    network: str
    dataset: str
    batch_size: int
    rows: dict  # (exp, g, alpha, strategy) -> (params M, FLOPs M or None, top-1 %)


def _published(key: str) -> Published:
    """Table ``key`` of analysis/published/jiang.yaml, its rows keyed (exp, g, alpha, strategy)."""
    block = published_table("jiang", key)
    rows = {(r["exp"], r["g"], r["alpha"], r["strategy"]): (r["params_m"], r["flops_m"], r["top1"])
            for r in block["rows"]}
    assert list(rows) == [(e, g, a, s) for e, g, a in SETTINGS for s in ORDER[block["network"]]], key
    return Published(block["network"], block["dataset"], block["batch_size"], rows)


# Tables 4-1 ... 4-8 as published: (params M, FLOPs M or None, top-1 %) per (setting, strategy)
PUBLISHED = {key: _published(key) for key in ("4-1", "4-2", "4-3", "4-4", "4-5", "4-6", "4-7", "4-8")}
FIGURE_TABLES = {"cifar10": ("4-1", "4-2", "4-5", "4-6"), "cifar100": ("4-3", "4-4", "4-7", "4-8")}
# Tables 3-1 and 3-2 as printed: the structure the built models are compared with.
TABLE_3_1 = tuple(tuple(r[k] for k in ("layer", "input", "operator", "inner", "exp", "out", "stride", "blocks"))
                  for r in published_table("jiang", "3-1")["rows"])
TABLE_3_2 = tuple(tuple(r[k] for k in ("input", "operator", "inner", "exp", "out", "stride", "se", "dw"))
                  for r in published_table("jiang", "3-2")["rows"])


# ---- counts from the built models ----

def _meta_build(network: str, **options):
    """The model with its tensors on the meta device: shapes without storage, so counting it takes
    a tenth of the time (FlopCounterMode sends real grouped convolutions down a slow path)."""
    import torch

    with torch.device("meta"):
        return models.build(network, **options)


@lru_cache(maxsize=None)
def paper_counts(network: str, exp, g, alpha, strategy: str, num_classes: int = 10, depthwise: str = "strided") -> dict:
    """params and macs of one CRnet at the paper's 3x32x32 input (cached: the tables reuse them);
    ``depthwise`` (crnet_cib only): strided, as trained, or every, Sec. 3.1.2's reading."""
    options = dict(num_classes=num_classes, exp=exp, g=g, alpha=alpha, strategy=strategy)
    if depthwise != "strided":
        options["depthwise"] = depthwise
    return profile(_meta_build(network, **options), PAPER_INPUT)


def depthwise_reading_gaps(number: str) -> list[tuple[float, float]]:
    """For each row of Table ``number`` (a crnet_cib table, 4-5 ... 4-8): (MACs M, params M) that
    Sec. 3.1.2's reading (a depthwise in every C-IBneck) adds to the built model the tables match."""
    pub = PUBLISHED[number]
    gaps = []
    for e, g, a, s in pub.rows:
        ours, every = (paper_counts(pub.network, e, g, a, s, NUM_CLASSES[pub.dataset], d) for d in ("strided", "every"))
        gaps.append(((every["macs"] - ours["macs"]) / 1e6, (every["params"] - ours["params"]) / 1e6))
    return gaps


def _fmt(x, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _shape(t) -> str:
    return "×".join(str(d) for d in t.shape[1:])


# ---- Tables 4-1 ... 4-8 ----

def make_results_table(runs: pd.DataFrame | None, published: str) -> Table:
    """One of Tables 4-1 ... 4-8 (``published``): the published row beside our counts and accuracy per cell."""
    if published not in PUBLISHED:
        raise ConfigError("options.published", published, "one of " + ", ".join(PUBLISHED))
    pub = PUBLISHED[published]
    classes = NUM_CLASSES[pub.dataset]
    groups = runs.groupby("row") if runs is not None and not runs.empty else None
    baseline = {}  # (exp, g, alpha) -> (paper FLOPs, our macs) of the c1dw-c1dw row
    records, as_trained, gaps = [], False, []
    for (e, g, a, s), (p_params, p_flops, p_acc) in pub.rows.items():
        counts = paper_counts(pub.network, e, g, a, s, classes)
        macs = counts["macs"] / 1e6
        if p_flops is not None:
            gaps.append((macs / p_flops - 1) * 100)
        if s == "c1dw-c1dw":
            baseline[(e, g, a)] = (p_flops, macs)
        b_flops, b_macs = baseline[(e, g, a)]
        label = row_label(e, g, a, s)
        group = groups.get_group(label) if groups is not None and label in groups.groups else None
        acc = group["test_acc"].mean() if group is not None else None
        trained_macs = group["macs"].mean() / 1e6 if group is not None and "macs" in group else None
        as_trained |= trained_macs is not None and abs(trained_macs - macs) > 1e-9
        records.append({
            "Setting": f"exp = {e}, g = {g}, α = {a}", "1st-2nd 1×1": s, "Compression strategy": ROLE[pub.network][s],
            "Params M (paper)": _fmt(p_params), "Params M (ours)": _fmt(counts["params"] / 1e6),
            "params (ours)": f"{counts['params']:,}",
            "FLOPs M (paper)": _fmt(p_flops), "MACs M (ours)": _fmt(macs, 4),
            "Δ vs Ghost-module row, M (paper)": _fmt(None if p_flops is None or b_flops is None else p_flops - b_flops,
                                                     signed=True),
            "Δ vs Ghost-module row, M (ours)": _fmt(macs - b_macs, 4, signed=True),
            "MACs M (as trained)": _fmt(trained_macs, 4),
            "Acc % (paper)": _fmt(p_acc),
            "test_acc % (ours)": mean_std(group["test_acc"]) if group is not None else "-",
            "ΔAcc (ours - paper)": _fmt(None if acc is None else acc - p_acc, signed=True),
        })
    frame = pd.DataFrame(records)
    if not as_trained:
        frame = frame.drop(columns=["MACs M (as trained)"])
    notes = [f"Paper: {NETWORK_LABEL[pub.network]} on {pub.dataset} at batch size {pub.batch_size}, one run per row "
             "(Sec. 4.1.3-4.1.4: 160 epochs, SGD momentum 0.9, weight decay 1e-4, lr 0.1 / 10 at epochs 80 and 120).",
             "FLOPs (M) (paper) = `macs` / 1e6 (ours), not `flops` (= 2 × macs): Sec. 4.1.2 defines FLOPs as the "
             "multiply-adds of one forward pass of one image, and `macs` counts the multiply-accumulates of conv and "
             f"linear layers. Params and MACs (ours) are of the built model at the paper's input, 3×32×32 with {classes} "
             f"classes: {min(gaps):+.3f} to {max(gaps):+.3f} % from the published FLOPs; the Δ columns (each row's "
             "MACs minus its setting's Ghost-module row) agree to the tables' rounding. The paper prints no Δ: its "
             "Δ column is the difference of two printed FLOPs values, exact at their 2 decimals.",
             "Accuracy: top-1 on the test split after the last epoch; ours mean ± std over seeds (n)."]
    if as_trained:
        notes.append("MACs M (as trained): the runs' logged `macs` at their dataset's input size and classes.")
    batch_sizes = sorted(set(pd.to_numeric(runs.get("config.train.batch_size", pd.Series(dtype=str)),
                                           errors="coerce").dropna().astype(int))) if groups is not None else []
    if batch_sizes and batch_sizes != [pub.batch_size]:
        notes.append(f"Trained at batch size {', '.join(map(str, batch_sizes))} (this profile's choice, see the sweep "
                     f"file), not the paper's {pub.batch_size}.")
    if pub.network == "crnet_cib":
        gaps = depthwise_reading_gaps(published)
        notes.append("Built with the DW-kernel depthwise only in the two strided C-IBnecks (GhostNet's code); Sec. "
                     "3.1.2's reading, a depthwise in every block (model option depthwise=every), would add "
                     f"{min(g for g, _ in gaps):.2f} to {max(g for g, _ in gaps):.2f} M MACs and "
                     f"{min(p for _, p in gaps):.3f} to {max(p for _, p in gaps):.3f} M parameters to these rows "
                     "(Table 3-2's notes, docs/fidelity.md).")
    lost = published_table("jiang", published).get("lost")
    if lost:
        notes.append(lost)
    return Table(frame, notes)


# ---- Tables 3-1 and 3-2, from the built models ----

def _trace(model, names: list[str]) -> dict:
    """Input and output shapes of the named submodules on one 3x32x32 forward pass."""
    import torch

    seen, handles = {}, []
    modules = dict(model.named_modules())
    for name in names:
        handles.append(modules[name].register_forward_hook(
            lambda m, args, out, name=name: seen.__setitem__(name, (_shape(args[0]), _shape(out)))))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *PAPER_INPUT, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return seen


def _own_counts(layers: list[dict], prefix: str) -> tuple[int, int]:
    inside = [l for l in layers if l["name"] == prefix or l["name"].startswith(prefix + ".")]
    return sum(l["params"] for l in inside), sum(l["macs"] for l in inside)


def _matches(ours: tuple, paper: tuple) -> str:
    differing = [f"{p}" for o, p in zip(ours, paper) if p is not None and str(o) != str(p)]
    return "✓" if not differing else "✗ paper: " + ", ".join(differing)


def make_table_3_1(runs=None) -> Table:
    """Table 3-1 from a built crnet_cb (exp 4, g 2, α 0.5, cr strategy, 10 classes, 3×32×32)."""
    model = _meta_build("crnet_cb", num_classes=10, exp=4, g=2, alpha=0.5, strategy="cr")
    stages = model.stages()
    # each stage, and its first block's reducing 1x1 (inner = its outputs): shapes, not constructor arguments
    names = [n.replace("-", "_") for n, _ in stages]
    shapes = _trace(model, ["conv1"] + names + [f"{n}.0.reduce" for n in names] + ["fc"])
    layers = profile(model, PAPER_INPUT, by_layer=True)["layers"]
    records = []

    def add(layer, inp, operator, inner, exp, out, stride, blocks, kinds, prefix, paper):
        params, macs = _own_counts(layers, prefix) if prefix else (0, 0)
        ours = (layer, inp, operator, inner, exp, out, stride, blocks)
        records.append({"Layer": layer, "Input": inp, "Operator": operator, "Inner": _dash(inner), "Exp": _dash(exp),
                        "Out": _dash(out), "Str": _dash(stride), "#block": _dash(blocks), "1×1s": kinds or "-",
                        "Params": f"{params:,}", "MACs": f"{macs:,}", "= Table 3-1": _matches(ours, paper)})

    stem = model.conv1[0]
    add("conv1", shapes["conv1"][0], "conv3×3", None, None, stem.out_channels, stem.stride[0], None, None, "conv1",
        TABLE_3_1[0])
    for (name, stage), paper in zip(stages, TABLE_3_1[1:5]):
        key = name.replace("-", "_")
        (_, h_in, _), (out, h_out, _) = (tuple(int(v) for v in t.split("×")) for t in shapes[key])
        inner = int(shapes[f"{key}.0.reduce"][1].split("×")[0])
        add(name, shapes[key][0], "C-Bneck", inner, round(out / inner), out, h_in // h_out, len(stage),
            stage[0].compression, key, paper)
    last = shapes[stages[-1][0].replace("-", "_")][1]
    channels = model.fc.in_features
    add("", last, f"avg_pool {last.split('×', 1)[1]}", None, None, channels, None, None, None, None, TABLE_3_1[5])
    add("", shapes["fc"][0] + "×1×1", "fc", None, None, "class", None, None, None, "fc", TABLE_3_1[6])
    total = profile(model, PAPER_INPUT)
    frame = pd.DataFrame(records)
    notes = [f"Built with `models.build('crnet_cb', exp=4, g=2, alpha=0.5, strategy='cr')` at 3×32×32, 10 classes: "
             f"{total['params']:,} params, {total['macs']:,} MACs in all (Table 4-1's CR module row: 0.16 M, 27.36 M).",
             "Input, inner, out, stride and blocks are read off the built modules (input shapes by forward hooks); "
             "Params and MACs are each stage's own (BN included in params; MACs of conv and linear layers).",
             "1×1s: what the CR module chose for the first and second 1×1 of the stage's blocks (gc when a 1×1 "
             "does not expand, c1dw when it does; conv2-1's 16 -> 16 first 1×1 is gc, as the table's footnote says).",
             "Readings not in the text, chosen to reproduce Tables 4-1 to 4-4: the stride is in the 3×3 depthwise "
             "(the first 1×1 of conv3-1 and conv5-1 runs at the input resolution); a block that changes shape has "
             "GhostNet's shortcut (strided 3×3 depthwise + BN, 1×1 + BN); ReLU after the addition, as ResNet."]
    return Table(frame, notes)


def _dash(v):
    return "-" if v is None else v


def _built_cib_row(block, shapes: dict, name: str) -> tuple:
    """(inner, exp, out, stride, SE, DW) of one built C-IBneck, read off its layers and traced shapes,
    not off the arguments it was built with: DW is the kernel of its intermediate depthwise ("-"
    where it has none), SE the squeeze-and-excite's width over the inner channels (0 without one)."""
    from torch import nn

    from harness.layers.crnet import SqueezeExcite

    (c_in, h_in, _), (c_out, h_out, _) = (tuple(int(v) for v in t.split("×")) for t in shapes[name])
    inner = int(shapes[f"{name}.expand"][1].split("×")[0])
    convs = [m for m in block.depthwise.modules() if isinstance(m, nn.Conv2d)]
    dw = convs[0].kernel_size[0] if convs else None
    se = round(block.se.reduced / inner, 2) if isinstance(block.se, SqueezeExcite) else 0
    return inner, round(inner / c_out), c_out, h_in // h_out, se, dw


def make_table_3_2(runs=None, depthwise: str = "strided") -> Table:
    """Table 3-2 from a built crnet_cib (exp 4, g 2, α 0.5, cr strategy, 10 classes, 3×32×32);
    ``depthwise``: the model option (strided, as trained; every, Sec. 3.1.2's reading)."""
    model = _meta_build("crnet_cib", num_classes=10, exp=4, g=2, alpha=0.5, strategy="cr", depthwise=depthwise)
    names = (["conv1"] + [f"blocks.{i}{part}" for i in range(len(model.blocks)) for part in ("", ".expand")]
             + ["conv_last", "conv_head", "fc"])
    shapes = _trace(model, names)
    layers = profile(model, PAPER_INPUT, by_layer=True)["layers"]
    records = []

    def add(inp, operator, inner, exp, out, stride, se, dw, kinds, prefix, paper, layer):
        params, macs = _own_counts(layers, prefix) if prefix else (0, 0)
        ours = (inp, operator, inner, exp, out, stride, se, dw)
        records.append({"Layer": layer, "Input": inp, "Operator": operator, "Inner": _dash(inner), "Exp": _dash(exp),
                        "Out": _dash(out), "Str": _dash(stride), "SE": _dash(se), "DW": _dash(dw),
                        "1×1s": kinds or "-", "Params": f"{params:,}", "MACs": f"{macs:,}",
                        "= Table 3-2": _matches(ours, paper)})

    add(shapes["conv1"][0], "conv 3×3", None, None, model.conv1[0].out_channels, 1, None, None, None, "conv1",
        TABLE_3_2[0], "conv1")
    for i, (block, paper) in enumerate(zip(model.blocks, TABLE_3_2[1:17])):
        add(shapes[f"blocks.{i}"][0], "C-IBneck", *_built_cib_row(block, shapes, f"blocks.{i}"), block.compression,
            f"blocks.{i}", paper, f"C-IBneck {i + 1}")
    last = model.conv_last[0]
    add(shapes["conv_last"][0], "conv 1×1", None, None, last.out_channels, 1, None, None, None, "conv_last",
        TABLE_3_2[17], "conv_last")
    pooled = shapes["conv_last"][1]
    add(pooled, f"avg_pool {pooled.split('×', 1)[1]}", None, None, last.out_channels, None, None, None, None, None,
        TABLE_3_2[18], "")
    add(shapes["conv_head"][0], "conv2d 1×1", None, None, model.conv_head.out_channels, 1, None, None, None,
        "conv_head", TABLE_3_2[19], "conv_head")
    add(shapes["fc"][0] + "×1×1", "fc", None, None, "class", None, None, None, None, "fc", TABLE_3_2[20], "fc")
    total = profile(model, PAPER_INPUT)
    frame = pd.DataFrame(records)
    missing = int(((frame["Operator"] == "C-IBneck") & (frame["DW"] == "-")).sum())
    gaps = depthwise_reading_gaps("4-5")
    built = "" if depthwise == "strided" else f", depthwise='{depthwise}'"
    notes = [f"Built with `models.build('crnet_cib', exp=4, g=2, alpha=0.5, strategy='cr'{built})` at 3×32×32, "
             f"10 classes: {total['params']:,} params, {total['macs']:,} MACs in all (Table 4-5's CR module row: "
             "0.29 M, 23.90 M).",
             "Input, inner, out, stride, SE and DW are read off the built layers (shapes by forward hooks; DW the "
             "kernel of the block's intermediate depthwise, '-' where the block has none; SE the squeeze-and-"
             "excite's width over the inner channels), so ✗ marks a printed value the model does not build. "
             "Params and MACs are each layer's own (BN included in params; MACs of conv and linear layers).",
             f"DW: {missing} of 16 C-IBnecks have no intermediate depthwise. Sec. 3.1.2 says \"The intermediate "
             "layer is a depthwise 3×3 convolution\" and Table 3-2 prints a DW kernel for every block, but the "
             "model as trained (depthwise='strided', GhostNet's code) has it only in the two strided blocks, because "
             "that is what Tables 4-5 to 4-8 count: with the depthwise in every block (depthwise='every', whose "
             f"Table 3-2 matches in every DW cell) each row of Table 4-5 gains {min(g for g, _ in gaps):.2f} to "
             f"{max(g for g, _ in gaps):.2f} M MACs and {min(p for _, p in gaps):.3f} to {max(p for _, p in gaps):.3f} "
             "M parameters, off every printed FLOPs value (docs/fidelity.md, Jiang).",
             "Readings not in the text, chosen to reproduce Tables 4-5 to 4-8 (GhostNet's code): SE width "
             "make_divisible(inner × SE, 4) with biases; a shape-changing block's shortcut is DW depthwise + BN, "
             "1×1 + BN; the last 1×1 has 64 × exp outputs (256 at exp 4) and the 1×1 after pooling has a bias."]
    return Table(frame, notes)


# ---- Figure 3.1 ----

def make_figure_3_1(runs: pd.DataFrame) -> Figure:
    """The first convolution's 16 feature maps of the first seed's trained ResNet-56 for one test image;
    red frames mark the most similar pairs (Pearson r), as the paper's red boxes mark similar maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from harness import data
    from harness.runs import load_model

    run = runs.sort_values("seed").iloc[0]
    model = load_model(run["run_id"], runs.attrs.get("tracking_uri"))
    dataset = run["dataset"]
    root = run.get("config.data.data_root")
    root = None if root in (None, "null") or (isinstance(root, float) and math.isnan(root)) else root
    size = run.get("config.data.image_size")
    size = None if size in (None, "null") or (isinstance(size, float) and math.isnan(size)) else int(size)
    splits = data.load(dataset, data_root=root, val_size=1, train_subset=1, image_size=size)
    info, test = splits.info, splits.test
    # The paper's image is a dog (CIFAR-10 class 5); other datasets show their first test image.
    dogs = (test.labels == 5).nonzero().flatten() if dataset == "cifar10" else torch.tensor([], dtype=torch.long)
    index = int(dogs[0]) if len(dogs) else 0
    image = test.images[index : index + 1].float() / 255
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        maps = first_conv((image - mean) / std)[0].numpy()

    flat = maps.reshape(len(maps), -1)
    corr = np.corrcoef(flat)
    pairs = sorted(((corr[i, j], i, j) for i in range(len(maps)) for j in range(i + 1, len(maps))
                    if np.isfinite(corr[i, j])), reverse=True)[:3]
    framed: dict[int, str] = {}
    for letter, (_, i, j) in zip("abc", pairs):
        framed[i] = framed.get(i, "") + letter
        framed[j] = framed.get(j, "") + letter

    cols = 4
    rows = math.ceil(len(maps) / cols)
    fig = plt.figure(figsize=(2 + 1.6 * cols, 1.6 * rows + 0.4))
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[1.6] + [1] * cols)
    ax = fig.add_subplot(grid[:, 0])
    shown = image[0].permute(1, 2, 0).numpy()
    ax.imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray" if shown.shape[-1] == 1 else None)
    ax.set_title(f"{dataset} test #{index}\nlabel {int(test.labels[index])}", fontsize=8)
    ax.axis("off")
    for k, fmap in enumerate(maps):
        ax = fig.add_subplot(grid[k // cols, 1 + k % cols])
        ax.imshow(fmap, cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{k} ({framed[k]})" if k in framed else str(k), fontsize=7, color="red" if k in framed else "k")
        for spine in ax.spines.values():
            spine.set_edgecolor("red" if k in framed else "white")
            spine.set_linewidth(2.5 if k in framed else 0.5)
    described = "; ".join(f"({letter}) maps {i} and {j}, r = {r:.2f}" for letter, (r, i, j) in zip("abc", pairs))
    notes = [f"Run {run['run_id']} ({run.get('row', '')}, seed {run['seed']}, {run.get('config.model.name', '')}): "
             f"the output of its first convolution ({first_conv.in_channels} -> {first_conv.out_channels}, "
             f"{first_conv.kernel_size[0]}×{first_conv.kernel_size[1]}, before BN and ReLU) for {dataset} test "
             f"image {index}, each map scaled to its own range.",
             f"Red frames: the three most correlated pairs of maps (Pearson r over pixels): {described}."]
    return Figure(fig, notes)


# ---- beyond the paper: accuracy vs MACs and vs measured latency ----

def _dataset_input(dataset: str, image_size) -> tuple[tuple[int, int, int], int]:
    """(C, H, W) and classes of a dataset as the trials built their models for it (its registry entry)."""
    from harness import data

    return data.nominal_shape(dataset, image_size)


def _config_value(runs: pd.DataFrame, column: str):
    values = set(runs.get(column, pd.Series(dtype=str)).dropna()) - {"null", "None"}
    return next(iter(values)) if values else None


LATENCY_SWEEP = "jiang_crnet_latency"  # harness/methods/latency.py trials: every CRnet of the tables, timed


def latency_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs of the latency sweep at the profile of ``runs`` (same store), indexed by
    (row label, dataset); empty when none are recorded."""
    from harness.runs import load_runs

    uri = runs.attrs.get("tracking_uri")
    frame = load_runs(LATENCY_SWEEP, uri, profile=runs["profile"].iloc[0], status="FINISHED") if uri else None
    if frame is None or frame.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["row", "dataset"]))
    return frame.drop_duplicates(["row", "dataset"], keep="last").set_index(["row", "dataset"])


def _sibling_runs(runs: pd.DataFrame, tables: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The finished runs of each table's sweep at the profile of ``runs`` (same MLflow store)."""
    from harness.runs import load_runs

    profile_name = runs["profile"].iloc[0]
    uri = runs.attrs.get("tracking_uri")
    own = set(runs.get("artifact", pd.Series(dtype=str)).dropna())
    found = {}
    for number in tables:
        artifact = f"jiang-table-{number}"
        if any(artifact in a.split(",") for a in own):
            found[number] = runs
        elif uri is not None:
            frame = load_runs(artifact, uri, profile=profile_name, status="FINISHED")
            if not frame.empty:
                found[number] = frame
    return found


def tradeoff_points(runs: pd.DataFrame, tables: tuple[str, ...], batch_sizes=(1, 256)) -> pd.DataFrame:
    """One row per (table, setting, strategy) with runs: accuracy, MACs as trained, and the latency the
    sweep jiang_crnet_latency recorded for the same model at the same dataset's input (NaN without it)."""
    latency = latency_runs(runs)
    rows = []
    for number, frame in _sibling_runs(runs, tables).items():
        pub = PUBLISHED[number]
        dataset = frame["dataset"].iloc[0]
        size = _config_value(frame, "config.data.image_size")
        shape, _ = _dataset_input(dataset, int(size) if size else None)
        for (e, g, a, s), (_, p_flops, p_acc) in pub.rows.items():
            group = frame[frame["row"] == row_label(e, g, a, s)]
            if group.empty:
                continue
            key = (f"{pub.network}_{row_label(e, g, a, s)}", dataset)
            lat = latency.loc[key] if key in latency.index else pd.Series(dtype=object)
            record = {"table": number, "network": pub.network, "batch_size": pub.batch_size, "exp": e, "g": g,
                      "alpha": a, "strategy": s, "role": ROLE[pub.network][s], "dataset": dataset,
                      "input": "×".join(map(str, shape)), "test_acc": group["test_acc"].mean(), "n": len(group),
                      "macs": group["macs"].mean(), "paper_flops_m": p_flops, "paper_acc": p_acc,
                      "device": lat.get("device"), "threads": lat.get("latency_threads"),
                      "torch_version": lat.get("torch_version"),
                      "trained_on": ", ".join(sorted(set(group.get("device", pd.Series(dtype=str)).dropna())))}
            for b in batch_sizes:
                record[f"latency_ms_b{b}"] = float(lat.get(f"latency_s_b{b}", float("nan"))) * 1000
            rows.append(record)
    return pd.DataFrame(rows)


def _latency_note(points: pd.DataFrame) -> str:
    """Where the latency panels' numbers were measured, from the latency runs' tags and metrics."""
    timed = points.dropna(subset=["device"]) if "device" in points else points.iloc[0:0]
    if timed.empty:
        return (f"Latency: no runs of sweep {LATENCY_SWEEP} at this profile, so the latency panels are empty "
                f"(`harness run {LATENCY_SWEEP} --profile <profile>` records them; reports never time anything).")
    where = "; ".join(sorted({f"{r['device']}, {int(float(r['threads']))} thread(s), torch {r['torch_version']}"
                              for _, r in timed.iterrows()}))
    return (f"Latency: recorded by the trials of sweep {LATENCY_SWEEP} (harness/methods/latency.py), forward pass "
            f"only, eval mode, median of 10 (batch 1) or 3 (batch 256) passes after warm-up, on {where}; "
            f"{len(timed)} of {len(points)} points have one. The runs' `device` tag names the machine that "
            "trained them.")


def make_tradeoff_figure(runs: pd.DataFrame, dataset: str) -> Figure:
    """Beyond the paper: accuracy vs MACs and vs recorded latency of every (setting, strategy) of the
    tables on ``dataset`` (cifar10: Tables 4-1, 4-2, 4-5, 4-6; cifar100: 4-3, 4-4, 4-7, 4-8)."""
    if dataset not in FIGURE_TABLES:
        raise ConfigError("options.dataset", dataset, "one of " + ", ".join(FIGURE_TABLES))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    points = tradeoff_points(runs, FIGURE_TABLES[dataset])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), sharey=True)
    panels = (("macs", "MACs (M), as trained", 1e-6), ("latency_ms_b1", "latency at batch 1 (ms)", 1),
              ("latency_ms_b256", "latency at batch 256 (ms)", 1))
    for ax, (column, xlabel, scale) in zip(axes, panels):
        for _, p in points.iterrows():
            filled = p["batch_size"] == 256
            color = ROLE_COLORS[p["role"]]
            ax.scatter(p[column] * scale, p["test_acc"], marker=NETWORK_MARKER[p["network"]], s=45,
                       facecolors=color if filled else "white", edgecolors=color, linewidths=1.5)
            ax.annotate(f"e{p['exp']}g{p['g']}", (p[column] * scale, p["test_acc"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 test accuracy % (ours, mean over seeds)")
    # The paper's points (its FLOPs and accuracy) in the MACs panel, as labelled crosses; on another
    # dataset than ours their accuracies share no scale with ours, and the notes say so.
    on_paper_data = not points.empty and set(points["dataset"]) == {dataset}
    drawn = draw_paper_points(axes[0], FIGURE_TABLES[dataset])
    handles = [Line2D([], [], marker="o", ls="", color=c, label=r) for r, c in ROLE_COLORS.items()]
    handles += [Line2D([], [], marker=m, ls="", mfc="k", mec="k", label=NETWORK_LABEL[n])
                for n, m in NETWORK_MARKER.items()]
    handles += [Line2D([], [], marker="o", ls="", mfc="white", mec="k", label="batch-64 tables (hollow)"),
                Line2D([], [], marker="x", ls="", color="k", label=f"paper (its FLOPs, {dataset})")]
    axes[-1].legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))
    present = sorted(set(points["table"])) if not points.empty else []
    missing = [t for t in FIGURE_TABLES[dataset] if t not in present]
    notes = ["Every (setting, strategy) of Tables " + ", ".join(FIGURE_TABLES[dataset]) + " with recorded runs at this "
             "profile: colour = compression strategy (CR module = the paper's proposal), ○ CRnet-CB, □ CRnet-CIB, "
             "filled = the batch-256 tables, hollow = the batch-64 tables (trained at the batch size of the runs' "
             "profile); labels eXgY = expansion ratio and groups.",
             "MACs are the runs' logged `macs` (their dataset's input); "
             + paper_points_note(drawn, dataset, on_paper_data),
             _latency_note(points)]
    if not points.empty:
        notes.append("Inputs: " + ", ".join(sorted(set(points["dataset"] + " " + points["input"]))) + "; trained on: "
                     + ", ".join(sorted(set(points["trained_on"].dropna()))) + ".")
    if missing:
        notes.append("No runs yet for Tables " + ", ".join(missing) + " at this profile (run their sweeps to add them).")
    return Figure(fig, notes)


# ---- beyond the paper: exp x g ----

EXP_G_NETWORKS = {"CB": "crnet_cb", "CIB": "crnet_cib"}


def exp_g_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (network, strategy, exp, g) with runs: counts at the paper's input and accuracy."""
    frame = runs.copy()
    frame["exp"] = pd.to_numeric(frame["config.model.options.exp"])
    frame["g"] = pd.to_numeric(frame["config.model.options.g"]).astype(int)
    rows = []
    for (label, exp, g), group in frame.groupby(["row", "exp", "g"]):
        short, strategy = label.split("_", 1)
        network = EXP_G_NETWORKS[short]
        exp = int(exp) if float(exp).is_integer() else float(exp)
        counts = paper_counts(network, exp, int(g), None, strategy, 10)
        rows.append({"network": network, "strategy": strategy, "role": ROLE[network][strategy], "exp": exp,
                     "g": int(g), "alpha": 1 / g, "params": counts["params"], "macs": counts["macs"],
                     "test_acc": group["test_acc"].mean(), "test_acc_text": mean_std(group["test_acc"]),
                     "n": len(group), "macs_as_trained": group["macs"].mean()})
    return pd.DataFrame(rows).sort_values(["network", "strategy", "g", "exp"]).reset_index(drop=True)


def make_table_crnet_exp_g(runs: pd.DataFrame) -> Table:
    s = exp_g_summary(runs)
    frame = pd.DataFrame({
        "Network": s["network"].map(NETWORK_LABEL), "1st-2nd 1×1": s["strategy"], "Compression strategy": s["role"],
        "exp": s["exp"], "g": s["g"], "α = 1/g": s["alpha"].map(lambda a: f"{a:g}"),
        "Params M (3×32×32)": (s["params"] / 1e6).map(_fmt), "MACs M (3×32×32)": (s["macs"] / 1e6).map(_fmt),
        "MACs M (as trained)": (s["macs_as_trained"] / 1e6).map(lambda v: _fmt(v, 4)),
        "test_acc % (ours)": s["test_acc_text"],
    })
    notes = ["Not in the paper: Sec. 4.1 tried exp ∈ {4, 6} and (g, α) ∈ {(2, 0.5), (4, 0.25)}; here every strategy "
             "of both networks over exp ∈ {2, 4, 6, 8} × g ∈ {2, 4, 8} with α = 1/g, on the protocol of Tables 4-1 "
             "and 4-5 (batch 256). Rows appear for the cells with recorded runs.",
             "Params and MACs at the paper's 3×32×32 with 10 classes (built models); as trained: the runs' logged "
             "`macs`. Accuracy: top-1 on the test split after the last epoch, mean ± std over seeds (n)."]
    return Table(frame, notes)


def make_figure_crnet_exp_g(runs: pd.DataFrame) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    s = exp_g_summary(runs)
    g_markers = {2: "o", 4: "^", 8: "D"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for ax, network in zip(axes, ("crnet_cb", "crnet_cib")):
        part = s[s["network"] == network]
        for (strategy, g), line in part.groupby(["strategy", "g"]):
            line = line.sort_values("exp")
            color = ROLE_COLORS[ROLE[network][strategy]]
            ax.plot(line["macs"] / 1e6, line["test_acc"], color=color, lw=0.8, alpha=0.6)
            ax.scatter(line["macs"] / 1e6, line["test_acc"], color=color, marker=g_markers.get(g, "o"), s=35)
            for _, p in line.iterrows():
                ax.annotate(f"e{p['exp']}", (p["macs"] / 1e6, p["test_acc"]), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")
        ax.set_title(NETWORK_LABEL[network], fontsize=9)
        ax.set_xlabel("MACs (M) at 3×32×32")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 test accuracy % (mean over seeds)")
    # the paper's own CRnets at batch 256 on CIFAR-10 (Tables 4-1 and 4-5, this sweep's protocol)
    drawn = sum(draw_paper_points(ax, (number,)) for ax, number in zip(axes, ("4-1", "4-5")))
    handles = [Line2D([], [], marker="o", ls="-", color=c, label=r) for r, c in ROLE_COLORS.items()]
    handles += [Line2D([], [], marker=m, ls="", color="k", label=f"g = {g}, α = 1/{g}") for g, m in g_markers.items()]
    handles.append(Line2D([], [], marker="x", ls="", color="k", label="paper (its FLOPs, cifar10)"))
    axes[-1].legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))
    datasets = set(runs["dataset"].dropna()) if "dataset" in runs else {"cifar10"}
    notes = ["Each line joins one strategy at one g over the expansion ratios (labels eN); colour = compression "
             "strategy, marker = g. MACs of the built model at the paper's 3×32×32 input.",
             paper_points_note(drawn, "cifar10", datasets == {"cifar10"})]
    return Figure(fig, notes)


def draw_paper_points(ax, tables: tuple) -> int:
    """The paper's (FLOPs M, top-1 %) of ``tables`` (4-1 ... 4-8) as crosses coloured by strategy, each
    labelled table, setting and strategy; returns how many were drawn."""
    from .published_points import published_points

    points = published_points({"test_acc": "max", "macs": "min"}, papers=("Jiang",),
                              tables=tuple(f"Table {t}" for t in tables))
    for p in points:
        network, exp, g, _, strategy = p["row"].split()
        ax.scatter(p["macs"] / 1e6, p["test_acc"], marker="x", s=25, color=ROLE_COLORS[ROLE[network][strategy]],
                   alpha=0.7)
        ax.annotate(f"{p['table'].split()[-1]} {exp.replace('exp', 'e')}{g} {strategy}",
                    (p["macs"] / 1e6, p["test_acc"]), fontsize=4, xytext=(2, -5), textcoords="offset points",
                    alpha=0.7)
    return len(points)


def paper_points_note(drawn: int, dataset: str, on_paper_data: bool) -> str:
    return (f"Crosses: {drawn} of the paper's (FLOPs, top-1) points, each labelled table, eXgY and strategy: "
            f"measured elsewhere (by the author, on {dataset}, 160 epochs, two GPUs), FLOPs = multiply-adds = our "
            "`macs`" + ("." if on_paper_data else f"; our runs are not on {dataset}, so their accuracies share no "
                                                   "scale with ours: read the paper's points against each other."))
