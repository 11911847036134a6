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
``load_history(artifact)``: per-epoch metrics in long form (run_id, row, seed, step, metric, value);
``load_runs(artifact, history=True)``: the two joined, one row per (run, epoch), as ``harness export`` writes.

None of them creates a store: a local one that does not exist is a ConfigError naming ``tracking_uri``
(a mistyped path), one without the sweep's experiment an empty frame.

They read a store in bulk, for a tracking server with thousands of runs: the runs in pages of
``search_runs``; the configs from the params those pages hold (``_typed_configs`` says when that is
exact, and reads config.yaml where it is not); the histories from a server one request per 100 runs
and metric; and what a finished run holds, once (``harness.runcache``: a second report reads only
``search_runs``).
"""
from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

import pandas as pd
import yaml

from . import catalog, runcache, store, tracking, yamlio
from .config import flatten
from .errors import ConfigError

NO_STORE = "an existing store (nothing is there; `harness run` writes one)"


def _reader(tracking_uri: Optional[str]):
    """The client of an existing store: MLflow would create an empty one at a mistyped SQLite path,
    and a reader would then report that nothing was recorded instead of naming the path."""
    uri = tracking.resolve_uri(tracking_uri)
    if not tracking.check_readable(uri):
        raise ConfigError("tracking_uri", uri, NO_STORE)
    return tracking.client(uri)


def _experiment(target: str, tracking_uri: Optional[str]):
    sweep, _ = catalog.resolve(target)
    return sweep, _reader(tracking_uri).get_experiment_by_name(sweep.name)


def all_runs(client, experiment_id: str, filter_string: str = "") -> list:
    """Every run of the experiment matching ``filter_string``, read in pages of 1,000."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


HISTORY_METRICS = ("val_acc", "test_acc", "train_loss", "lr", "epoch_time_s")  # load_history's default
# every metric harness.train's Trainer logs each epoch: what an export's rows carry (a method's own extras are not)
EPOCH_METRICS = ("train_loss", "train_acc", "epoch_time_s", "images_per_s", "samples_seen", "train_time_s", "lr",
                 "momentum", "batch_size", "sampling_ratio", "batches", "data_time_s", "compute_time_s", "val_acc",
                 "test_acc", "test_acc5", "eval_time_s")


def load_runs(artifact: str, tracking_uri: Optional[str] = None, profile: Optional[str] = None,
              status: Optional[str] = None, history: bool = False) -> pd.DataFrame:
    """Every run of ``artifact``'s sweep (an artifact id or a sweep name); optionally one profile/status.

    ``history=True``: one row per (run, epoch) instead, the run's columns repeated on each, then ``epoch``
    (the MLflow step) and ``epoch.<metric>`` for each of EPOCH_METRICS (NaN where that epoch has none);
    a run without epochs (an infeasible sample, a run that failed first) is one row with ``epoch`` <NA>.
    This is the frame ``harness export`` writes and ``load_export`` reads back."""
    if not history:
        return _read(artifact, tracking_uri, profile, status)[2]
    experiment_id, listed, runs = _read(artifact, tracking_uri, profile, status)
    long = _long_history(tracking_uri, experiment_id, listed, runs, EPOCH_METRICS)
    wide = long.pivot(index=["run_id", "step"], columns="metric", values="value")
    wide = wide.reindex(columns=list(EPOCH_METRICS)).add_prefix("epoch.").reset_index()
    wide = wide.rename(columns={"step": "epoch"}).rename_axis(columns=None)
    wide["epoch"] = wide["epoch"].astype("Int64")
    if "run_id" not in runs:
        runs = runs.assign(run_id=pd.Series(dtype=object))
    merged = runs.merge(wide, on="run_id", how="left", sort=False)  # a left merge keeps the runs' order
    merged.attrs = dict(runs.attrs)
    return merged


def load_export(path) -> pd.DataFrame:
    """The frame of a ``harness export`` file (Parquet, or CSV with its ``.json`` beside it), typed as
    ``load_runs(..., history=True)`` returned it (harness.exportfile says how each column is kept)."""
    from . import exportfile

    return exportfile.read(path)


def _read(artifact: str, tracking_uri: Optional[str], profile: Optional[str], status: Optional[str]):
    """(experiment id, the listed MLflow runs, load_runs' frame); (None, [], empty frame) without the experiment."""
    sweep, exp = _experiment(artifact, tracking_uri)
    if exp is None:
        return None, [], pd.DataFrame(columns=["run_id", "status", "row", "seed", "profile"])
    filters = []
    if profile:
        filters.append(f"tags.profile = '{profile}'")
    if status:
        filters.append(f"attributes.status = '{status}'")
    client = tracking.client(tracking_uri)
    uri = tracking.resolve_uri(tracking_uri)
    # a search launch's parent run holds no trial
    listed = [r for r in all_runs(client, exp.experiment_id, " and ".join(filters))
              if r.data.tags.get("search_parent") != "true"]
    return exp.experiment_id, listed, _frame(listed, _configs(client, uri, exp.experiment_id, listed), uri)


def _frame(listed: list, configs: list, uri: str) -> pd.DataFrame:
    """load_runs' frame of MLflow runs and their ``{"config.<key>": value}`` (one dict per run, in order)."""
    rows = []
    for r in listed:
        row = {"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
               "start_time": pd.to_datetime(r.info.start_time, unit="ms"),
               "end_time": pd.to_datetime(r.info.end_time, unit="ms") if r.info.end_time else pd.NaT}
        row.update({k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")})
        row.update(r.data.metrics)
        rows.append(row)
    df = pd.DataFrame(rows)
    # object columns: a column of ints with a missing value would otherwise turn into floats (4 -> 4.0)
    # in the order MLflow lists params (sorted per run), a key a run lacks NaN there (None is a null value)
    columns = dict.fromkeys(k for c in configs for k in sorted(c))
    for key in columns:
        df[key] = pd.Series([c.get(key, math.nan) for c in configs], index=df.index, dtype=object)
    df.attrs["tracking_uri"] = uri  # for report functions that fetch artifacts
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


def _columns(values: dict) -> dict:
    return {f"config.{k}": _hashable(v) for k, v in values.items()}


def _configs(client, uri: str, experiment_id: str, listed: list) -> list:
    """The config columns of each listed run: a finished run's from the cache, the others typed by
    ``_typed_configs`` (then cached when finished)."""
    cache = runcache.RunCache(uri, experiment_id)
    cached = cache.read("configs")
    values, fresh = {}, []
    for r in listed:
        entry = cached.get(r.info.run_id)
        if entry and entry.get("stamp") and entry["stamp"] == runcache.stamp(r):
            values[r.info.run_id] = entry["values"]
        else:
            fresh.append(r)
    values.update(_typed_configs(client, fresh))
    added = {r.info.run_id: {"stamp": runcache.stamp(r), "values": values[r.info.run_id]} for r in fresh
             if runcache.stamp(r) and runcache.plain(values[r.info.run_id])}
    if added:
        cache.write("configs", {**cached, **added})
    return [_columns(values[r.info.run_id]) for r in listed]


def _typed_configs(client, runs: list) -> dict:
    """``{run_id: {key: value}}``, each run's config typed exactly as its config.yaml holds it (or, for a
    run without one, as its params read as YAML scalars), reading as few config.yaml files as that allows.

    A run logs its whole flattened config twice: as params (``str(value)``, cut at PARAM_VALUE_MAX) and
    typed in config.yaml. Reading the params back is exact where the text says its type: lists and
    mappings (their items are repr-quoted), numbers, booleans, null. It is not for a value printed as
    bare text: str "0.5" and float 0.5 both log ``0.5``, and float inf logs ``inf``, which reads as text.
    So a run's params are trusted only when each reads back to a value that prints as the same text,
    none is cut, and a config.yaml of a run with the same keys read as the same kinds agrees value for
    value (one file per such shape: the shapes of a sweep are its rows' and samples' configs, few).
    Every other run is read from its own config.yaml, as one always was. What this leaves open is a
    key that holds text in some runs and, with the same printed form, another kind in the run that was
    checked: a sweep would have to quote a number in one row and not in another.
    """
    memo: dict = {}

    def read(text: str, loader):
        key = (text, loader)
        if key not in memo:
            memo[key] = loader(text)
        value = memo[key]
        return copy.deepcopy(value) if isinstance(value, (list, dict)) else value

    out, shapes = {}, {}
    for r in runs:
        params = r.data.params
        if r.data.tags.get("infeasible") == "true":  # a refused sample: params only (tracking.record_infeasible)
            out[r.info.run_id] = {k: read(t, _scalar) for k, t in params.items()}
            continue
        values = {k: read(t, _number_aware) for k, t in params.items()}
        if not all(len(t) < tracking.PARAM_VALUE_MAX and tracking._param_text(values[k]) == t
                   for k, t in params.items()):
            out[r.info.run_id] = _config_values(client, r)
            continue
        shape = tuple(sorted((k, type(v).__name__) for k, v in values.items()))
        shapes.setdefault(shape, []).append((r, values))
    for members in shapes.values():
        checked = False
        for i, (r, values) in enumerate(members):
            if checked:
                out[r.info.run_id] = values
                continue
            text = _config_yaml_text(client, r)
            out[r.info.run_id] = _from_text(text, r)
            if text is None:  # no config.yaml: its params read as YAML scalars, as always; check the next one
                continue
            if not _identical(out[r.info.run_id], values):
                for other, _ in members[i + 1:]:
                    out[other.info.run_id] = _config_values(client, other)
                break
            checked = True
    return out


def _identical(a, b) -> bool:
    """Equal and of the same types throughout (1 is not 1.0 nor True here; NaN is NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_identical, a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def _config_values(client, run) -> dict:
    """One run's config as ``{key: value}``: its config.yaml (what the trial resolved, exactly), or its
    params read as YAML scalars when it has none (MLflow params are text, cut at 6000 chars)."""
    return _from_text(_config_yaml_text(client, run), run)


def _from_text(text: Optional[str], run) -> dict:
    if text is None:  # an infeasible search sample, a run made elsewhere
        return {key: _scalar(value) for key, value in run.data.params.items()}
    return flatten(yaml.safe_load(text) or {})


def _config_yaml_text(client, run) -> Optional[str]:
    """The text of the run's config.yaml, None when it has none: every artifact load_runs reads, it reads here."""
    from mlflow.exceptions import MlflowException

    try:
        local = _local_path(run.info.artifact_uri)
        if local is not None:  # the usual local store: read the file where it is
            return (local / "config.yaml").read_text()
        # a tracking server: one small download, without MLflow's progress bar per file
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with tempfile.TemporaryDirectory() as tmp:
            return Path(client.download_artifacts(run.info.run_id, "config.yaml", tmp)).read_text()
    except (MlflowException, OSError):
        return None


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


PLAIN_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
WORDS = {"True": True, "False": False, "null": None}  # how tracking._param_text prints booleans and None


def _number_aware(text: str):
    """A param as harness.yamlio reads it: 1e-05 (how Python prints a small float) is a number there,
    text to PyYAML. The forms Python prints ints, finite floats, booleans and None in are read without
    YAML (thousands of distinct params, 1-2 ms each through the YAML loader): what they give is checked
    against config.yaml like any other reading."""
    if PLAIN_INT.fullmatch(text):
        return int(text)
    if text in WORDS:
        return WORDS[text]
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number) and repr(number) == text:
        return number
    try:
        return yamlio.load(text)
    except yaml.YAMLError:
        return text


def load_history(artifact: str, tracking_uri: Optional[str] = None, profile: Optional[str] = None,
                 metrics: tuple = HISTORY_METRICS) -> pd.DataFrame:
    """Per-epoch values of ``metrics`` for every run, long form, sorted by run and step."""
    experiment_id, listed, runs = _read(artifact, tracking_uri, profile, None)
    return _long_history(tracking_uri, experiment_id, listed, runs, metrics)


def _long_history(tracking_uri, experiment_id, listed: list, runs: pd.DataFrame, metrics) -> pd.DataFrame:
    histories = {}
    if listed:  # _read has checked that the store exists
        histories = _histories(tracking.client(tracking_uri), tracking.resolve_uri(tracking_uri), experiment_id,
                               listed, metrics)
    rows = []
    for _, r in runs.iterrows():
        for m in metrics:
            for step, value in histories[r["run_id"]][m]:
                rows.append({"run_id": r["run_id"], "row": r.get("row"), "seed": r.get("seed"),
                             "step": step, "metric": m, "value": value})
    df = pd.DataFrame(rows, columns=["run_id", "row", "seed", "step", "metric", "value"])
    return df.sort_values(["run_id", "metric", "step"]).reset_index(drop=True)


def _histories(client, uri: str, experiment_id: str, listed: list, metrics) -> dict:
    """``{run_id: {metric: [(step, value), ...]}}`` in MLflow's order (time, step, value): a finished run's
    from the cache, the rest from the store (then cached when finished)."""
    cache = runcache.RunCache(uri, experiment_id)
    cached = cache.read("history")
    out, have, wanted = {}, {}, {m: [] for m in metrics}
    for r in listed:
        run_id, stamp = r.info.run_id, runcache.stamp(r)
        entry = cached.get(run_id)
        have[run_id] = entry["metrics"] if stamp and entry and entry.get("stamp") == stamp else {}
        out[run_id] = {m: [tuple(p) for p in have[run_id][m]] for m in metrics if m in have[run_id]}
        for m in wanted:
            if m not in have[run_id]:
                wanted[m].append(run_id)
    fetched = set()
    for (run_id, m), points in store.metric_histories(client, uri, wanted).items():
        out[run_id][m] = points
        fetched.add(run_id)
    added = {}
    for r in listed:
        stamp = runcache.stamp(r)
        if stamp and r.info.run_id in fetched:
            added[r.info.run_id] = {"stamp": stamp, "metrics": {**have[r.info.run_id], **out[r.info.run_id]}}
    if added:
        cache.write("history", {**cached, **added})
    return out


def load_model(run_id: str, tracking_uri: Optional[str] = None):
    """The trained model of a run made with ``train.save_model: true``, in eval mode on the CPU."""
    import tempfile

    import torch

    from . import models
    from .methods.pruning import restore_masks

    with tempfile.TemporaryDirectory() as tmp:
        path = _reader(tracking_uri).download_artifacts(run_id, "model.pt", tmp)
        saved = torch.load(path, map_location="cpu", weights_only=True)
    model = models.build(saved["name"], **saved["build_kwargs"])
    restore_masks(model, saved["state_dict"])  # a model the `prune` method pruned saves its masks
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def count_runs(sweep_name: str, tracking_uri: Optional[str] = None) -> int:
    """Runs recorded in a sweep's experiment (0 when the experiment does not exist). The caller checks
    once that the store exists (``tracking.check_readable``, as ``harness list`` does): MLflow would
    create one at a path that has none."""
    client = tracking.client(tracking_uri)
    exp = client.get_experiment_by_name(sweep_name)
    return 0 if exp is None else len(all_runs(client, exp.experiment_id))
