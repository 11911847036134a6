"""RunConfig: every key, type and range checked before any work, naming the key and the valid values."""
import json
import subprocess
import sys

import pytest

from harness.checks import checked
from harness.config import RunConfig, apply_overrides, deep_merge, flatten
from harness.errors import ConfigError


def test_defaults_and_round_trip():
    cfg = RunConfig.from_dict({"train": {"epochs": 3}, "sampler": {"name": "flat", "alpha": 0.8}})
    assert cfg.train.epochs == 3 and cfg.sampler.alpha == (0.8,)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict(cfg.to_dict()).digest() == cfg.digest()
    assert RunConfig.from_dict({"train": {"epochs": 4}}).digest() != cfg.digest()


def test_fractions_parse_without_eval():
    cfg = RunConfig.from_dict({"sampler": {"name": "three_stage", "alpha": [0.8, 0.8, 0.25],
                                           "gamma": ["1/3", "1/2", "1/6"], "se": 0.8}, "train": {"epochs": 12}})
    assert sum(cfg.sampler.gamma) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="sampler.gamma"):
        RunConfig.from_dict({"sampler": {"gamma": ["__import__('os')", 0, 0]}})


@pytest.mark.parametrize("d,key,valid", [
    ({"train": {"epochs": 0}}, "train.epochs", "> 0"),
    ({"train": {"batch_size": -1}}, "train.batch_size", "> 0"),
    ({"train": {"lr": "fast"}}, "train.lr", "a number"),
    ({"train": {"epochz": 3}}, "train.epochz", "train.epochs"),
    ({"data": {"dataset": "cifar11"}}, "data.dataset", "cifar10"),
    ({"model": {"name": "resnet21"}}, "model.name", "resnet20"),
    ({"model": {"name": "resnet20", "options": {"depth": 3}}}, "model.options.depth", "width"),
    ({"model": {"options": {"num_classes": 3}}}, "model.options.num_classes", "dataset decides"),
    ({"sampler": {"name": "flat", "alpha": [1.5]}}, "sampler.alpha", "(0, 1]"),
    ({"sampler": {"name": "three_stage", "alpha": [0.8, 0.8, 0.8], "gamma": [0.5, 0.5, 0.5]}}, "sampler.gamma", "sum to 1"),
    ({"sampler": {"name": "bottleneck"}}, "sampler.name", "three_stage"),
    ({"train": {"schedule": "step"}}, "train.schedule", "multistep"),
    ({"train": {"epochs": 10, "milestones": [5, 20]}}, "train.milestones", "[1, 10]"),
    ({"train": {"nesterov": "yes"}}, "train.nesterov", "true or false"),
])
def test_bad_input_names_key_value_and_valid(d, key, valid):
    with pytest.raises(ConfigError) as e:
        checked(d)  # RunConfig.from_dict, then harness.checks.check_config: the model's and method's part
    assert e.value.key == key
    assert valid in str(e.value)
    assert key in str(e.value)


def test_overrides_are_typed_yaml_scalars():
    d = apply_overrides({"train": {"epochs": 3}}, ["train.epochs=5", "train.lr=0.05", "data.dataset=digits"])
    assert d == {"train": {"epochs": 5, "lr": 0.05}, "data": {"dataset": "digits"}}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.epochs"])


def test_merge_and_flatten():
    merged = deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}})
    assert merged == {"a": {"b": 1, "c": [2]}}
    assert flatten({"a": {"b": 1, "c": {"d": None}}}) == {"a.b": 1, "a.c.d": None}


def test_from_dict_alone_checks_all_but_the_model_and_method():
    """The config's own checks need no model zoo: a bad model option passes from_dict, check_config
    refuses it; everything else (names of datasets, schedules, samplers) from_dict refuses itself."""
    cfg = RunConfig.from_dict({"model": {"name": "resnet20", "options": {"depth": 3}}})
    assert cfg.model.options == {"depth": 3}
    with pytest.raises(ConfigError, match="model.options.depth"):
        checked(cfg.to_dict())
    for d, key in [({"data": {"dataset": "cifar11"}}, "data.dataset"), ({"train": {"schedule": "step"}}, "train.schedule"),
                   ({"sampler": {"name": "bottleneck"}}, "sampler.name"),
                   ({"sampler": {"name": "flat", "alpha": [0.5, 0.5]}}, "sampler.alpha"),
                   ({"sampler": {"name": "three_stage", "alpha": [0.5]}}, "sampler.alpha")]:
        with pytest.raises(ConfigError) as e:
            RunConfig.from_dict(d)
        assert e.value.key == key


def test_the_config_checks_import_no_torch():
    """What the driver checks first costs no torch import (1.5 s) and no torchvision (2 s more)."""
    script = ("import json, sys\n"
              "import harness.config, harness.registry\n"
              "cfg = harness.config.RunConfig.from_dict({'data': {'dataset': 'cifar10', 'val_size': 5000},"
              " 'train': {'schedule': 'cosine', 'epochs': 3}, 'sampler': {'name': 'flat', 'alpha': 0.5}})\n"
              "from harness import data\n"
              "print(json.dumps([cfg.digest(), data.nominal_shape('cifar10'), str(data.search_paths('mnist')[-1]),"
              " sorted(m for m in ('torch', 'torchvision') if m in sys.modules)]))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    digest, shape, last_root, imported = json.loads(out.stdout)
    assert len(digest) == 16 and shape == [[3, 32, 32], 10] and last_root.endswith("mnist")
    assert imported == []
