"""harness.trial.TrialContext: what every trial of a launch shares, typed and frozen at both ends, plain
data in between (a Tune param space keeps plain data as it is; any other object becomes a placeholder)."""
from __future__ import annotations

import dataclasses
import pickle
from collections import defaultdict

import pytest

from harness.trial import TrialContext

from .test_search import write_search_sweep


def _contexts(tmp_path):
    block = {"space": {"train.lr": {"loguniform": [0.01, 0.1]}}, "num_samples": 2, "objectives": {"val_acc": "max"}}
    plan = write_search_sweep(tmp_path, block, axes={"train.seed": [0, 1]}).search_plan("smoke")
    grid = TrialContext("sqlite:///x.db", "1", 2, {"sweep": "s", "driver": "host:1"}, ({"module": "my_plugin"},))
    return grid, dataclasses.replace(grid, parent_run_id="parent", plan=plan)


@pytest.mark.parametrize("which", ["grid", "search"])
def test_the_context_travels_as_plain_data_and_comes_back_equal(which, tmp_path):
    from ray.tune.impl.placeholder import inject_placeholders

    ctx = dict(zip(("grid", "search"), _contexts(tmp_path)))[which]
    payload = ctx.payload()
    resolvers = defaultdict(list)
    assert inject_placeholders({"ctx": payload}, resolvers) == {"ctx": payload} and not resolvers
    assert TrialContext.from_payload(pickle.loads(pickle.dumps(payload))) == ctx
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.threads = 3


def test_a_context_resolves_its_trials_cell_grid_or_search(tmp_path):
    grid, search = _contexts(tmp_path)
    cell = {"row": "r", "name": "r-seed0", "config": {}, "digest": "d"}
    assert grid.cell({"cell": cell}) == (cell, {})
    payload, tags = search.cell({"sample": {"train.lr": 0.05}, "sample_id": 3, "point": 1})
    assert (payload["row"], payload["name"]) == ("sample003", "sample003-seed1")
    assert payload["config"]["train"]["lr"] == 0.05 and payload["config"]["train"]["seed"] == 1
    assert tags == {"sample_id": 3, "sample": '{"train.lr": 0.05}'}
