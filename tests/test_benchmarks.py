"""benchmarks/: each script runs in its tiny ``--quick`` mode and ends with its one JSON line.

Only the line's keys and kinds are checked, never a timing (nothing here is a timed test).
overhead.py and packing.py are left out: each starts Ray and Ray Tune workers (overhead.py also
three fresh Python processes), 20-50 s even at --quick on 2 cores, over this file's 20 s budget;
so are search.py (two searches through run_search in one Ray session: 30-40 s at --quick) and
handwritten_peer.py (three fresh processes that each start Ray: 70-80 s at --quick).
RESULTS.md records their full runs and `python benchmarks/<script>.py --quick` checks them by hand.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_line(capsys, returned: dict, better: str) -> dict:
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == json.loads(json.dumps(returned, default=float))
    assert {"figure", "value", "target", "better", "load", "under_load", "machine"} <= set(line)
    assert line["better"] == better and isinstance(line["value"], (int, float))
    for where in line["load"].values():  # os.getloadavg() before and after each measurement
        assert len(where["before"]) == 3 and len(where["after"]) == 3
    assert {"cpu", "cores", "memory_gib", "device", "python", "torch", "torchvision", "ray", "mlflow", "date",
            "command"} <= set(line["machine"])
    return line


def test_dataloader_quick(capsys):
    line = _check_line(capsys, _script("dataloader").main(["--quick"]), "higher")
    assert line["device_loader_images_per_s"] > 0 and set(line["torchvision_images_per_s"]) == {"0"}


def test_gpu_quick(capsys):
    line = _check_line(capsys, _script("gpu").main(["--quick"]), "lower")
    # --quick times on random images written in the real formats: it needs no dataset on the machine
    assert line["fashion_mnist_source"] == "random images in the idx format"
    for workload in ("resnet56_cifar10", "alexnet_fashion_mnist"):
        settings = line["workloads"][workload]["settings"]
        assert [s["channels_last"] for s in settings][:2] == [False, True]
        assert all(s["steps"] == 1 and s["epoch_s_extrapolated"] > 0 for s in settings)


def test_logging_cost_quick(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    line = _check_line(capsys, _script("logging_cost").main(["--quick"]), "lower")
    assert len(line["mlflow_s"]["log_epoch_s_each"]) == 2  # one log_batch per epoch
    assert line["mlflow_total_s"] < line["trial_wall_s"]


def test_streaming_quick(capsys):
    line = _check_line(capsys, _script("streaming").main(["--quick"]), "higher")
    assert set(line["stream_images_per_s"]) == set(line["torchvision_images_per_s"]) == {"32"}
    assert line["peak_rss_mb"]["stream"]["32"] >= line["peak_pss_mb"]["stream"]["32"] > 0


def test_search_compares_searchers_at_the_least_compute_any_of_them_spent():
    """benchmarks/search.py --mode searchers: each search's hypervolume at a budget of trial-seconds is the
    last one its parent run logged within it (a hypervolume never falls), 0 before its first trial."""
    at_budget = _script("search").at_budget
    curve = [(10.0, 1.0), (20.0, 3.0), (35.0, 4.0)]
    assert [at_budget(curve, b) for b in (5.0, 10.0, 19.9, 20.0, 34.0, 35.0, 99.0)] == [0.0, 1.0, 1.0, 3.0, 3.0, 4.0, 4.0]
