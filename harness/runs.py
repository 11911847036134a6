"""Recorded runs as pandas DataFrames, for reports and notebooks.

``load_runs(artifact)`` returns one row per MLflow run of the artifact's sweep with the columns
  run_id, run_name, status, start_time, end_time        the run itself
  artifact, paper, profile, dataset, row, seed, config_digest, trial_id, failure_reason, device, ...
                                                        its tags, by their plain names
  test_acc, val_acc, train_time_s, params, macs, ...    each metric's last value
  config.train.epochs, config.sampler.alpha, ...        the resolved config, typed as the run's config.yaml
                                                        holds it (ints, floats, booleans, None, strings; lists
                                                        as tuples, so a column can be grouped on); a run
                                                        without config.yaml (an infeasible search sample) has
                                                        its MLflow params read as YAML values
``load_history(artifact)`` returns the per-epoch metrics in long form (run_id, row, seed, step, metric, value).
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

import pandas as pd
import yaml

from . import catalog, tracking
from .config import flatten


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
    client = tracking.client(tracking_uri)
    runs = _all_runs(client, exp.experiment_id, " and ".join(filters))
    rows, configs = [], []
    for r in runs:
        if r.data.tags.get("search_parent") == "true":  # a search launch's parent run holds no trial
            continue
        row = {"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
               "start_time": pd.to_datetime(r.info.start_time, unit="ms"),
               "end_time": pd.to_datetime(r.info.end_time, unit="ms") if r.info.end_time else pd.NaT}
        row.update({k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")})
        row.update(r.data.metrics)
        rows.append(row)
        configs.append(_typed_config(client, r))
    df = pd.DataFrame(rows)
    # object columns: a column of ints with a missing value would otherwise turn into floats (4 -> 4.0)
    # in the order MLflow lists params (sorted per run), a key a run lacks NaN there (None is a null value)
    columns = dict.fromkeys(k for c in configs for k in sorted(c))
    for key in columns:
        df[key] = pd.Series([c.get(key, math.nan) for c in configs], index=df.index, dtype=object)
    df.attrs["tracking_uri"] = tracking.resolve_uri(tracking_uri)  # for report functions that fetch artifacts
    if "seed" in df:
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    return df


def config_text(value) -> str:
    """A typed config value as the sweep file writes it (null, [1, 2]); "" where a run lacks the key (NaN)."""
    if value is None:
        return "null"
    if isinstance(value, float) and value != value:
        return ""
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _hashable(value):
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _typed_config(client, run) -> dict:
    """``{"config.<key>": value}`` of one run: its config.yaml (what the trial resolved, exactly), or
    its params parsed as YAML scalars when it has none (MLflow params are text, cut at 6000 chars)."""
    from mlflow.exceptions import MlflowException

    try:
        local = _local_path(run.info.artifact_uri)
        if local is not None:  # the usual local store: read the file where it is
            text = (local / "config.yaml").read_text()
        else:  # a tracking server: one small download per run, without MLflow's progress bar per file
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            with tempfile.TemporaryDirectory() as tmp:
                text = Path(client.download_artifacts(run.info.run_id, "config.yaml", tmp)).read_text()
        values = flatten(yaml.safe_load(text) or {})
    except (MlflowException, OSError):  # no config.yaml: an infeasible search sample, a run made elsewhere
        values = {key: _scalar(text) for key, text in run.data.params.items()}
    return {f"config.{k}": _hashable(v) for k, v in values.items()}


def _local_path(uri: Optional[str]) -> Optional[Path]:
    if uri and uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if uri and uri.startswith("/"):
        return Path(uri)
    return None


def _scalar(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


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
