"""The Tune function trainable: one cell, one MLflow run, one report and checkpoint per epoch.

``run_trial(param)`` runs inside a Ray worker. ``param["ctx"]`` carries the launch's ``TrialContext`` (what
every trial of it shares, frozen, typed); the rest is the trial's own: a grid's ``cell``, or a search's
sampled values and axis point, which the context resolves (``TrialContext.cell``). It imports the
launch's plugins (harness.plugins), builds the cell's runner (harness.train.build_runner) and talks to
it only through the harness.runner.Runner protocol: ``run(on_epoch)``,
``state_dict()`` / ``load_state_dict()``, ``counts()`` and ``saved_model()``. Per epoch the
metrics go to MLflow first, then to Tune with a checkpoint (the runner's state and the epochs
logged so far); a retried trial loads the last checkpoint, re-logs the epochs MLflow may have
missed, and continues the same run. The run ends FINISHED, KILLED (interrupted) or FAILED; a
trial Tune itself ends inside its report (a scheduler's stop) is left to the driver to record.
Every run is tagged with its ``precision``; the Trainer hands its loader's tags and its dataset
(an MLflow input) to the run as it builds them, and ``train.system_metrics`` samples MLflow's
system metrics from the start of training to its end, however it ends.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from . import plugins, tracking

if TYPE_CHECKING:
    from .catalog import SearchPlan

CHECKPOINT_FILE = "trainer.pt"  # the name checkpoints of earlier launches have: --resume reads them


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one launch shares, made once by the driver (harness.launcher).

    It travels in each trial's Tune config as plain data (``payload``; ``from_payload`` in the trial):
    Tune replaces any other object in a param space by a placeholder resolved when it creates a trial,
    and a restored search (``--resume``) can leave one unresolved (the config then holds
    ``('__ref_ph', hash)``), as tests/test_search_e2e.py's killed-driver search showed."""

    tracking_uri: str
    experiment_id: str
    threads: int  # torch CPU threads per trial (--cpus-per-trial, at least 1)
    tags: dict  # the launch's tags, set on every run: sweep, paper, profile, artifact(s), git_sha, driver, ...
    plugins: tuple = ()  # harness.plugins specs, imported by every trial before it looks a name up
    parent_run_id: Optional[str] = None  # a search's parent run: each trial's run is its child
    plan: Optional["SearchPlan"] = None  # a search's: resolves a trial's sampled values; None in a grid

    def payload(self) -> dict:
        """Plain data only (dicts, lists, str, numbers, None): what a Tune param space holds as it is."""
        return {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id, "threads": self.threads,
                "tags": dict(self.tags), "plugins": list(self.plugins), "parent_run_id": self.parent_run_id,
                "plan": self.plan.payload() if self.plan is not None else None}

    @classmethod
    def from_payload(cls, payload: dict) -> "TrialContext":
        plan = None
        if payload.get("plan") is not None:
            from .catalog import SearchPlan

            plan = SearchPlan.from_payload(payload["plan"])
        return cls(tracking_uri=payload["tracking_uri"], experiment_id=payload["experiment_id"],
                   threads=payload["threads"], tags=dict(payload["tags"]), plugins=tuple(payload.get("plugins") or ()),
                   parent_run_id=payload.get("parent_run_id"), plan=plan)

    def cell(self, config: dict) -> tuple[dict, dict]:
        """(the trial's cell: row, name, config, digest; its tags) from its Tune ``config``: a grid trial
        carries its cell; a search trial its sampled values and axis point, resolved here as the
        driver's gate resolved them."""
        if self.plan is None:
            return config["cell"], {}
        from .search import decode

        sample_id, point = config["sample_id"], config["point"]
        values = decode(self.plan.spec, config["sample"])
        cell = self.plan.cell(values, sample_id, point)
        payload = {"row": cell.row, "name": self.plan.name(sample_id, point), "config": cell.config,
                   "digest": cell.digest}
        return payload, {"sample_id": sample_id, "sample": json.dumps(values, sort_keys=True, default=str)[:5000]}


def run_trial(param: dict) -> None:
    """The Tune function trainable: one cell, one MLflow run, one report and checkpoint per epoch."""
    import ray
    import torch
    from ray import tune

    from .config import RunConfig
    from .train import build_runner

    ctx = TrialContext.from_payload(param["ctx"])
    plugins.load_specs(list(ctx.plugins))  # the driver's plugins, before any name is looked up
    cell, sample_tags = ctx.cell(param)
    trial_id = tune.get_context().get_trial_id()
    cfg = RunConfig.from_dict(cell["config"])
    tags = {**ctx.tags, **sample_tags, "row": cell["row"], "config_digest": cell["digest"], "trial_id": trial_id,
            "dataset": cfg.data.dataset, "seed": cfg.train.seed, "precision": cfg.train.precision,
            "ray_node_id": ray.get_runtime_context().get_node_id(), "worker": f"{platform.node()}:{os.getpid()}"}
    if ctx.parent_run_id:
        tags["mlflow.parentRunId"] = ctx.parent_run_id
    run = tracking.TrialRun(ctx.tracking_uri, ctx.experiment_id, cell["name"], cell["config"], tags)
    planned = {"epoch": cfg.train.epochs, "planned_epochs": cfg.train.epochs, "mlflow_run_id": run.run_id}
    if run.finished_metrics is not None:
        tune.report({**run.finished_metrics, **planned})
        return
    try:
        # the Trainer (its loader and dataset logged as it builds them), or an experiment's runner
        runner = build_runner(cfg, threads=ctx.threads, on_data=run.log_data)
        history: dict = {}
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                saved = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
            runner.load_state_dict(saved["trainer"])
            history = saved["history"]
            for epoch in sorted(history):  # epochs checkpointed but not yet in MLflow when the worker died
                run.log_epoch(epoch, history[epoch])
        counts = runner.counts()

        overhead = {"checkpoint_total_s": 0.0, "log_total_s": 0.0}  # where a trial's time goes besides training

        def on_epoch(epoch: int, metrics: dict) -> None:
            history[epoch] = metrics
            # MLflow first: Tune may end the trial inside report (an early-stopping scheduler's
            # decision), and the epoch it was decided on must be in the run.
            start = time.perf_counter()
            run.log_epoch(epoch, metrics)
            logged = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"trainer": runner.state_dict(), "history": history}, Path(folder) / CHECKPOINT_FILE)
                tune.report({**metrics, **counts, **planned, "epoch": epoch},
                            checkpoint=tune.Checkpoint.from_directory(folder))
            overhead["log_total_s"] += logged - start
            overhead["checkpoint_total_s"] += time.perf_counter() - logged

        if cfg.train.system_metrics:
            run.start_system_metrics()
        try:
            result = runner.run(on_epoch)
        finally:
            run.stop_system_metrics()
        run.log_final({**result.metrics, **result.final, **overhead}, keys=[*result.final, *overhead])
        if cfg.train.save_model:
            run.log_torch(runner.saved_model(), "model.pt")
    except SystemExit:
        # Tune ended the trial inside tune.report: a scheduler's stop or pause, or the sweep being
        # stopped. Only the driver knows which, and it records the run's status (harness.outcomes.collect).
        raise
    except KeyboardInterrupt:
        run.finish("KILLED", "interrupted")
        raise
    except BaseException as e:
        run.finish("FAILED", f"{type(e).__name__}: {e}")
        raise
    run.finish("FINISHED")
