"""The one place that talks to MLflow: one run per trial, one experiment per sweep.

A trial's run carries the whole resolved config as params (flattened, ``train.lr``), the tags
``artifact``, ``paper``, ``profile``, ``dataset``, ``config_digest``, ``git_sha``, ``trial_id``,
``row`` (the paper's row label), ``device``, package versions and ``lock_digest`` (with every installed
distribution in the artifact ``environment.json``: harness.environment), per-epoch metrics with
``step = epoch`` (one ``log_batch`` per epoch), the config as ``config.yaml`` and a final status:
FINISHED, FAILED (tag ``failure_reason``) or KILLED. A Trainer's run also carries ``precision``,
its loader's tags (``loader``, ``resident_bytes``, ``stored_bytes``, ``resize_on``) and its dataset
as an MLflow input (name, source folder, digest, split sizes and loader in its profile: the UI's
Dataset column); with ``train.system_metrics`` MLflow's system metrics (``system/...``) while it trains.

A search sweep's launch has one parent run (tag ``search_parent=true``; the space, algorithm,
seed, objectives as params; the front as ``front.json``); each trial's run is its child
(``mlflow.parentRunId``), an infeasible sample a child with ``infeasible=true`` and no epochs, a
trial an early-stopping scheduler ended FINISHED with ``stopped_early=true``.

Embedded default store: ``sqlite:///<cwd>/mlflow.db`` (MLflow 3 refuses the ./mlruns file store);
``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` for a server.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Optional

import yaml

from .config import flatten
from .runner import COUNT_KEYS
# the store's URI, checks and client live in harness.store; re-exported, as every caller reads them here
from .store import (READ_ONLY_HTTP, STORE_SCHEMES, URI_FORMAT, _first_call, _probe_server, _sqlite_path,  # noqa: F401
                    check_readable, check_reachable, client, default_tracking_uri, giving_up_quickly, resolve_uri)

PARAM_BATCH = 100  # MLflow accepts at most 100 params per log_batch call
PARAM_VALUE_MAX = 6000  # and values of at most 6000 characters
EPOCH_MARKER = "epoch_time_s"  # a metric every epoch logs: its steps are the epochs recorded
# seconds between system-metric samples (MLflow's default); MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides it
SYSTEM_METRICS_INTERVAL_S = 10.0


def _log_params(c, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, _param_text(v)) for k, v in sorted(params.items())]
    for i in range(0, len(items), PARAM_BATCH):
        c.log_batch(run_id, params=items[i:i + PARAM_BATCH])


def start_parent(uri: str, experiment_id: str, name: str, tags: dict, params: dict) -> str:
    """The parent run of one launch of a search: the UI groups the trials' runs below it."""
    c = client(uri)
    run_id = c.create_run(experiment_id, run_name=name, tags={**{k: str(v) for k, v in tags.items()},
                                                              "mlflow.runName": name, "search_parent": "true"}).info.run_id
    _log_params(c, run_id, params)
    return run_id


def reopen(uri: str, run_id: str) -> None:
    """RUNNING again (a resumed launch): the reason it was closed no longer holds."""
    c = client(uri)
    c.update_run(run_id, status="RUNNING")
    if "failure_reason" in c.get_run(run_id).data.tags:
        c.delete_tag(run_id, "failure_reason")


def close_run(c, run_id: str, status: str, reason: Optional[str] = None) -> None:
    """End a run ``status`` (FINISHED, FAILED, KILLED) through MLflow client ``c``, with why it did not
    finish as its ``failure_reason`` tag: every run the harness closes is closed here."""
    if reason:
        c.set_tag(run_id, "failure_reason", reason[:PARAM_VALUE_MAX])
    c.set_terminated(run_id, status=status)


def end_run(uri: str, run_id: str, status: str, reason: Optional[str] = None, artifacts: Optional[dict] = None) -> None:
    """Close a run the driver owns (a search's parent, a trial Tune ended); ``artifacts``: name -> text."""
    c = client(uri)
    for name, text in (artifacts or {}).items():
        c.log_text(run_id, text, name)
    close_run(c, run_id, status, reason)


def close_stopped(uri: str, run_id: str, why: str) -> None:
    """KILLED: the trial of run ``run_id`` was cut short by its launch stopping (``why``); ``--resume`` goes on."""
    end_run(uri, run_id, "KILLED", f"the launch was stopped ({why}); --resume continues this trial")


def mark_lost(uri: str, run_id: str) -> None:
    """A run whose trial Tune's restored state no longer holds (its driver died before saving it):
    kept as recorded, tagged ``lost_on_resume``, KILLED if it was not FINISHED."""
    c = client(uri)
    c.set_tag(run_id, "lost_on_resume", "true")
    if c.get_run(run_id).info.status != "FINISHED":
        close_run(c, run_id, "KILLED", "its driver died before Tune saved this trial; the resumed search "
                                       "proposed another in its place")


def log_metrics(uri: str, run_id: str, metrics: dict, step: int) -> None:
    """One step of a run the driver owns (a search's parent: its progress after each finished trial)."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    client(uri).log_batch(run_id, metrics=[Metric(k, float(v), stamp, step) for k, v in metrics.items()])


def run_status(uri: str, run_id: str) -> str:
    return client(uri).get_run(run_id).info.status


def record_infeasible(ctx, name: str, values: dict, reason: str, counts: dict) -> str:
    """A sample refused before training: a FINISHED child run with its values, counts and reason, no epochs.
    ``ctx``: the launch's harness.trial.TrialContext."""
    from mlflow.entities import Metric

    c = client(ctx.tracking_uri)
    tags = {**ctx.tags, "row": name.split("-")[0], "infeasible": "true", "infeasible_reason": reason[:PARAM_VALUE_MAX],
            "mlflow.runName": name, "sample": json.dumps(values, sort_keys=True, default=str)[:5000]}
    if ctx.parent_run_id:
        tags["mlflow.parentRunId"] = ctx.parent_run_id
    run_id = c.create_run(ctx.experiment_id, run_name=name, tags={k: str(v) for k, v in tags.items()}).info.run_id
    _log_params(c, run_id, flatten(values))
    now = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in counts.items()])
    close_run(c, run_id, "FINISHED")
    return run_id


def finish_stopped_early(uri: str, run_id: str, last: dict, stopped_early: bool = True) -> None:
    """A trial a scheduler ended inside its last report: FINISHED, ``stopped_early`` when it ran
    fewer epochs than planned, the epochs it ran, its counts and its best validation epoch (what the
    trial's own end would have logged)."""
    from mlflow.entities import Metric, RunTag

    c = client(uri)
    val = {m.step: m.value for m in c.get_metric_history(run_id, "val_acc")}
    test = {m.step: m.value for m in c.get_metric_history(run_id, "test_acc")}
    final = {k: last[k] for k in COUNT_KEYS if k in last}
    if val:
        best_epoch = max(val, key=lambda e: (val[e], -e))  # the first epoch of the best val_acc, as the Trainer picks
        final.update(best_val_acc=val[best_epoch], best_epoch=best_epoch, test_acc_at_best_val=test.get(best_epoch, math.nan))
    now = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in final.items()],
                tags=[RunTag("stopped_early", "true" if stopped_early else "false"),
                      RunTag("epochs_run", str(int(last.get("epoch", 0))))])
    close_run(c, run_id, "FINISHED")


def children(uri: str, experiment_id: str, parent_run_id: str) -> list:
    c = client(uri)
    out, token = [], None
    while True:
        page = c.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000,
                             page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def close_orphans(uri: str, experiment_id: str) -> int:
    """Mark KILLED the RUNNING runs whose driver ran on this host and is gone (a driver killed
    before it could close them); ``--resume`` sets a resumed trial's run RUNNING again."""
    host = platform.node()
    c = client(uri)
    closed = 0
    for run in c.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
        driver = run.data.tags.get("driver", "")
        d_host, _, d_pid = driver.rpartition(":")
        if d_host == host and d_pid.isdigit() and not _alive(int(d_pid)):
            close_run(c, run.info.run_id, "KILLED", f"driver {driver} exited before the trial ended")
            closed += 1
    return closed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded_digests(uri: str, experiment_id: str) -> set[str]:
    """config_digest of every FINISHED run of the experiment: cells a re-run can skip."""
    c = client(uri)
    runs, token = [], None
    while True:
        page = c.search_runs([experiment_id], "attributes.status = 'FINISHED'", max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return {r.data.tags.get("config_digest") for r in runs}


def ensure_experiment(uri: str, name: str, tags: Optional[dict] = None) -> str:
    """The sweep's experiment id, created once by the driver so trials never race to create it."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, tags=tags or {})


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_tags() -> dict:
    import mlflow
    import torch

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        ray_version = "none"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {"device": device, "torch_version": torch.__version__, "mlflow_version": mlflow.__version__,
            "ray_version": ray_version, "python_version": platform.python_version(), "host": platform.node()}


class TrialRun:
    """The MLflow run of one trial, created or continued from inside the trial.

    A trial that Tune retries from its checkpoint (``FailureConfig``) or resumes (``--resume``)
    finds its run again by the ``trial_id`` tag and continues it, so each trial has one run and
    each epoch's metrics are logged exactly once (``log_epoch`` skips epochs already recorded).
    """

    def __init__(self, uri: str, experiment_id: str, run_name: str, config: dict, tags: dict):
        from mlflow.entities import RunTag

        from . import environment

        self.client, self.uri, self.monitor = client(uri), uri, None
        found = self.client.search_runs([experiment_id], f"tags.trial_id = '{tags['trial_id']}'", max_results=1)
        self.finished_metrics: Optional[dict] = None
        if found and found[0].info.status == "FINISHED":
            # Done before its driver died, after Tune last saved its state: leave the run untouched.
            self.run_id = found[0].info.run_id
            self.finished_metrics = dict(found[0].data.metrics)
            return
        if found:
            run = found[0]
            self.run_id = run.info.run_id
            self.logged_steps = {m.step for m in self.client.get_metric_history(self.run_id, EPOCH_MARKER)}
            attempt = int(run.data.tags.get("attempt", "1")) + 1
            self.client.update_run(self.run_id, status="RUNNING")
            if "failure_reason" in run.data.tags:  # closed KILLED while its driver was gone; it goes on now
                self.client.delete_tag(self.run_id, "failure_reason")
            self.client.log_batch(self.run_id, tags=[RunTag("attempt", str(attempt)),
                                                     RunTag("worker", str(tags.get("worker", "")))])
            return
        self.logged_steps = set()
        self.run_id = self.client.create_run(experiment_id, run_name=run_name,
                                             tags={**{k: str(v) for k, v in tags.items()},
                                                   "mlflow.runName": run_name, "attempt": "1"}).info.run_id
        _log_params(self.client, self.run_id, flatten(config))
        self.client.log_text(self.run_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
        env = environment.describe()  # every installed distribution and the lock, to rebuild this environment
        self.client.log_dict(self.run_id, env, "environment.json")
        # the versions a result may hinge on as tags too, so the UI's columns and a search can show them
        versions = {f"{k}_version": env[k] for k in ("cuda", "cudnn", "nvidia_driver") if env.get(k) is not None}
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in
                                                 {**environment_tags(), **versions,
                                                  "lock_digest": env["lock_digest"]}.items()])

    def log_epoch(self, epoch: int, metrics: dict) -> None:
        """One request per epoch: all of its metrics at ``step = epoch``, once (see the class doc)."""
        from mlflow.entities import Metric

        if epoch in self.logged_steps:
            return
        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=rows)  # one transaction: an epoch is logged whole or not
        self.logged_steps.add(epoch)

    def log_data(self, tags: dict, dataset: dict) -> None:
        """The loader's tags, and ``dataset`` (name, source, digest, splits, loader, ...) as the run's
        MLflow input with context ``training``; logged again by a retried trial, MLflow keeps one."""
        from mlflow.entities import Dataset, DatasetInput, InputTag, RunTag
        from mlflow.exceptions import MlflowException

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        profile = {k: v for k, v in dataset.items() if k not in ("name", "source", "digest")}
        entity = Dataset(name=dataset["name"], digest=dataset["digest"], source_type="local",
                         source=json.dumps({"uri": dataset["source"]}), profile=json.dumps(profile, sort_keys=True))
        inputs = [DatasetInput(entity, [InputTag("mlflow.data.context", "training")])]
        # MLflow looks the experiment's dataset up, then inserts it when absent: two trials starting
        # together in a new experiment both insert, and one fails on the datasets table's UNIQUE
        # (experiment, name, digest). Logging an input is idempotent and the row is there by then,
        # so the loser's retry reuses it; a few tries, then the error is the trial's.
        tries = 3
        for attempt in range(tries):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except MlflowException:
                if attempt == tries - 1:
                    raise
                time.sleep(0.05 * 2 ** attempt)

    def start_system_metrics(self, interval_s: float = SYSTEM_METRICS_INTERVAL_S) -> None:
        """MLflow's SystemMetricsMonitor (CPU, memory, disk, network; GPU with nvidia-ml-py) on this
        run, in a thread, until ``stop_system_metrics``; a resumed run continues its steps."""
        from .adapters import system_metrics_monitor

        self.monitor = system_metrics_monitor(self.run_id, interval_s, self.uri)
        self.monitor.start()

    def stop_system_metrics(self) -> None:
        if self.monitor is not None:
            self.monitor.finish()  # joins the thread and flushes what it sampled
            self.monitor = None

    def log_final(self, results: dict, keys) -> None:
        """Log the run's end-of-trial numbers, ``results[k]`` for each of ``keys``, at step 0 (the runner's
        ``Result.final`` names them: harness.runner.FINAL_METRICS and a method's own)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        keys = list(dict.fromkeys(keys))
        rows = [Metric(k, float(results[k]), now, 0) for k in keys if isinstance(results.get(k), (int, float))]
        self.client.log_batch(self.run_id, metrics=rows)

    def log_torch(self, obj, name: str) -> None:
        """Save ``obj`` with torch.save as the run's artifact ``name`` (plain tensors and containers)."""
        import tempfile

        import torch

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            torch.save(obj, path)
            self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str = "FINISHED", reason: Optional[str] = None) -> None:
        close_run(self.client, self.run_id, status, reason)


def _param_text(v) -> str:
    text = "null" if v is None else str(v)
    return text[:PARAM_VALUE_MAX]
