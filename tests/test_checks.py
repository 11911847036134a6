"""harness.checks and the one option coercion (harness.errors.coerce): the model and method a config
names, their options' names, types and ranges, all refused before Ray starts with the key, the value
and what is valid."""
import typing
from typing import Literal, Optional

import pytest

from harness import checks
from harness.config import RunConfig
from harness.errors import ConfigError, check_options, coerce, option_types
from harness.registry import EXPERIMENTS, METHODS, MODELS, method_flag


def _refused(d: dict) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        checks.checked(d)
    return e.value


@pytest.mark.parametrize("d,key,value,valid", [
    ({"model": {"name": "resnet21"}}, "model.name", "resnet21", "resnet20"),
    ({"model": {"name": "resnet20", "options": {"depth": 3}}}, "model.options.depth", 3, "width"),
    ({"model": {"name": "resnet20", "options": {"width": True}}}, "model.options.width", True, "not a boolean"),
    ({"model": {"name": "resnet20", "options": {"width": "wide"}}}, "model.options.width", "wide", "a finite number"),
    ({"model": {"name": "resnet20", "options": {"width": "1/2"}}}, "model.options.width", "1/2", "a finite number"),
    ({"model": {"name": "resnet20", "options": {"conv": 3}}}, "model.options.conv", 3, "a string"),
    ({"model": {"name": "resnet20", "options": {"conv": "sparse"}}}, "model.options.conv", "sparse", "winograd"),
    ({"model": {"name": "resnet20", "options": {"conv_options": 5}}}, "model.options.conv_options", 5, "mapping"),
    ({"model": {"name": "crnet_cb", "options": {"g": 2.0}}}, "model.options.g", 2.0, "an int"),
    ({"method": {"name": "prune2"}}, "method.name", "prune2", "prune"),
    ({"method": {"name": "prune", "options": {"sparsity_x": 1}}}, "method.options.sparsity_x", 1, "sparsity"),
])
def test_a_bad_model_or_method_names_key_value_and_valid(d, key, value, valid):
    e = _refused(d)
    assert (e.key, e.value) == (key, value)
    assert valid in e.valid and key in str(e)


def test_ranges_stay_with_the_model_and_are_checked_before_ray():
    e = _refused({"model": {"name": "crnet_cb", "options": {"g": 3}}})  # 3 divides no channel count of crnet_cb
    assert e.key == "model.options.g"
    configs = [RunConfig.from_dict({"model": {"name": "resnet20", "options": {"width": 0.0}}}).to_dict()]
    with pytest.raises(ConfigError) as e:
        checks._check_models(configs)  # the meta-device build: its own range checks
    assert e.value.key == "model.options.width" and "> 0" in e.value.valid


def test_check_config_accepts_a_good_config_once():
    cfg = RunConfig.from_dict({"model": {"name": "resnet20", "options": {"width": 0.5}},
                               "method": {"name": "none"}})
    checks.check_config(cfg)
    checks.check_config(cfg)  # the second is a set lookup
    assert any('"resnet20"' in key for key in checks._CHECKED)


def test_a_shape_error_names_the_model_and_the_input():
    configs = [RunConfig.from_dict({"data": {"dataset": "digits"}, "model": {"name": "alexnet",
                                                                            "options": {"small_input": False}}}).to_dict()]
    with pytest.raises(ConfigError) as e:
        checks._check_models(configs)
    assert e.value.key in ("model", "model.options.image_size")


def test_local_gpus_need_no_torch_without_a_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert checks._local_gpus() == 0


# ---- the coercion every option goes through ----

@pytest.mark.parametrize("value,hint,out", [
    (3, int, 3), (3, float, 3.0), (None, Optional[int], None), (2, Optional[int], 2), ("a", Literal["a", "b"], "a"),
    ([1, 2], tuple[int, ...], (1, 2)), (0.5, float | list[float], 0.5), ([0.5, 1], float | list[float], [0.5, 1.0]),
    ({"a": 1}, dict, {"a": 1}), (True, bool, True),
])
def test_coerce_accepts_declared_types(value, hint, out):
    assert coerce("model.x", value, hint, strict=True) == out


@pytest.mark.parametrize("value,hint,valid", [
    (True, int, "an int, not a boolean"), ("3", int, "an int"), (2.0, int, "an int"), ("0.5", float, "a finite number"),
    (float("inf"), float, "a finite number"), (1, bool, "true or false"), ("c", Literal["a", "b"], "one of a, b"),
    (3, tuple[int, ...], "a list of ints"), ([1, "x"], tuple[int, ...], "an int"), ("x", Optional[int], "or null"),
    ("x", float | list[float], "a finite number or a list of finite numbers"), (5, dict, "a mapping"),
])
def test_coerce_refuses_other_types_naming_key_value_and_type(value, hint, valid):
    with pytest.raises(ConfigError) as e:
        coerce("model.x", value, hint, strict=True)
    assert e.value.key.startswith("model.x") and valid in e.value.valid


def test_config_fields_read_fractions_and_single_values_options_do_not():
    assert coerce("sampler.gamma", ["1/3", 0.5], tuple[float, ...]) == (1 / 3, 0.5)
    assert coerce("sampler.alpha", 0.8, tuple[float, ...]) == (0.8,)
    assert coerce("train.epochs", 3.0, int) == 3


def test_unknown_options_list_the_accepted_ones_up_the_mro():
    class Base:
        def __init__(self, lr: float = 0.1):
            pass

    class Method(Base):
        def __init__(self, steps: int = 1, **options):
            super().__init__(**options)

    assert option_types(Method)[0] == {"steps": int, "lr": float}
    with pytest.raises(ConfigError) as e:
        check_options(Method, {"stepz": 2}, "method.options", "m")
    assert e.value.key == "method.options.stepz" and e.value.valid == "an option of m: steps, lr"
    with pytest.raises(ConfigError, match="method.options.lr"):
        check_options(Method, {"lr": "fast"}, "method.options", "m")


def test_every_registered_option_is_typed():
    """Each model builder's and method's options carry an annotation the coercion reads."""
    untyped = []
    for registry in (MODELS, METHODS, EXPERIMENTS):  # not SAMPLERS: the sampler section is typed by SamplerConfig
        for name in registry.names():
            for option, hint in option_types(registry.get(name))[0].items():
                if hint is typing.Any:
                    untyped.append(f"{name}.{option}")
    assert untyped == []


# ---- capability flags: declared once, in the registration, read by harness.registry.method_flag ----

def test_experiments_declare_what_they_do_not_need():
    flags = {name: (method_flag(name, "uses_dataset"), method_flag(name, "builds_model"))
             for name in EXPERIMENTS.names() + ["none", "prune"]}
    assert flags == {"latency": (False, True), "node_pruning_autoencoder": (True, False),
                     "node_pruning_residual": (True, True), "node_pruning_summation": (False, False),
                     "none": (True, True), "prune": (True, True)}  # a training method reads model and data
    with pytest.raises(KeyError, match="uses_data"):
        method_flag("latency", "uses_data")


@pytest.mark.parametrize("method,refused", [("node_pruning_summation", False), ("node_pruning_autoencoder", True)])
def test_a_study_that_makes_its_own_data_needs_none_on_disk(no_ray, method, refused):
    """The driver's checks refuse a data_root that is not a folder, but not for the summation study,
    whose registration declares uses_dataset=False (its instance says nothing: read from one place)."""
    config = RunConfig.from_dict({"data": {"dataset": "mnist", "data_root": str(no_ray / "no" / "such" / "folder")},
                                  "method": {"name": method}}).to_dict()
    preflight = lambda: checks.preflight([config], 1, f"sqlite:///{no_ray / 'store.db'}", None,  # noqa: E731
                                          cpus_per_trial=1, max_concurrent=None)
    if refused:
        with pytest.raises(ConfigError) as e:
            preflight()
        assert e.value.key == "data.data_root"
    else:
        assert preflight().startswith("sqlite:")
    assert checks.model_configs([config]) == []  # neither builds model.name, so none is built to check it


# ---- the order of the driver's checks around ray.init (issue 12, item 3) ----

SHAPE_FAILS = '''
import torch


class ShapeFails(torch.nn.Module):
    """Builds at any input size and fails on its input: an error only a forward pass finds."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 8):
        super().__init__()
        self.fc = torch.nn.Linear(3, num_classes)  # a digits image has 1 x 8 x 8 = 64 values, not 3

    def forward(self, x):
        return self.fc(x.flatten(1))
'''


def _shape_fails_sweep(tmp_path) -> str:
    import yaml

    path = tmp_path / "shape_fails.yaml"
    path.write_text(yaml.safe_dump({
        "name": "shape_fails", "paper": "jiang", "artifacts": [],
        "base": {"data": {"dataset": "digits", "train_subset": 200, "test_subset": 50, "val_size": 40},
                 "model": {"name": "shape_fails"}, "train": {"epochs": 1, "batch_size": 32}},
        "profiles": {"paper": {}, "quick": {}, "smoke": {}}}))
    return str(path)


def _run_argv(tmp_path) -> list[str]:
    return ["run", _shape_fails_sweep(tmp_path), "--profile", "smoke", "--tracking-uri",
            f"sqlite:///{tmp_path / 'store.db'}", "--storage-path", str(tmp_path / "ray_results"), "--quiet"]


def test_a_builders_range_check_runs_before_ray_without_torchs_compiler():
    """The option checks before Ray build each model on the meta device without drawing initial
    values, so a builder's own range check (resnet20's width > 0) is found there in milliseconds
    and torch._dynamo (imported by torch's meta kernels for the draws, 1-2 s) is never imported."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from harness import checks\n"
            "from harness.config import RunConfig\n"
            "from harness.errors import ConfigError\n"
            "cfg = RunConfig.from_dict({'model': {'name': 'resnet20', 'options': {'width': 0.0}}}).to_dict()\n"
            "try:\n"
            "    checks._check_builds([cfg])\n"
            "except ConfigError as e:\n"
            "    print(e.key, e.value, 'torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["model.options.width", "0.0", "False"], out.stderr[-2000:]


def test_a_model_that_fails_on_its_input_is_found_while_ray_starts(tmp_path, monkeypatch, capsys):
    """The meta-device run of each model (shape errors) runs in a thread beside ``init_ray``; when it
    fails the launch stops with exit 2 and one line naming the model and its input, Ray is shut
    down, and nothing is recorded: no store, no Tune experiment."""
    import ray

    from harness import cli, launcher

    namespace: dict = {}
    exec(SHAPE_FAILS, namespace)  # noqa: S102  (a model for this test only, registered for its duration)
    MODELS.names()  # load the zoo first, so the entry below is not replaced by the registry's first load
    monkeypatch.setitem(MODELS._items, "shape_fails", namespace["ShapeFails"])
    monkeypatch.setitem(MODELS._meta, "shape_fails", {"family": "test"})
    events: list = []
    up = {"ray": False}  # a stand-in for Ray: another test module's session may have started the real one

    def fake_init_ray(address, log_to_driver=True):
        events.append("init_ray")
        up["ray"] = True

    def fake_shutdown():
        events.append("shutdown")
        up["ray"] = False

    monkeypatch.setattr(launcher, "init_ray", fake_init_ray)
    monkeypatch.setattr(ray, "is_initialized", lambda: up["ray"])
    monkeypatch.setattr(ray, "shutdown", fake_shutdown)
    for name in ("_check_builds", "_check_models"):
        real = getattr(checks, name)
        monkeypatch.setattr(checks, name, lambda configs, real=real, name=name: (events.append(name), real(configs))[1])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    rc = cli.main(_run_argv(tmp_path))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("harness: error: model=") and "shape_fails" in err[0] and "1x8x8" in err[0], err
    assert events.index("_check_builds") < events.index("init_ray") and "_check_models" in events, events
    assert events[-1] == "shutdown" and not up["ray"], events
    assert not (tmp_path / "store.db").exists()  # the store is opened only once every model has run
    assert not list((tmp_path / "ray_results").glob("shape_fails-*"))  # no Tune experiment launched


@pytest.mark.slow
def test_a_model_that_fails_on_its_input_shuts_the_real_ray_down(tmp_path):
    """The same through a real ``ray.init`` in a fresh process: exit 2, Ray not running afterwards."""
    import json
    import os
    import subprocess
    import sys

    code = (SHAPE_FAILS + "\nimport json, sys, ray\nfrom harness import cli\nfrom harness.registry import MODELS\n"
            "MODELS.names()\nMODELS.register('shape_fails', family='test')(ShapeFails)\n"
            "rc = cli.main(json.loads(sys.argv[1]))\nprint('RAY', ray.is_initialized(), rc)\n")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(_run_argv(tmp_path))], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.stdout.strip().splitlines()[-1] == "RAY False 2", (out.stdout[-2000:], out.stderr[-3000:])
    assert "shape_fails" in out.stderr and "1x8x8" in out.stderr
    assert not (tmp_path / "store.db").exists()
