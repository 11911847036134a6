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
