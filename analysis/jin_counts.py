"""Jin's count tables: Table 2.1 (five models, dense vs Max-Min sparse) and Table 3.2 (AlexNet's
kernel variants), parameters and FLOPs of built models beside the thesis's, with no runs.

Every count builds the sweep row's model with 1,000 classes on torch's meta device (shapes and
counts without memory or arithmetic) and profiles it (harness.measure.profile).

Column mapping, paper -> ours:
  "# params"  -> ``nonzero_params``: the parameters a variant needs (BN's weight and bias
                 included), two per k x k kernel when Max-Min sparse; for a binary kernel, the
                 rule of Table 3.2 below
  "FLOPs"     -> ``macs``: full-precision multiplications ("the number of full-precision
                 multiplications (FLOPs)", Sec. 2.3) of conv and linear layers, two per kernel and
                 output position for a 2-sparse kernel; 1x1 convs stay dense (Sec. 2.5)

Table 2.1 ("for inference on one sample of size 224x224", Sec. 2.5): AlexNet and VGG-19 as
registered match at 224, but for AlexNet's sparse FLOPs (158.0M, -3.1 %). Inception-v3 and the
ResNets do not; for each, ``CANDIDATES`` lists the readings tried (input size, auxiliary head,
shortcut type, stride placement, BN counted, FLOPs = 2 x macs), each counted from a built model,
and ``CHOSEN`` the one the table shows (the closest of those that count BN's parameters, as every
other row does): Inception-v3 at its own 299x299 input, the ResNets with He et al.'s
parameter-free option A shortcuts. The notes give every candidate's error.

Table 3.2, one rule for every row: a binary kernel's full-precision scale (Δ or α*) is absorbed
into the next layer's parameters ("this scale factor can be absorbed into the training
parameters, and this extra multiplication is not necessary", Sec. 3.3), so a binary kernel holds
no full-precision parameter and does no multiplication; its additions are ``binary_adds``, which
the thesis does not tabulate. The table gives every row's miss under that rule, absolute and in %.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from .published import table as published_table
from .report import Table

MODEL_NAMES = {"alexnet": "AlexNet", "vgg19": "VGG19", "inception_v3": "Inception-v3", "resnet18": "ResNet18",
               "resnet50": "ResNet50"}
COUNT_SIZE = 224  # "for inference on one sample of size 224x224" (Sec. 2.5)
COUNT_CLASSES = 1000
AUX_INPUT_299 = (768, 17, 17)  # what Inception-v3's auxiliary head reads (Mixed_6e's output) at 299x299

# Table 2.1: (model, type) -> (# params, FLOPs) as printed
TABLE_2_1 = {(r["model"], r["type"]): (r["params"], r["flops"]) for r in published_table("jin", "2.1")["rows"]}
# Table 3.2: (the thesis's model type, our row label, # params, FLOPs)
TABLE_3_2 = [(r["type"], r["row"], r["params"], r["flops"]) for r in published_table("jin", "3.2")["rows"]]
UNITS = {"K": 1e3, "M": 1e6, "B": 1e9}


def parse_count(text: str) -> tuple[float, float]:
    """'61.1M' -> (61.1e6, 0.05e6): the value and half a unit of its last printed digit."""
    match = re.fullmatch(r"([0-9.]+)([KMB])", text)
    number, unit = match.group(1), UNITS[match.group(2)]
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number) * unit, 0.5 * 10 ** -decimals * unit


def fmt_count(value: float) -> str:
    """With the thesis's suffixes and about its precision: 61.1M, 143.7M, 714.2M, 19.6B."""
    for suffix, unit in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= unit:
            return f"{value / unit:.4g}{suffix}" if abs(value) >= 100 * unit else f"{value / unit:.3g}{suffix}"
    return f"{value:.0f}"


def rounds_to(ours: float, printed: str) -> bool:
    value, half_unit = parse_count(printed)
    return abs(ours - value) <= half_unit + 1e-9 * value


def error(ours: float, printed: str) -> str:
    """Ours relative to the printed value, '=' in front when ours rounds to it: '= (-0.1 %)', '-55.7 %'."""
    rel = (ours / parse_count(printed)[0] - 1) * 100
    return f"= ({rel:+.1f} %)" if rounds_to(ours, printed) else f"{rel:+.1f} %"


def miss(ours: float, printed: str) -> str:
    """The absolute difference ours - printed, with the thesis's suffixes: '-55.4M', '+0'."""
    difference = ours - parse_count(printed)[0]
    return ("+" if difference >= 0 else "-") + fmt_count(abs(difference))


def _sweep_rows(sweep_name: str) -> dict:
    """label -> the row's model name and options, from the sweep file (the counts follow the runs)."""
    from harness import catalog

    sweep = catalog.all_sweeps()[sweep_name]
    base = sweep.base.get("model") or {}
    out = {}
    for row in sweep.rows:
        model = {**base, **((row.get("config") or {}).get("model") or {})}
        options = {**(base.get("options") or {}), **(model.get("options") or {})}
        out[row["label"]] = (model["name"], options)
    return out


def count(name: str, options: dict, size: int = COUNT_SIZE, by_layer: bool = False) -> dict:
    """profile() of ``name`` built with ``options`` at 3 x size x size, 1,000 classes, on the meta device;
    with ``by_layer`` also what the binary layers' scales hold and multiply ("scales", "scale_macs")."""
    import torch

    from harness import models
    from harness.measure import profile

    options = {**options, "num_classes": COUNT_CLASSES, "in_channels": 3, "image_size": size}
    with torch.device("meta"):
        model = models.build(name, **options)
    result = profile(model, (3, size, size), by_layer=by_layer)
    if by_layer:  # a binary layer's nonzero_params beyond its bias are its scales, one per kernel
        result["scales"] = result["scale_macs"] = result["bn_params"] = 0
        for layer in result["layers"]:
            if layer["type"].startswith("BatchNorm"):
                result["bn_params"] += layer["params"]
            if layer["binary_adds"]:
                bias = getattr(model.get_submodule(layer["name"]), "bias", None)
                result["scales"] += layer["nonzero_params"] - (bias.numel() if bias is not None else 0)
                result["scale_macs"] += layer["macs"]
    return result


# ---- Table 2.1 ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """One way to count a Table 2.1 model: model options added to the sweep row's, the input side,
    Inception-v3's auxiliary head (counted at 299 px), BN's parameters counted, FLOPs per MAC."""
    label: str
    options: dict = field(default_factory=dict)
    size: int = COUNT_SIZE
    aux_head: bool = False
    bn_params: bool = True
    flops_per_mac: int = 1


AS_REGISTERED = Reading("as registered, 224 px")
AT_299 = Reading("299 px (Inception-v3's own input)", size=299)
ZERO_PAD = {"shortcut": "zero_pad"}
ZERO_PAD_SHORTCUTS = Reading("zero-pad shortcuts (option A)", ZERO_PAD)
CANDIDATES = {
    "inception_v3": [AS_REGISTERED, Reading("224 px, FLOPs = 2 x macs", flops_per_mac=2),
                     AT_299, Reading("320 px", size=320),
                     Reading("299 px with the auxiliary head", size=299, aux_head=True),
                     Reading("299 px, BN not counted", size=299, bn_params=False)],
    "resnet18": [AS_REGISTERED, Reading("224 px, FLOPs = 2 x macs", flops_per_mac=2),
                 ZERO_PAD_SHORTCUTS, Reading("zero-pad shortcuts, BN not counted", ZERO_PAD, bn_params=False)],
    "resnet50": [AS_REGISTERED, Reading("224 px, FLOPs = 2 x macs", flops_per_mac=2),
                 Reading("stride on the first 1x1 (v1)", {"stride_at": "1x1"}),
                 ZERO_PAD_SHORTCUTS, Reading("zero-pad shortcuts, BN not counted", ZERO_PAD, bn_params=False),
                 Reading("v1 stride, zero-pad shortcuts", {**ZERO_PAD, "stride_at": "1x1"})],
}
# The reading each model's rows show: of the readings that count BN's parameters as every other row
# does, the one with the least sum of |error| over the model's four numbers (tests/test_jin_sweeps.py
# checks it stays so). Not counting BN moves a count by 0.3 % at most (ResNet-50: 53,120 of 22.8M).
CHOSEN = {"alexnet": AS_REGISTERED, "vgg19": AS_REGISTERED, "inception_v3": AT_299,
          "resnet18": ZERO_PAD_SHORTCUTS, "resnet50": ZERO_PAD_SHORTCUTS}


def _aux_head_counts(conv: str) -> dict:
    """torchvision's InceptionAux (1,000 classes) built and profiled at 299 px, with the row's kernel."""
    import torch
    import torchvision

    from harness import layers
    from harness.measure import profile

    with torch.device("meta"):
        head = torchvision.models.inception.InceptionAux(AUX_INPUT_299[0], COUNT_CLASSES)
        head = head if conv == "dense" else layers.convert_convs(head, conv, None)
    return profile(head, AUX_INPUT_299, by_layer=True)


def reading_counts(name: str, options: dict, reading: Reading) -> dict:
    """{"params", "flops"}: the thesis's two columns for the row built with ``options`` under ``reading``."""
    ours = count(name, {**options, **reading.options}, reading.size, by_layer=True)
    params, macs = ours["nonzero_params"], ours["macs"]
    if reading.aux_head:
        aux = _aux_head_counts(options.get("conv") or "dense")
        params, macs = params + aux["nonzero_params"], macs + aux["macs"]
    if not reading.bn_params:
        params -= ours["bn_params"]
    return {"params": params, "flops": macs * reading.flops_per_mac}


def _abs_errors(name: str, counts: dict) -> float:
    """Sum of |relative error| in % over a model's dense and sparse params and FLOPs."""
    return sum(abs(counts[kind][key] / parse_count(TABLE_2_1[(name, kind)][i])[0] - 1) * 100
               for kind in ("dense", "sparse") for i, key in enumerate(("params", "flops")))


def table_2_1_candidates() -> dict:
    """model -> [(reading, {"dense": counts, "sparse": counts}, sum of |error| %)] for every candidate."""
    rows = _sweep_rows("jin_table_2_2")
    out = {}
    for name in MODEL_NAMES:
        out[name] = []
        for reading in CANDIDATES.get(name, [CHOSEN[name]]):
            counts = {kind: reading_counts(*rows[f"{name}-{kind}"], reading) for kind in ("dense", "sparse")}
            out[name].append((reading, counts, _abs_errors(name, counts)))
    return out


def make_table_2_1(runs=None) -> Table:
    """Table 2.1: parameters and FLOPs of the five models, dense vs sparse: at 224x224 as registered
    and under each model's closest reading, with its error against the thesis's numbers."""
    candidates = table_2_1_candidates()
    frame_rows = []
    for name, tried in candidates.items():
        registered = next(counts for reading, counts, _ in tried if reading == AS_REGISTERED)
        chosen = next(counts for reading, counts, _ in tried if reading == CHOSEN[name])
        for kind in ("dense", "sparse"):
            params_paper, flops_paper = TABLE_2_1[(name, kind)]
            frame_rows.append({
                "Model Name": MODEL_NAMES[name], "Model Type": kind,
                "# params (paper)": params_paper, "FLOPs (paper)": flops_paper,
                "224 px as registered: nonzero_params": fmt_count(registered[kind]["params"]),
                "macs": fmt_count(registered[kind]["flops"]),
                "params error": error(registered[kind]["params"], params_paper),
                "FLOPs error": error(registered[kind]["flops"], flops_paper),
                "reading": CHOSEN[name].label,
                "reading: # params": fmt_count(chosen[kind]["params"]),
                "reading: FLOPs": fmt_count(chosen[kind]["flops"]),
                "reading: params error": error(chosen[kind]["params"], params_paper),
                "reading: FLOPs error": error(chosen[kind]["flops"], flops_paper),
                "exact params (reading)": chosen[kind]["params"], "exact FLOPs (reading)": chosen[kind]["flops"]})
    notes = [
        "Each model built with the row's `conv` option of sweep jin_table_2_2, 1,000 classes; '224 px as "
        "registered': torchvision's models (VGG-19 with BN, Inception-v3 without its auxiliary head) at the "
        "224x224 the thesis names. 'reading': of the readings tried that count BN's parameters (as every other row "
        "does), the one with the least sum of |error| over the model's four numbers; errors are ours relative to "
        "the printed value, '=' where ours rounds to it.",
        "FLOPs = full-precision multiplications of conv and linear layers (`macs`): 2 per kernel and output "
        "position for a 2-sparse kernel; 1x1 convs stay dense (Sec. 2.5). `shortcut: zero_pad` is He et al.'s "
        "option A shortcut (input subsampled and zero-filled, no parameters) in place of torchvision's 1x1 "
        "projections.",
    ]
    for name, tried in candidates.items():
        if len(tried) == 1:
            continue
        parts = []
        for reading, counts, total in tried:
            numbers = ", ".join(
                f"{kind} " + " / ".join(f"{fmt_count(counts[kind][key])} {error(counts[kind][key], printed)}"
                                        for key, printed in zip(("params", "flops"), TABLE_2_1[(name, kind)]))
                for kind in ("dense", "sparse"))
            parts.append(f"{reading.label}{' (shown)' if reading == CHOSEN[name] else ''}: {numbers}; "
                         f"sum |error| {total:.1f} %")
        paper = " / ".join(f"{kind} {TABLE_2_1[(name, kind)][0]} / {TABLE_2_1[(name, kind)][1]}"
                           for kind in ("dense", "sparse"))
        notes.append(f"{MODEL_NAMES[name]} (paper {paper}), readings tried, params / FLOPs: " + "; ".join(parts) + ".")
    return Table(pd.DataFrame(frame_rows), notes)


# ---- Table 3.2 ----------------------------------------------------------------------------------

def make_table_3_2(runs=None) -> Table:
    """Table 3.2: AlexNet's parameters and FLOPs for every kernel variant of Table 3.1 at 224x224, under one
    rule (binary scales absorbed, Sec. 3.3), with each row's miss, absolute and in %."""
    rows = _sweep_rows("jin_table_3_1")
    frame_rows, misses, with_scales = [], [], {}  # with_scales: label -> FLOPs error when the scales multiply
    for paper_type, label, params_paper, flops_paper in TABLE_3_2:
        ours = count(*rows[label], by_layer=True)
        params, macs = ours["nonzero_params"] - ours["scales"], ours["macs"] - ours["scale_macs"]
        frame_rows.append({
            "Model Type (paper)": paper_type, "row (ours)": label,
            "# params (paper)": params_paper, "nonzero_params (ours)": fmt_count(params),
            "params miss": miss(params, params_paper), "params error": error(params, params_paper),
            "FLOPs (paper)": flops_paper, "macs (ours)": fmt_count(macs),
            "FLOPs miss": miss(macs, flops_paper), "FLOPs error": error(macs, flops_paper),
            "binary_adds (ours)": fmt_count(ours["binary_adds"]),
            "macs with scales multiplied (not the rule)": fmt_count(ours["macs"]),
            "exact nonzero_params": params, "exact macs": macs})
        if ours["scale_macs"]:
            with_scales[label] = (ours["macs"] / parse_count(flops_paper)[0] - 1) * 100
        for column, value, printed in (("params", params, params_paper), ("FLOPs", macs, flops_paper)):
            if not rounds_to(value, printed):
                misses.append(f"{label} {column} {miss(value, printed)} ({error(value, printed)})")
    notes = [
        "AlexNet at 3x224x224 with 1,000 classes, each row built with the `conv` option of the matching row of "
        "sweep jin_table_3_1 (internal widths 256 ... 2048).",
        "One rule for every row: a binary kernel's full-precision scale (Δ or α*) is absorbed into the training "
        "parameters (Sec. 3.3), so it adds no parameter and no multiplication; `binary_adds` are the binary "
        "kernels' additions, which the thesis does not tabulate. The rule's misses (ours - paper, where ours does "
        "not round to the printed value): " + "; ".join(misses) + ".",
        "Counting the scales instead (one parameter per kernel, one multiplication per kernel and output position: "
        f"the last column) brings the binary sparse row's FLOPs to {with_scales['binary-heuristic']:+.1f} % but puts "
        f"the local binary rows' FLOPs off by {min(v for k, v in with_scales.items() if 'local' in k):+.0f} % to "
        f"{max(v for k, v in with_scales.items() if 'local' in k):+.0f} %: a binary kernel into a wide internal "
        "layer would multiply its scale at every position of every internal channel.",
        "The thesis's FLOPs of the channel-sparse rows grow with the internal width (60.7M ... 64.8M); "
        "full-precision multiplications of a channel-sparse 1x1 layer do not depend on its input width "
        "(2 per output channel and position), so ours stay flat; only `binary_adds` grows (x8 from 256 to 2048, "
        "as Sec. 3.6 says of the additions).",
    ]
    return Table(pd.DataFrame(frame_rows), notes)
