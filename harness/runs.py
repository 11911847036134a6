"""Recorded runs as pandas DataFrames, for reports and notebooks.

``load_runs(artifact)`` returns one row per MLflow run of the artifact's sweep with the columns
  run_id, run_name, status, start_time, end_time        the run itself
  artifact, paper, profile, dataset, row, seed, config_digest, trial_id, failure_reason, device, ...
                                                        its tags, by their plain names
  test_acc, val_acc, train_time_s, params, macs, ...    each metric's last value
  config.train.epochs, config.sampler.alpha, ...        the resolved config (MLflow params, as text)
``load_history(artifact)`` returns the per-epoch metrics in long form (run_id, row, seed, step, metric, value).
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from . import catalog, tracking


def _experiment(target: str, tracking_uri: Optional[str]):
    sweep, _ = catalog.resolve(target)
    return sweep, tracking.client(tracking_uri).get_experiment_by_name(sweep.name)


def _all_runs(client, experiment_id: str, filter_string: str = "") -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def load_runs(artifact: str, tracking_uri: Optional[str] = None, profile: Optional[str] = None,
              status: Optional[str] = None) -> pd.DataFrame:
    """Every run of ``artifact``'s sweep (an artifact id or a sweep name); optionally one profile/status."""
    sweep, exp = _experiment(artifact, tracking_uri)
    if exp is None:
        return pd.DataFrame(columns=["run_id", "status", "row", "seed", "profile"])
    filters = []
    if profile:
        filters.append(f"tags.profile = '{profile}'")
    if status:
        filters.append(f"attributes.status = '{status}'")
    runs = _all_runs(tracking.client(tracking_uri), exp.experiment_id, " and ".join(filters))
    rows = []
    for r in runs:
        if r.data.tags.get("search_parent") == "true":  # a search launch's parent run holds no trial
            continue
        row = {"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
               "start_time": pd.to_datetime(r.info.start_time, unit="ms"),
               "end_time": pd.to_datetime(r.info.end_time, unit="ms") if r.info.end_time else pd.NaT}
        row.update({k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")})
        row.update(r.data.metrics)
        row.update({f"config.{k}": v for k, v in r.data.params.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["tracking_uri"] = tracking.resolve_uri(tracking_uri)  # for report functions that fetch artifacts
    if "seed" in df:
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    return df


def load_history(artifact: str, tracking_uri: Optional[str] = None, profile: Optional[str] = None,
                 metrics: tuple = ("val_acc", "test_acc", "train_loss", "lr", "epoch_time_s")) -> pd.DataFrame:
    """Per-epoch values of ``metrics`` for every run, long form, sorted by run and step."""
    runs = load_runs(artifact, tracking_uri, profile)
    client = tracking.client(tracking_uri)
    rows = []
    for _, r in runs.iterrows():
        for m in metrics:
            for point in client.get_metric_history(r["run_id"], m):
                rows.append({"run_id": r["run_id"], "row": r.get("row"), "seed": r.get("seed"),
                             "step": point.step, "metric": m, "value": point.value})
    df = pd.DataFrame(rows, columns=["run_id", "row", "seed", "step", "metric", "value"])
    return df.sort_values(["run_id", "metric", "step"]).reset_index(drop=True)


def load_model(run_id: str, tracking_uri: Optional[str] = None):
    """The trained model of a run made with ``train.save_model: true``, in eval mode on the CPU."""
    import tempfile

    import torch
    import torch.nn.utils.prune  # noqa: F401

    from . import models

    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.client(tracking_uri).download_artifacts(run_id, "model.pt", tmp)
        saved = torch.load(path, map_location="cpu", weights_only=True)
    model = models.build(saved["name"], **saved["build_kwargs"])
    # a model pruned with torch.nn.utils.prune (the `prune` method) saves <param>_orig and <param>_mask:
    # give the fresh model identity masks at those places, and the saved masks load into them
    for key in saved["state_dict"]:
        if key.endswith("_mask"):
            module_name, _, param = key[: -len("_mask")].rpartition(".")
            torch.nn.utils.prune.identity(model.get_submodule(module_name), param)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def count_runs(sweep_name: str, tracking_uri: Optional[str] = None) -> int:
    """Runs recorded in a sweep's experiment (0 when the store or the experiment does not exist)."""
    client = tracking.client(tracking_uri)
    exp = client.get_experiment_by_name(sweep_name)
    return 0 if exp is None else len(_all_runs(client, exp.experiment_id))
