"""harness.adapters: each private attribute of a library the harness reads, read against the installed
library. A test here fails when the library moves or renames what the adapter reads; the adapter, not
the code that calls it, is then the one place to change."""
from __future__ import annotations

import time

import pytest

from harness import adapters, tracking


def _pet_folder(root, split: str, lines: list[str]):
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / f"{split}.txt").write_text("".join(f"{line}\n" for line in lines))
    return base


def test_pet_images_and_labels_are_the_annotation_files():
    """torchvision's OxfordIIITPet keeps what it parsed from annotations/<split>.txt (image id, 1-based
    class id, species, breed id): the adapter gives the image paths and the 0-based labels, in file order."""
    import tempfile
    from pathlib import Path

    import torchvision

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = _pet_folder(root, "test", ["Abyssinian_1 1 1 1", "american_bulldog_7 2 2 1", "Abyssinian_2 1 1 1"])
        ds = torchvision.datasets.OxfordIIITPet(str(root), split="test")
        images, labels = adapters.pet_images_and_labels(ds)
    assert [str(p) for p in images] == [str(base / "images" / f"{i}.jpg")
                                        for i in ("Abyssinian_1", "american_bulldog_7", "Abyssinian_2")]
    assert labels == [0, 1, 0]
    assert len(ds) == 3 and ds.classes == ["Abyssinian", "American Bulldog"]


def test_system_metrics_monitor_samples_a_run_by_its_id(store):
    uri = tracking.resolve_uri(store)
    experiment = tracking.ensure_experiment(uri, "adapters")
    c = tracking.client(uri)
    run_id = c.create_run(experiment).info.run_id
    monitor = adapters.system_metrics_monitor(run_id, 0.2, uri)
    monitor.start()
    time.sleep(1.0)
    monitor.finish()
    metrics = c.get_run(run_id).data.metrics
    assert any(k.startswith("system/") for k in metrics), sorted(metrics)


@pytest.mark.slow
def test_trial_statuses_are_tunes_own_in_the_grids_order(ray_session, tmp_path):
    """Tune's status per trial, in ResultGrid order: what harness.outcomes.collect zips with the results."""
    from ray import tune

    def trainable(config):
        if config["x"] == 1:
            raise ValueError("this trial fails")
        tune.report({"y": config["x"]})

    tuner = tune.Tuner(trainable, param_space={"x": tune.grid_search([0, 1, 2])},
                       run_config=tune.RunConfig(name="adapters", storage_path=str(tmp_path), verbose=0))
    grid = tuner.fit()
    statuses = adapters.trial_statuses(grid)
    assert len(statuses) == len(grid) == 3
    by_x = {grid[i].config["x"]: statuses[i] for i in range(len(grid))}
    assert by_x == {0: "TERMINATED", 1: "ERROR", 2: "TERMINATED"}
    assert [grid[i].error is not None for i in range(len(grid))] == [s == "ERROR" for s in statuses]
