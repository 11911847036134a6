"""`harness export` and `harness.runs.load_export` (issue 26) on a small store written here with the MLflow
client (no training: seconds), and the bad inputs of `harness export` and `harness site`.

The store holds four runs of the jiang_table_4_9 experiment, made to cover every kind of column an export
keeps (harness/export.py): two finished runs of 3 and 2 epochs, a failed one of 1 epoch, and an infeasible
sample with no epoch; their configs mix an int and a float under one key, a list, a null and a key only
some runs have. The round trip is checked column for column, dtypes included, against
`load_runs(..., history=True)`, and a few cells against the values logged here.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from harness import cli, exportfile as export, runs, tracking
from harness.config import flatten

SWEEP = "jiang_table_4_9"
RUNS = {  # run name -> (status, config, epochs, final metrics)
    "a-seed0": ("FINISHED", {"train": {"epochs": 3, "lr": 0.05}, "sampler": {"name": "flat", "alpha": [0.8]},
                             "model": {"name": "resnet20", "width": None}}, 3, {"test_acc_at_best_val": 61.5, "macs": 1.2e6}),
    "a-seed1": ("FINISHED", {"train": {"epochs": 2, "lr": 1}, "sampler": {"name": "flat", "alpha": [0.8]},
                             "model": {"name": "resnet20", "width": 0.5}}, 2, {"test_acc_at_best_val": 60.0, "macs": 1.2e6}),
    "b-seed0": ("FAILED", {"train": {"epochs": 2, "lr": 0.1}, "sampler": {"name": "full"},
                           "model": {"name": "vgg11", "width": 1.0}}, 1, {}),
    "c-seed0": ("FINISHED", {"train": {"epochs": 2, "lr": 0.1}, "sampler": {"name": "full"},
                             "model": {"name": "vgg11"}}, 0, {"macs": 9.9e9}),
}


def _val_acc(run: int, epoch: int) -> float:
    return 10.0 * run + epoch + 0.25  # a value each (run, epoch) has alone, to find it again


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """Written once for the module (each test only reads it)."""
    from mlflow.entities import Metric, RunTag

    store = f"sqlite:///{tmp_path_factory.mktemp('small_store') / 'mlflow.db'}"
    client = tracking.client(store)
    experiment_id = client.create_experiment(SWEEP)
    for i, (name, (status, config, epochs, final)) in enumerate(RUNS.items()):
        tags = {"mlflow.runName": name, "sweep": SWEEP, "paper": "jiang", "profile": "smoke", "dataset": "digits",
                "row": name.split("-")[0], "seed": name[-1], "device": "cpu (x86_64)", "git_sha": "abc123"}
        if epochs == 0:
            tags["infeasible"] = "true"
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        tracking._log_params(client, run_id, flatten(config))
        for epoch in range(1, epochs + 1):
            client.log_batch(run_id, metrics=[Metric("val_acc", _val_acc(i, epoch), 0, epoch),
                                              Metric("train_loss", 2.0 / epoch, 0, epoch)])
        client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in final.items()],
                         tags=[RunTag("row_index", str(i))])
        client.set_terminated(run_id, status=status)
    return store


def test_load_runs_with_history_is_one_row_per_run_and_epoch(small_store):
    frame = runs.load_runs(SWEEP, small_store, history=True)
    # 3 + 2 + 1 epochs, and one row for the sample without any: 7
    assert len(frame) == 7
    assert frame.groupby("run_name")["epoch"].count().to_dict() == {"a-seed0": 3, "a-seed1": 2, "b-seed0": 1,
                                                                    "c-seed0": 0}
    one = frame[(frame["run_name"] == "a-seed1") & (frame["epoch"] == 2)].iloc[0]
    assert one["epoch.val_acc"] == _val_acc(1, 2) == 12.25 and one["epoch.train_loss"] == 1.0
    assert pd.isna(one["epoch.test_acc"])  # not logged per epoch here
    assert one["test_acc_at_best_val"] == 60.0  # the run's final value on every one of its rows
    assert frame["epoch"].dtype == "Int64"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_export_round_trips_column_for_column(small_store, tmp_path, fmt, capsys):
    out = tmp_path / f"runs.{fmt}"
    assert cli.main(["export", SWEEP, "--out", str(out), "--format", fmt, "--tracking-uri", small_store]) == 0
    assert f"wrote {out}: 7 rows (run x epoch) of 4 runs" in capsys.readouterr().out
    expected = runs.load_runs(SWEEP, small_store, history=True)
    got = runs.load_export(out)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for column in expected:  # the object columns hold the same Python types, not only equal values
        assert [type(v) for v in got[column]] == [type(v) for v in expected[column]], column
    lr = dict(zip(got["run_name"], got["config.train.lr"]))
    assert type(lr["a-seed1"]) is int and type(lr["a-seed0"]) is float  # one key, an int and a float
    assert got.loc[got["run_name"] == "a-seed0", "config.sampler.alpha"].iloc[0] == (0.8,)
    width = dict(zip(got["run_name"], got["config.model.width"]))
    assert width["a-seed0"] is None and pd.isna(width["c-seed0"])  # null, and a key the run lacks
    meta = export.read_metadata(out)
    assert meta["store"] == small_store and meta["rows"] == 7 and meta["harness_version"]
    assert meta["columns"]["config.train.lr"]["kind"] == "json"
    assert meta["columns"]["config.train.epochs"]["kind"] == "int"
    assert meta["columns"]["run_name"]["dtype"] == str(expected["run_name"].dtype)
    import hashlib

    from harness import catalog

    sweep_file = catalog.resolve(SWEEP)[0].path
    assert meta["sweeps"][SWEEP] == {"file": sweep_file.name,
                                     "sha256": hashlib.sha256(sweep_file.read_bytes()).hexdigest()}
    if fmt == "parquet":  # any Parquet reader sees the typed columns and the metadata
        import pyarrow.parquet as pq

        schema = pq.read_schema(out)
        assert str(schema.field("config.train.epochs").type) == "int64"
        assert json.loads(schema.metadata[b"harness"])["format"] == export.FORMAT


def _error(capsys, argv) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err


def test_bad_export_input_is_one_line_before_any_read(small_store, tmp_path, capsys):
    out = str(tmp_path / "x.parquet")
    assert "artifact='no-such-table' is not valid" in _error(
        capsys, ["export", "no-such-table", "--out", out, "--tracking-uri", small_store])
    assert "target=" in _error(capsys, ["export", "--out", out, "--tracking-uri", small_store])  # neither
    assert "target=" in _error(capsys, ["export", SWEEP, "--all", "--out", out, "--tracking-uri", small_store])
    (tmp_path / "a-file").write_text("")
    err = _error(capsys, ["export", SWEEP, "--out", str(tmp_path / "a-file" / "x.parquet"), "--tracking-uri", small_store])
    assert "--out=" in err and "is a file" in err
    assert "--out=" in _error(capsys, ["export", SWEEP, "--out", str(tmp_path), "--tracking-uri", small_store])
    assert "FILE.csv" in _error(capsys, ["export", SWEEP, "--out", out, "--format", "csv", "--tracking-uri", small_store])
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert "tracking_uri=" in _error(capsys, ["export", SWEEP, "--out", out, "--tracking-uri", missing])
    assert not (tmp_path / "nothing.db").exists() and not (tmp_path / "x.parquet").exists()
    with pytest.raises(SystemExit) as e:  # argparse: one line naming the missing flag
        cli.main(["export", SWEEP])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err


def test_bad_site_input_is_one_line_before_any_read(small_store, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    err = _error(capsys, ["site", "--out", str(tmp_path / "a-file"), "--tracking-uri", small_store])
    assert "--out=" in err and "is a file" in err
    assert "--mlflow-url=" in _error(capsys, ["site", "--out", str(tmp_path / "s"), "--mlflow-url", "localhost:5000",
                                              "--tracking-uri", small_store])
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert "tracking_uri=" in _error(capsys, ["site", "--out", str(tmp_path / "s"), "--tracking-uri", missing])
    assert not (tmp_path / "s").exists()
