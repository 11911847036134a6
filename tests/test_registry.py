"""Registry: a duplicate name is an error, an unknown name lists the known ones, and a registry fills
itself by importing the modules it names on its first lookup; every registry of the harness looks a
name up the same way, and one that declares its flags refuses any other keyword."""
import sys
import types

import pytest

from harness.errors import ConfigError
from harness import checks
from harness.registry import (CONVS, DATASETS, EXPERIMENTS, METHODS, MODELS, SAMPLERS, SCHEDULES, Registry,
                              method_registry)


def test_duplicate_name_is_an_error():
    r = Registry("widget")
    r.register("a")(object())
    with pytest.raises(KeyError, match="widget 'a' is already registered"):
        r.register("a")(object())


def test_unknown_name_lists_the_known_ones():
    r = Registry("widget")
    r.register("beta", size=2)(1)
    r.register("alpha")(2)
    with pytest.raises(ConfigError) as e:
        r.get("gamma")
    assert (e.value.key, e.value.value, e.value.valid) == ("widget", "gamma", "one of alpha, beta")
    assert r.meta("beta") == {"size": 2} and r.names() == ["alpha", "beta"] and len(r) == 2


def test_lazy_modules_fill_it_on_first_lookup(monkeypatch):
    r = Registry("widget", modules=("fake_widgets",))
    imported = []

    def fill():
        imported.append(1)
        r.register("from_module")("value")

    module = types.ModuleType("fake_widgets")
    monkeypatch.setitem(sys.modules, "fake_widgets", module)
    monkeypatch.setattr("importlib.import_module", lambda name: (fill(), module)[1])
    r.register("eager")("x")  # registering never imports
    assert imported == []
    assert "from_module" in r and r.get("from_module") == "value"
    assert r.names() == ["eager", "from_module"]
    assert imported == [1]  # once


def test_a_failing_module_is_raised_again_not_hidden():
    r = Registry("widget", modules=("no_such_module_for_the_registry_test",))
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError):
            r.names()


def test_the_harness_registries_name_their_modules():
    assert "cifar10" in DATASETS and DATASETS.meta("cifar10")["shape"] == (3, 32, 10)
    assert SCHEDULES.names() == ["constant", "cosine", "cosine_iter", "multistep"]
    assert "resnet20" in MODELS and "none" in METHODS and "latency" in EXPERIMENTS
    assert SAMPLERS.names() == ["flat", "full", "three_stage"]
    assert not set(METHODS.names()) & set(EXPERIMENTS.names()) and "latency" not in METHODS


# (registry, the config key its names are given under, a typo, the name it is nearest to)
REGISTRIES = [(SAMPLERS, "sampler.name", "flta", "flat"), (METHODS, "method.name", "prunee", "prune"),
              (EXPERIMENTS, "method.name", "latncy", "latency"), (MODELS, "model.name", "resnte20", "resnet20"),
              (DATASETS, "data.dataset", "cifar11", "cifar10"), (SCHEDULES, "train.schedule", "cosin", "cosine"),
              (CONVS, "model.conv", "winogard", "winograd")]


@pytest.mark.parametrize("registry,key,typo,near", REGISTRIES, ids=lambda r: getattr(r, "kind", None))
def test_every_registry_refuses_an_unknown_name_the_same_way(registry, key, typo, near):
    for name, suggests in ((typo, True), ("zzz_nothing_like_it", False)):
        with pytest.raises(ConfigError) as e:
            registry.get(name)
        assert (e.value.key, e.value.value) == (key, name)
        assert len(str(e.value).splitlines()) == 1 and e.value.valid.startswith("one of ")
        assert all(n in e.value.valid for n in registry.names())
        assert (f"(did you mean {near!r}?)" in e.value.valid) == suggests


@pytest.mark.parametrize("config,registry,name", [
    ({"sampler": {"name": "flta"}}, SAMPLERS, "flta"), ({"model": {"name": "resnte20"}}, MODELS, "resnte20"),
    ({"data": {"dataset": "cifar11"}}, DATASETS, "cifar11"), ({"train": {"schedule": "cosin"}}, SCHEDULES, "cosin"),
    ({"model": {"name": "resnet20", "options": {"conv": "winogard"}}}, CONVS, "winogard")])
def test_a_config_names_its_choices_through_their_registries(config, registry, name):
    """What the config and its checks refuse is what the registry refuses: there is no second list."""
    with pytest.raises(ConfigError) as config_error:
        checks.checked(config)
    with pytest.raises(ConfigError) as registry_error:
        registry.get(name)
    refused, expected = config_error.value, registry_error.value
    assert (refused.value, refused.valid) == (expected.value, expected.valid)
    assert refused.key == checks.option_key(expected).key  # model.conv, a builder's own key, is model.options.conv


def test_method_name_is_a_training_method_or_an_experiment():
    assert method_registry("prune") is METHODS and method_registry("node_pruning_summation") is EXPERIMENTS
    with pytest.raises(ConfigError) as e:
        checks.checked({"method": {"name": "latncy"}})
    assert e.value.key == "method.name" and len(str(e.value).splitlines()) == 1
    assert e.value.valid == ("one of the training methods " + ", ".join(METHODS.names()) + " or the experiments "
                             + ", ".join(EXPERIMENTS.names()) + " (did you mean 'latency'?)")


def test_a_registry_that_declares_flags_refuses_any_other():
    r = Registry("gadget", flags={"fast": True})
    r.register("a", fast=False)(1)
    r.register("b")(2)
    assert (r.flag("a", "fast"), r.flag("b", "fast")) == (False, True)
    with pytest.raises(TypeError, match="gadget 'c': kind= is not a flag of this registry"):
        r.register("c", kind="train")(3)  # the one METHODS registry's spelling before issue 23
    with pytest.raises(TypeError, match="slow="):
        Registry("gizmo", flags={}).register("d", slow=True)(4)
    with pytest.raises(KeyError, match="no flag 'slow'"):
        r.flag("a", "slow")


def test_every_method_module_is_named_where_its_registry_imports_it():
    """harness/methods/__init__.py imports nothing, so a method module no registry names would never register."""
    from pathlib import Path

    import harness.methods
    from harness.registry import METHOD_MODULES

    on_disk = {p.stem for p in Path(harness.methods.__file__).parent.glob("*.py") if ".register(" in p.read_text()}
    named = {m.rsplit(".", 1)[1] for m in METHOD_MODULES + SAMPLERS.modules}
    assert on_disk == named
