"""Paper-scale data (issue 14): ``data.loader`` chosen from the declared sizes and a budget, the line the
driver prints, the Trainer on both paths with the loader's tags and its dataset as an MLflow input,
``train.precision`` tagged and stated in reports, MLflow's system metrics, and Jiang's Tables
4-13/4-14 end to end at smoke through the streaming path on a generated ImageNet layout."""
from __future__ import annotations

import time

import pandas as pd
import pytest
import torch

from harness import checks, data, tracking
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.train import Trainer

GB = 10**9


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    """A generated ImageNet layout of real JPEGs: 4 classes, 12 training and 4 validation images each."""
    from harness.data import layout

    root = tmp_path_factory.mktemp("generated")
    layout.main(["--out", str(root / "imagenet"), "--classes", "4", "--per-class", "12", "--val-per-class", "4",
                 "--size", "48x40"])
    return root


def _data(**kw):
    return RunConfig.from_dict({"data": kw}).data


def test_the_resident_need_comes_from_the_declared_sizes():
    # ILSVRC-2012 at 224 px: (1,281,167 - 10,000 held out + 10,000 val + 50,000 test) x 3 x 224 x 224
    d = _data(dataset="imagenet", val_size=10000, image_size=224)
    assert data.specs.resident_bytes(d) == (1281167 + 50000) * 3 * 224 * 224
    assert data.choose_loader(d, 100 * GB).loader == "stream"
    # the quick subset: 5,000 + 500 + 2,000 images at 64 px fit, so auto keeps them resident
    quick = _data(dataset="imagenet", val_size=500, train_subset=5000, test_subset=2000, image_size=64)
    assert data.specs.resident_bytes(quick) == 7500 * 3 * 64 * 64
    assert data.choose_loader(quick, 100 * GB).loader == "resident"
    # CIFAR upsampled to 224 keeps its 32-px split and resizes per batch on the device
    cifar = _data(dataset="cifar10", image_size=224)
    assert data.choose_loader(cifar, 100 * GB).resize_on == "device"
    assert data.specs.resident_bytes(cifar) == 60000 * 3 * 32 * 32
    assert data.specs.resident_bytes(_data(dataset="cifar10", image_size=224, resize_on="load")) == 60000 * 3 * 224 * 224


def test_auto_streams_when_the_budget_is_small_and_resident_that_cannot_fit_is_refused():
    tiny = _data(dataset="imagenet", train_subset=100, test_subset=50, val_size=10, image_size=32,
                 resident_max_gb=1e-6)
    assert data.budget_bytes(tiny, "cpu") == 1000
    assert data.choose_loader(tiny, data.budget_bytes(tiny, "cpu")).loader == "stream"
    with pytest.raises(ConfigError) as e:
        data.choose_loader(_data(dataset="imagenet", loader="resident", resident_max_gb=1.0), GB)
    assert e.value.key == "data.loader" and "200.4 GB" in str(e.value) and "1.0 GB" in str(e.value)
    # a dataset that cannot stream stays resident under auto, and says why
    digits = data.choose_loader(_data(dataset="digits", resident_max_gb=1e-6), 1000)
    assert digits.loader == "resident" and "cannot stream" in digits.line(0)


def test_the_driver_prints_one_line_per_dataset_and_loader():
    paper = RunConfig.from_dict({"data": {"dataset": "imagenet", "val_size": 10000, "image_size": 224,
                                          "resident_max_gb": 100.0}}).to_dict()
    again = RunConfig.from_dict({"data": {"dataset": "imagenet", "val_size": 10000, "image_size": 224,
                                          "resident_max_gb": 100.0}, "train": {"seed": 1}}).to_dict()
    small = RunConfig.from_dict({"data": {"dataset": "digits", "resident_max_gb": 1.0}}).to_dict()
    assert checks.check_loaders([paper, again, small], cpus_per_trial=12) == [
        "imagenet: stream (decoded splits 200.4 GB > budget 100.0 GB), 11 workers per trial",
        "digits: resident (decoded splits 0.1 MB <= budget 1.0 GB)"]
    workers = RunConfig.from_dict({"data": {"dataset": "imagenet", "num_workers": 3, "resident_max_gb": 1.0}}).to_dict()
    assert checks.check_loaders([workers], cpus_per_trial=1)[0].endswith(", 3 workers per trial")


def test_gpu_only_settings_are_refused_for_a_cpu_trial():
    fp16 = RunConfig.from_dict({"train": {"precision": "fp16"}}).to_dict()  # device auto, no GPU given
    with pytest.raises(ConfigError) as e:
        checks.check_loaders([fp16], 1, gpus_per_trial=0)
    assert e.value.key == "train.precision"
    nvjpeg = RunConfig.from_dict({"data": {"dataset": "imagenet", "decode_on_device": True}}).to_dict()
    with pytest.raises(ConfigError) as e:
        checks.check_loaders([nvjpeg], 1, gpus_per_trial=0)
    assert e.value.key == "data.decode_on_device"


def _trainer(root, **data_kw):
    cfg = RunConfig.from_dict({
        "data": {"dataset": "imagenet", "data_root": str(root), "val_size": 8, "image_size": 32, **data_kw},
        "model": {"name": "mobilenetv2", "options": {"width": 0.25}},
        "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "precision": "bf16"},
        "sampler": {"name": "flat", "alpha": [0.5]}})
    seen = []
    return Trainer(cfg, threads=1, on_data=lambda tags, dataset: seen.append((tags, dataset))), seen


def test_the_trainer_streams_a_generated_imagenet_with_the_recipe_and_tags(imagenet_root):
    trainer, seen = _trainer(imagenet_root, resident_max_gb=1e-6)
    tags, dataset = seen[0]
    assert type(trainer.train_loader).__name__ == "StreamLoader"
    assert tags["loader"] == "stream" and tags["stored_bytes"] == "0" and tags["budget_bytes"] == "1000"
    assert int(tags["resident_bytes"]) == (1281167 + 50000) * 3 * 32 * 32  # nominal: the declared release
    assert dataset["splits"] == {"train": 40, "val": 8, "test": 16} and dataset["loader"] == "stream"
    x, y = next(trainer.train_loader.epoch(1))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert next(trainer.val_loader.epoch(0))[0].shape == (8, 3, 32, 32)
    history = {}
    result = trainer.run(lambda epoch, metrics: history.setdefault(epoch, metrics))
    assert [history[e]["batches"] for e in (1, 2)] == [2, 2]  # flat sampler: floor(0.5 * 5) batches
    assert history[2]["corrupt_skipped"] == 0 and history[2]["data_time_s"] > 0
    assert result.final["params"] > 0


def test_the_same_config_resident_reads_the_same_samples(imagenet_root):
    stream, seen_stream = _trainer(imagenet_root, loader="stream")
    resident, seen_resident = _trainer(imagenet_root, loader="resident", resident_max_gb=10.0)  # nominal: 4.1 GB
    assert type(resident.train_loader).__name__ == "DeviceLoader"
    assert seen_resident[0][0]["loader"] == "resident"
    assert int(seen_resident[0][0]["stored_bytes"]) == (40 + 8 + 16) * (3 * 32 * 32 + 8)  # uint8 images, int64 labels
    # one digest for one choice of samples: both paths hold out and subset the same images
    assert seen_stream[0][1]["digest"] == seen_resident[0][1]["digest"]
    # the same (seed, epoch) visits the same samples in the same order on both paths
    for epoch in (1, 3):
        assert torch.equal(next(stream.train_loader.epoch(epoch))[1], next(resident.train_loader.epoch(epoch))[1])


def test_fp16_on_a_cpu_device_is_refused_by_the_trainer(imagenet_root):
    cfg = RunConfig.from_dict({"data": {"dataset": "digits"}, "train": {"precision": "fp16"}})
    if torch.cuda.is_available():
        pytest.skip("auto is a GPU here")
    with pytest.raises(ConfigError) as e:
        Trainer(cfg)
    assert e.value.key == "train.precision"


def test_log_data_is_read_back_as_the_runs_dataset_input(store):
    uri = tracking.resolve_uri(store)
    experiment = tracking.ensure_experiment(uri, "paper_scale")
    run = tracking.TrialRun(uri, experiment, "cell-0", {"data": {"dataset": "imagenet"}},
                            {"trial_id": "t0", "precision": "fp32"})
    dataset = {"name": "imagenet", "source": "/data/imagenet", "digest": "0123456789abcdef",
               "splits": {"train": 40, "val": 8, "test": 16}, "loader": "stream", "image_size": 32, "num_classes": 4}
    run.log_data({"loader": "stream", "resident_bytes": "123", "stored_bytes": "0", "resize_on": "load"}, dataset)
    run.log_data({"loader": "stream"}, dataset)  # a retried trial logs it again: still one input
    got = tracking.client(uri).get_run(run.run_id)
    assert got.data.tags["loader"] == "stream" and got.data.tags["precision"] == "fp32"
    inputs = got.inputs.dataset_inputs
    assert len(inputs) == 1
    entity = inputs[0].dataset
    assert (entity.name, entity.digest, entity.source_type) == ("imagenet", "0123456789abcdef", "local")
    assert "/data/imagenet" in entity.source
    assert '"splits": {"test": 16, "train": 40, "val": 8}' in entity.profile and '"loader": "stream"' in entity.profile
    assert [(t.key, t.value) for t in inputs[0].tags] == [("mlflow.data.context", "training")]


def test_system_metrics_are_sampled_while_the_trial_trains(store):
    uri = tracking.resolve_uri(store)
    experiment = tracking.ensure_experiment(uri, "paper_scale")
    run = tracking.TrialRun(uri, experiment, "cell-0", {}, {"trial_id": "t1"})
    run.start_system_metrics(interval_s=0.2)
    time.sleep(1.5)
    run.stop_system_metrics()
    history = tracking.client(uri).get_metric_history(run.run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2 and all(0 <= m.value <= 100 * 64 for m in history)
    metrics = tracking.client(uri).get_run(run.run_id).data.metrics
    assert "system/system_memory_usage_megabytes" in metrics and metrics["system/system_memory_usage_megabytes"] > 0


def test_every_report_states_precision_and_loader():
    from harness_analysis.report import training_note

    runs = pd.DataFrame({"precision": ["fp32", "fp32", "bf16"], "loader": ["resident", "resident", "stream"],
                         "dataset": ["digits", "digits", "imagenet"]})
    assert training_note(runs) == "Trained in bf16 on the stream loader (imagenet); fp32 on the resident loader (digits)."
    assert training_note(pd.DataFrame({"precision": ["fp32"], "dataset": ["digits"]})) == "Trained in fp32 (digits)."
    assert training_note(pd.DataFrame({"dataset": ["digits"]})) == ""  # runs recorded before precision was tagged


@pytest.mark.slow
def test_jiang_tables_4_13_and_4_14_stream_a_generated_imagenet_end_to_end(ray_session, store, imagenet_root,
                                                                          tmp_path, capsys):
    from harness import cli, runs

    sets = ["data.dataset=imagenet", f"data.data_root={imagenet_root}", "data.loader=stream", "data.image_size=32",
            "data.val_size=8", "train.epochs=2", "train.batch_size=8", "data.num_workers=1"]
    argv = ["run", "jiang_table_4_13", "--profile", "smoke", "--tracking-uri", store, "--cpus-per-trial", "1"]
    rc = cli.main(argv + [a for s in sets for a in ("--set", s)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "imagenet: stream (decoded splits" in out and "1 worker per trial" in out
    frame = runs.load_runs("jiang_table_4_13", store, status="FINISHED")
    assert len(frame) == 4 and set(frame["loader"]) == {"stream"} and set(frame["precision"]) == {"fp32"}
    c = tracking.client(store)
    run = c.get_run(frame["run_id"].iloc[0])
    assert run.inputs.dataset_inputs[0].dataset.name == "imagenet"
    assert [m.step for m in c.get_metric_history(run.info.run_id, "corrupt_skipped")] == [1, 2]
    for artifact in ("jiang-table-4-13", "jiang-table-4-14"):
        assert cli.main(["report", artifact, "--tracking-uri", store, "--out", str(tmp_path / "reports")]) == 0
        text = (tmp_path / "reports" / f"{artifact}.md").read_text()
        assert "Trained in fp32 on the stream loader (imagenet)." in text


@pytest.mark.slow
def test_an_empty_class_folder_fails_the_trial_naming_it(ray_session, store, tmp_path, capsys):
    import shutil

    from harness import cli, runs
    from harness.data import layout

    root = tmp_path / "broken"
    layout.main(["--out", str(root / "imagenet"), "--classes", "2", "--per-class", "6", "--val-per-class", "2",
                 "--size", "40x40"])
    empty = root / "imagenet" / "train" / "empty_class"
    empty.mkdir()
    sets = ["data.dataset=imagenet", f"data.data_root={root}", "data.loader=stream", "data.image_size=32",
            "data.val_size=2", "train.epochs=1", "train.batch_size=4"]
    argv = ["run", "jiang_table_4_13", "--profile", "smoke", "--tracking-uri", store, "--max-failures", "0"]
    cli.main(argv + [a for s in sets for a in ("--set", s)])
    capsys.readouterr()
    frame = runs.load_runs("jiang_table_4_13", store, status="FAILED")
    assert len(frame) == 4  # every row's trial: nothing trained, each says which folder
    for reason in frame["failure_reason"]:
        assert str(empty) in reason and "\n" not in reason
    shutil.rmtree(root)
