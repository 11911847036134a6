"""``report: "harness_kd.report:make_table"``: the distillation table, a row per row label (a grid's rows,
a search's sampled configurations).

Columns: the row, its method, alpha and T (blank for a run without distillation), the student's
best validation accuracy and its test accuracy at that epoch (selected on validation, test only
reported), the teacher's validation accuracy, the student's params, and n (the runs, one per seed);
accuracies in percent as mean ± sample std over the row's runs (harness_analysis.report.mean_std).
"""
from __future__ import annotations

import pandas as pd

from harness_analysis.report import Table, mean_std

ALPHA, TEMPERATURE = "config.method.options.alpha", "config.method.options.temperature"


def _setting(group: pd.DataFrame, column: str) -> str:
    values = group[column].dropna().unique() if column in group else []
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def make_table(runs: pd.DataFrame, digits: int = 2) -> Table:
    """One row per row label, in the order the runs were recorded."""
    rows = []
    for label, group in runs.sort_values("start_time").groupby("row", sort=False):
        rows.append({"row": label, "method": _setting(group, "config.method.name"),
                     "alpha": _setting(group, ALPHA), "T": _setting(group, TEMPERATURE),
                     "best_val_acc": mean_std(group["best_val_acc"], digits),
                     "test_acc_at_best_val": mean_std(group["test_acc_at_best_val"], digits),
                     "teacher_val_acc": mean_std(group["teacher_val_acc"], digits) if "teacher_val_acc" in group else "-",
                     "params": _setting(group, "params"), "n": len(group)})
    notes = ["Accuracies in percent (top-1): mean ± sample std over each row's seeds; the epoch is chosen on "
             "validation, test is reported at it. params and macs count the student only; the teacher's "
             "forward passes are inside epoch_time_s, its training in teacher_train_time_s."]
    return Table(pd.DataFrame(rows), notes)
