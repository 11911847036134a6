"""The win map and the technique families on constructed runs (values derived by hand in the comments)."""
from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

from harness_analysis.search_report import families, make_win_map, make_win_map_figure, win_map

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (model, conv, method, sampler, macs, val_acc per seed): family by PAPER_OF
CONFIGS = [
    ("resnet20", "dense", "none", "full", 1e6, [80, 82]),          # baseline, mean 81
    ("crnet_cb", "dense", "none", "full", 1.5e6, [85, 85]),        # Jiang, 85
    ("resnet20", "maxmin", "none", "full", 1e8, [90, 92]),         # Jin, 91
    ("mobilenetv2", "dense", "prune", "full", 0.9e8, [88, 88]),    # Pöllot+Zheng, 88
    ("resnet20", "separable", "dbs", "three_stage", 0.95e8, [70, 70]),  # Jiang+Zheng+Çallı, 70
]


def runs() -> pd.DataFrame:
    rows = []
    for i, (model, conv, method, sampler, macs, accs) in enumerate(CONFIGS):
        for seed, acc in enumerate(accs):
            rows.append({"run_id": f"r{i}{seed}", "val_acc": float(acc), "macs": macs, "config.model.name": model,
                         "config.model.options.conv": conv, "config.method.name": method,
                         "config.sampler.name": sampler, "config.train.seed": str(seed)})
    return pd.DataFrame(rows)


def test_families_name_the_papers_a_configurations_choices_tag():
    tagged = families(runs()).iloc[::2].tolist()
    assert tagged == ["baseline", "Jiang", "Jin", "Pöllot+Zheng", "Jiang+Zheng+Çallı"]


def test_win_map_by_hand():
    # two buckets, log-spaced between 1e6 and 1e8: [1e6, 1e7) and [1e7, 1e8]
    wins = win_map(runs(), buckets=2)
    assert list(wins["low"]) == pytest.approx([1e6, 1e7]) and list(wins["configurations"]) == [2, 3]
    # bucket 0: Jiang's 85 over baseline's 81; bucket 1: Jin's 91 over Pöllot+Zheng's 88 (and 70)
    assert list(wins["winner"]) == ["Jiang", "Jin"] and list(wins["runner_up"]) == ["baseline", "Pöllot+Zheng"]
    assert list(wins["winner_mean"]) == [85.0, 91.0]
    # Jin: 90, 92: s = sqrt(2), t(0.975, 1) = 12.706 x sqrt(2) / sqrt(2) = 12.71
    assert wins["winner_text"].tolist() == ["85.00 ± 0.00 (n=2)", "91.00 ± 12.71 (n=2)"]
    table = make_win_map(runs(), buckets=2)
    assert table.frame["best family"].tolist() == ["Jiang", "Jin"]
    # 85 - 0 <= 81 + 12.71 and 91 - 12.71 <= 88 + 0: neither bucket is ordered by its seeds
    assert any("bucket(s) 0, 1" in n for n in table.notes)
    figure = make_win_map_figure(runs(), buckets=2)
    try:
        assert [t.get_text() for t in figure.figure.axes[0].texts] == ["Jiang", "Jin"]
    finally:
        plt.close(figure.figure)


def check_search_progress(store: str) -> None:
    """The cross-paper smoke search's parent run: after each finished trial, trial_seconds (the trials'
    Tune time_total_s summed) and hypervolume against the default reference (val_acc 0, macs <= 2e7,
    the smoke profile's constraint), which is recomputed here from the trials' own metrics."""
    import json

    from harness import runs as recorded, tracking
    from harness.pareto import hypervolume
    from harness_analysis.search_report import search_progress

    runs = recorded.load_runs("cross_paper_pareto", store, profile="smoke", status="FINISHED")
    runs.attrs["sweep"] = "cross_paper_pareto"
    progress = search_progress(runs)
    assert len(progress) and json.loads(progress["reference_point"].iloc[0]) == {"val_acc": 0.0, "macs": 2.0e7}
    client = tracking.client(store)
    for run_id, line in progress.groupby("parent_run_id"):
        # load_runs leaves MLflow's own tags out: the parent of each trial from the store
        trials = pd.DataFrame([client.get_run(i).data.metrics for i in runs["run_id"]
                               if client.get_run(i).data.tags.get("mlflow.parentRunId") == run_id])
        trained = trials.dropna(subset=["val_acc"])  # infeasible samples never trained: no val_acc
        assert list(line["step"]) == list(range(1, len(line) + 1)) and len(line) == len(trained)
        assert line["trial_seconds"].is_monotonic_increasing and line["hypervolume"].is_monotonic_increasing
        # the last value covers every trial: the same function over the recorded metrics
        expected = hypervolume(trained, {"val_acc": "max", "macs": "min"}, {"val_acc": 0.0, "macs": 2.0e7})
        assert line["hypervolume"].iloc[-1] == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_the_smoke_search_logs_hypervolume_and_trial_seconds_to_its_parent(smoke_all):
    assert smoke_all.rc["cross_paper_pareto"] == (0, 0)
    check_search_progress(smoke_all.store)
