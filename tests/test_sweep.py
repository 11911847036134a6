"""Sweeps end to end: real Ray Tune trials writing real MLflow runs, then the rendered reports.

Every sweep file runs at its smoke profile; the Jiang CIFAR-10 artifact is checked in depth
(runs, tags, per-epoch metrics, status, config artifact, the rendered table beside the paper's).
"""
import json
import time
from pathlib import Path

import pytest
import yaml

from harness import runs as recorded, catalog, cli, tracking
from harness.errors import ConfigError, DatasetNotFound

pytestmark = pytest.mark.slow


def _cli(*argv) -> int:
    return cli.main([str(a) for a in argv])


def test_reproduce_smoke_jiang_table_4_9(ray_session, store, tmp_path, capsys):
    rc = _cli("reproduce", "jiang-table-4-9", "--profile", "smoke", "--tracking-uri", store, "--out",
              tmp_path / "reports", "--quiet")
    out = capsys.readouterr().out
    assert rc == 0, out
    sweep, _ = catalog.resolve("jiang-table-4-9")
    cells = sweep.cells("smoke")
    runs = recorded.load_runs("jiang-table-4-9", store)
    # one run per cell, all finished, none left RUNNING
    assert len(runs) == len(cells) == 6
    assert set(runs["status"]) == {"FINISHED"}
    assert sorted(runs["row"]) == sorted(["Re-impl.", "R1_0.8", "R1_0.618", "R2", "R2_1", "R3"])
    for tag in ("artifact", "paper", "profile", "dataset", "config_digest", "git_sha", "trial_id", "device",
                "torch_version", "mlflow_version", "ray_version"):
        assert runs[tag].notna().all(), tag
    assert set(runs["paper"]) == {"jiang"} and set(runs["profile"]) == {"smoke"} and set(runs["dataset"]) == {"digits"}
    assert sorted(runs["config_digest"]) == sorted(c.digest for c in cells)
    assert set(runs["config.train.epochs"]) == {5}  # the whole resolved config, typed as its config.yaml holds it
    # resnet20 (option A) has 269,722 params on 3-channel input; digits has 1 channel, so the stem
    # conv loses 16 x 2 x 3 x 3 = 288 weights
    assert set(runs["params"]) == {269722 - 288}
    assert (runs["flops"] == 2 * runs["macs"]).all()

    client = tracking.client(store)
    flat = runs[runs["row"] == "R1_0.618"].iloc[0]
    history = client.get_metric_history(flat["run_id"], "batches")
    # digits smoke: 1437 - 64 val -> train_subset 256 images, batch 32: M = 8, floor(0.618 * 8) = 4
    assert sorted(p.step for p in history) == [1, 2, 3, 4, 5]
    assert {p.value for p in history} == {4.0}
    for metric in ("train_loss", "train_acc", "val_acc", "test_acc", "test_acc5", "epoch_time_s",
                   "images_per_s", "samples_seen", "lr", "batch_size"):
        assert [p.step for p in client.get_metric_history(flat["run_id"], metric)] == [1, 2, 3, 4, 5], metric
    cfg_text = Path(client.download_artifacts(flat["run_id"], "config.yaml", str(tmp_path))).read_text()
    assert yaml.safe_load(cfg_text)["sampler"]["alpha"] == [0.618]

    table = (tmp_path / "reports" / "jiang-table-4-9.md").read_text()
    assert "92.53" in table and "26/30" not in table and "1590" in table  # published top-1 and 26 min 30 s
    assert "digits instead of the paper's cifar10" in table
    analysis_table = (tmp_path / "reports" / "jiang-table-4-10.csv").read_text()
    assert "-21.04" in analysis_table and "Corollary 2" in analysis_table
    assert (tmp_path / "reports" / "jiang-figure-4.1.png").stat().st_size > 10_000
    assert (tmp_path / "reports" / "jiang-figure-4.2.pdf").exists()
    assert "Open the MLflow UI" in out

    # a finished store lists its runs in the catalog
    _cli("list", "--json", "--tracking-uri", store)
    listed = {a["id"]: a for a in json.loads(capsys.readouterr().out)}
    assert listed["jiang-table-4-9"]["runs"] == 6 and listed["jiang-table-4-11"]["runs"] == 0
    assert listed["jiang-figure-4.1"]["kind"] == "figure" and listed["jiang-figure-4.1"]["number"] == "4.1"


@pytest.mark.parametrize("sweep_name", sorted(s for s in catalog.all_sweeps() if s != "jiang_table_4_9"))
def test_every_other_sweep_runs_at_smoke(smoke_all, sweep_name):
    """``harness run`` then ``harness report`` of every sweep (conftest's smoke_all, shared with the
    papers' own test modules, which check the contents)."""
    sweep = catalog.all_sweeps()[sweep_name]
    assert smoke_all.rc[sweep_name] == (0, 0)
    runs = recorded.load_runs(sweep_name, smoke_all.store)
    if sweep.is_search:  # one run per sample and axis point (an infeasible sample's is FINISHED, untrained)
        plan = sweep.search_plan("smoke")
        expected = plan.spec.num_samples * len(plan.points)
    else:
        expected = len(sweep.cells("smoke"))
    assert len(runs) == expected and set(runs["status"]) == {"FINISHED"}
    assert set(runs["profile"]) == {"smoke"}
    for a in sweep.artifacts:
        assert list(smoke_all.reports.glob(f"{a.id}.*")), a.id


def test_failed_trial_is_recorded_and_the_sweep_goes_on(ray_session, store, tmp_path, capsys):
    sweep_file = tmp_path / "diverge.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "test_diverge", "paper": "jiang",
        "artifacts": [{"id": "test-diverge", "kind": "table", "number": "0", "title": "t",
                       "report": "harness_analysis.jiang:make_performance_table",
                       "options": {"published": "4-9"}}],
        "base": {"data": {"dataset": "digits", "train_subset": 64, "test_subset": 32, "val_size": 16},
                 "model": {"name": "digits_cnn"}, "train": {"epochs": 2, "batch_size": 32, "save_model": True}},
        "rows": [{"label": "Re-impl.", "config": {}},
                 {"label": "R1_0.8", "config": {"train": {"lr": 1.0e30, "momentum": 0.0}}}],
        "profiles": {"paper": {}, "quick": {}, "smoke": {}}}))
    rc = _cli("run", sweep_file, "--profile", "smoke", "--tracking-uri", store, "--quiet")
    out = capsys.readouterr().out
    assert rc == 1  # one trial failed, the other finished: a failure, not exit 0
    assert "1 trial(s) failed" in out and "TrainingDiverged" in out
    client = tracking.client(store)
    exp = client.get_experiment_by_name("test_diverge")
    runs = {r.data.tags["row"]: r for r in client.search_runs([exp.experiment_id])}
    assert runs["Re-impl."].info.status == "FINISHED"
    assert runs["R1_0.8"].info.status == "FAILED"
    assert "TrainingDiverged" in runs["R1_0.8"].data.tags["failure_reason"]
    # the finished trial's weights come back as a model that reproduces its recorded test accuracy
    model = recorded.load_model(runs["Re-impl."].info.run_id, store)
    assert sum(p.numel() for p in model.parameters()) == runs["Re-impl."].data.metrics["params"]
    from harness.data import DeviceLoader, load
    from harness.train import evaluate

    splits = load("digits", val_size=16, train_subset=64, test_subset=32)
    info = splits.info
    loader = DeviceLoader(splits.test, 64, mean=info.mean, std=info.std, shuffle=False)
    top1, _ = evaluate(model, loader, __import__("torch").device("cpu"))
    assert top1 == pytest.approx(runs["Re-impl."].data.metrics["test_acc"])


def test_unreachable_tracking_server_fails_before_any_trial(store, capsys):
    start = time.perf_counter()
    rc = _cli("run", "jiang-table-4-9", "--profile", "smoke", "--tracking-uri", "http://127.0.0.1:9")
    err = capsys.readouterr().err
    assert rc == 2 and "tracking_uri" in err and "http://127.0.0.1:9" in err
    assert time.perf_counter() - start < 30


def test_missing_dataset_fails_before_ray(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    with pytest.raises(DatasetNotFound) as e:
        sweep, _ = catalog.resolve("jiang-table-4-9")
        from harness.sweep import run_sweep

        run_sweep(sweep, "quick", sweep.cells("quick"), tracking_uri=store)
    assert str(tmp_path / ".cache" / "harness") in str(e.value) and "--set data.download=true" in str(e.value)


def test_unknown_artifact_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        catalog.resolve("jiang-table-9-99")
    assert "jiang-table-4-9" in str(e.value) and "jiang_table_4_13" in str(e.value)
