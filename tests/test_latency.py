"""harness.latency and the `latency` experiment (harness/methods/latency.py): timing in a trial, never in a report."""
import pytest

from harness import catalog, measure, models
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.latency import measure_latency
from harness.methods.base import build_method
from harness.registry import method_flag
from harness.train import build_runner

CONFIG = {"data": {"dataset": "digits"}, "model": {"name": "digits_cnn"},
          "method": {"name": "latency", "options": {"batch_sizes": [1, 4], "repeats": [3, 2], "warmup": 1}},
          "train": {"threads": 1}}


def test_measure_latency_reports_the_spread_of_its_repeats():
    model = models.build("digits_cnn", num_classes=10, in_channels=1, image_size=8)
    r = measure_latency(model, (1, 8, 8), batch_size=2, repeats=5, warmup=1, threads=1)
    assert r["latency_min_s"] <= r["latency_s"] <= r["latency_max_s"] and r["repeats"] == 5 and r["threads"] == 1
    assert r["per_image_s"] == pytest.approx(r["latency_s"] / 2)


def test_the_latency_experiment_records_each_batch_as_final_metrics():
    assert not method_flag("latency", "uses_dataset") and method_flag("latency", "builds_model")  # no image is read
    runner = build_runner(RunConfig.from_dict(CONFIG), threads=1)
    result = runner.run()
    for b in (1, 4):
        assert result.final[f"latency_min_s_b{b}"] <= result.final[f"latency_s_b{b}"] <= result.final[f"latency_max_s_b{b}"]
        assert result.final[f"per_image_s_b{b}"] == pytest.approx(result.final[f"latency_s_b{b}"] / b)
    assert result.final["latency_threads"] == 1 and "cached_latency_s_b1" not in result.final
    # the model at the dataset's registered shape (digits: 1x8x8, 10 classes), counted as a training trial counts it
    built = measure.profile(models.build("digits_cnn", num_classes=10, in_channels=1, image_size=8), (1, 8, 8))
    assert runner.counts() == {k: built[k] for k in ("params", "macs", "flops", "nonzero_params", "binary_adds")}
    assert {k: result.final[k] for k in runner.counts()} == runner.counts()
    assert runner.saved_model()["build_kwargs"] == {"num_classes": 10, "in_channels": 1, "image_size": 8}
    # restored from its checkpoint, a finished measurement is not taken again
    again = build_runner(RunConfig.from_dict(CONFIG), threads=1)
    again.load_state_dict(runner.state_dict())
    assert again.run().final == result.final


def test_cached_times_the_deployed_kernels_too():
    config = {**CONFIG, "model": {"name": "resnet20", "options": {"conv": "maxmin"}},
              "method": {"name": "latency", "options": {"batch_sizes": [2], "repeats": 1, "warmup": 0, "cached": True}}}
    result = build_runner(RunConfig.from_dict(config), threads=1).run()
    assert result.final["cached_latency_s_b2"] > 0 and result.final["latency_s_b2"] > 0


@pytest.mark.parametrize("options,key", [
    ({"batch_sizes": []}, "method.options.batch_sizes"),
    ({"batch_sizes": [0]}, "method.options.batch_sizes"),
    ({"batch_sizes": [1, 2], "repeats": [3]}, "method.options.repeats"),
    ({"repeats": 0}, "method.options.repeats"),
    ({"warmup": -1}, "method.options.warmup"),
    ({"cached": "yes"}, "method.options.cached"),
])
def test_bad_options_fail_naming_the_key(options, key):
    with pytest.raises(ConfigError) as e:
        build_method("latency", options)
    assert e.value.key == key


@pytest.mark.parametrize("sweep_name", ["jin_latency", "jiang_crnet_latency"])
def test_the_latency_sweeps_time_every_model_their_reports_read(sweep_name):
    sweep = catalog.all_sweeps()[sweep_name]
    for profile in ("paper", "smoke"):
        cells = sweep.cells(profile)
        assert {c.config["method"]["name"] for c in cells} == {"latency"}
    assert len(sweep.cells("paper")) == {"jin_latency": 18, "jiang_crnet_latency": 48}[sweep_name]
