"""Registry: a duplicate name is an error, an unknown name lists the known ones, and a registry fills
itself by importing the modules it names on its first lookup."""
import sys
import types

import pytest

from harness.errors import ConfigError
from harness.registry import DATASETS, METHODS, MODELS, SCHEDULES, Registry


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
    assert "resnet20" in MODELS and "none" in METHODS
