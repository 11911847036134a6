"""The papers' own (accuracy, cost) pairs, mapped onto a front's objectives.

``published_points(objectives)`` reads analysis/published/ and returns every printed pair whose
accuracy and costs map onto ``objectives`` (all of them), one ``{"label", "source", "paper", "table",
"row", "dataset", <objective>: value}`` per printed row, for the ``published`` argument of the Pareto
table and figure. They were measured elsewhere (the authors' protocol, data and hardware); a front
draws them beside ours and never lets them take part.

How a paper's column maps onto ours (the one place that says it; each paper's module says why):
  top-1 % (a test accuracy)                  -> any accuracy objective (val_acc, test_acc)
  Jiang Tables 4-1 ... 4-8 "FLOPs (M)"       -> ``macs`` (Sec. 4.1.2: multiply-adds; jiang_crnet.py)
  Jiang "Params (M)"                         -> ``params``
  Jin Tables 2.1 / 3.2 "FLOPs"               -> ``macs`` (full-precision multiplications; jin_counts.py)
  Jin "# params"                             -> ``nonzero_params`` (the parameters a variant needs)
  Çallı Table 3.2 "# ops"                    -> ``macs`` (read as multiply-accumulates; calli.py)
  Çallı "# params (M)"                       -> ``params``
Jin's Tables 2.1 and 3.2 count one 224x224 sample, so their points carry "at 224x224" in their source.
"""
from __future__ import annotations

import re
from typing import Iterator, Optional

from .published import table as published_table

ACCURACY_OBJECTIVES = ("val_acc", "test_acc")
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}
JIANG_TABLES = ("4-1", "4-2", "4-3", "4-4", "4-5", "4-6", "4-7", "4-8")
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}


def count(text) -> float:
    """A count as printed: "61.1M", "~13M", "19.6B" -> 61.1e6, 13e6, 19.6e9."""
    match = re.fullmatch(r"~?\s*([0-9.]+)\s*([KMBG]?)", str(text).strip())
    if not match:
        raise ValueError(f"not a printed count: {text!r}")
    return float(match.group(1)) * _SCALE.get(match.group(2), 1.0)


def _records() -> Iterator[dict]:
    """Every printed (accuracy, costs) row: paper, table, row, dataset, accuracy %, costs by our metric name."""
    for key in JIANG_TABLES:
        block = published_table("jiang", key)
        for r in block["rows"]:
            costs = {"params": r["params_m"] * 1e6}
            if r["flops_m"] is not None:
                costs["macs"] = r["flops_m"] * 1e6
            yield {"paper": "Jiang", "table": f"Table {key}", "dataset": block["dataset"], "accuracy": r["top1"],
                   "row": f"{block['network']} exp{r['exp']} g{r['g']} a{r['alpha']} {r['strategy']}",
                   "costs": costs, "where": f"batch {block['batch_size']}"}
    counts = {r["row"]: r for r in published_table("jin", "3.2")["rows"]}
    for r in published_table("jin", "3.1")["rows"]:
        if r["row"] in counts:
            c = counts[r["row"]]
            yield {"paper": "Jin", "table": "Tables 3.1/3.2", "dataset": "cifar10", "accuracy": r["cifar10"],
                   "row": f"AlexNet {r['row']}", "where": "counts at 224x224",
                   "costs": {"macs": count(c["flops"]), "nonzero_params": count(c["params"])}}
    counts = {(r["model"], r["type"]): r for r in published_table("jin", "2.1")["rows"]}
    for r in published_table("jin", "2.2")["rows"]:
        c = counts[(r["model"], r["type"])]
        for dataset in ("mnist", "cifar10"):
            yield {"paper": "Jin", "table": "Tables 2.1/2.2", "dataset": dataset, "accuracy": r[dataset],
                   "row": f"{r['model']} {r['type']}", "where": "counts at 224x224",
                   "costs": {"macs": count(c["flops"]), "nonzero_params": count(c["params"])}}
    for r in published_table("calli", "3.2")["rows"]:
        yield {"paper": "Çallı", "table": "Table 3.2", "dataset": "cifar10", "accuracy": r["top1"],
               "row": r["model"], "where": "", "costs": {"macs": count(r["ops"]), "params": float(r["params_m"]) * 1e6}}


def published_points(objectives: dict, datasets: Optional[tuple] = None, papers: Optional[tuple] = None,
                     tables: Optional[tuple] = None) -> list:
    """Every published pair that fits ``objectives`` (each objective an accuracy or a cost the paper
    printed), optionally only on ``datasets``, from ``papers`` or from ``tables`` (as labelled: "Table 4-1",
    "Tables 3.1/3.2"); labelled paper, table, row, dataset."""
    out = []
    for rec in _records():
        if (datasets and rec["dataset"] not in datasets or papers and rec["paper"] not in papers
                or tables and rec["table"] not in tables):
            continue
        values = {}
        for name in objectives:
            if name in ACCURACY_OBJECTIVES:
                values[name] = rec["accuracy"]
            elif name in rec["costs"]:
                values[name] = rec["costs"][name]
        if len(values) != len(objectives):
            continue
        dataset = DATASET_NAMES.get(rec["dataset"], rec["dataset"])
        out.append({"label": f"{rec['paper']} {rec['table'].replace('Tables ', 'T').replace('Table ', 'T')} "
                             f"{rec['row']} ({dataset})",
                    "source": f"{rec['paper']}, {rec['table']}, {rec['row']}, {dataset}"
                              + (f", {rec['where']}" if rec["where"] else "") + ": measured elsewhere",
                    "paper": rec["paper"], "table": rec["table"], "row": rec["row"], "dataset": rec["dataset"],
                    **values})
    return out
